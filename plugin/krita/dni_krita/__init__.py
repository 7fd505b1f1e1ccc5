"""DNI for Krita: Deep Network Interpolation filters (Filter ▸ DNI) and a "DNI" docker.

Scripting (Scripter, batch scripts)::

    import dni_krita
    layer = dni_krita.run_filter("denoise", strength=0.4)

See docs/krita.md.
"""

from __future__ import annotations

from . import vendor

vendor.setup()

from .api import DNIError, connection, run_filter  # noqa: E402

__all__ = ["DNIError", "connection", "run_filter", "open_dialog"]


def open_dialog(family: str | None = None, task: str | None = None):
    """Open the filter dialog (as the Filter ▸ DNI menu does); returns it."""
    from .dialog import open_dialog as _open

    return _open(family=family, task=task)


def _register() -> None:
    try:
        from krita import Krita
    except ImportError:
        return  # imported outside Krita (tests, tools)
    app = Krita.instance()
    if app is None or getattr(app, "_dni_fake_no_register", False):
        return
    try:
        from .extension import register
    except ImportError as exc:  # e.g. no PyQt5 in a test interpreter
        import sys

        print(f"DNI: plugin UI not loaded: {exc}", file=sys.stderr)
        return
    register(app)


_register()
