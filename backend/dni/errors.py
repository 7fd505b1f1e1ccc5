"""Exceptions with messages meant for the user: one clear line each."""


class DNIError(Exception):
    """Base class: anything the user can fix by changing their input."""

    code = "error"


class FamilyError(DNIError):
    """A family is unknown, or its manifest or weights are broken."""

    code = "bad_family"


class WeightsError(DNIError):
    """Interpolation weights or a strength value are not acceptable."""

    code = "bad_weights"


class IncompatibleModels(DNIError):
    """Two state dicts cannot be interpolated (keys or shapes differ)."""

    code = "incompatible"


class ImageError(DNIError):
    """An image, mask or strength map is unreadable, too large or the wrong shape."""

    code = "bad_image"


class Cancelled(DNIError):
    """The caller cancelled the job."""

    code = "cancelled"
