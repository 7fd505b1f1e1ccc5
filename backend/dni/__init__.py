"""Deep Network Interpolation for image filters: the engine and its Python API."""

__version__ = "0.1.0"
