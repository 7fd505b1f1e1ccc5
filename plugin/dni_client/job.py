"""One filter job as the editors describe it, and the checks on what comes back.

A host reads its pixels into a `JobSpec`; `request()` gives the arguments of
`Client.submit`, and `checked_pixels()` refuses an answer that does not fit (wrong size,
layout or byte count) before the host writes anything into the user's image.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from . import protocol as P
from .errors import RequestError
from .families import FamilyInfo
from .geometry import Rect
from .pixels import PixelFormat, check_bytes


class Amount(NamedTuple):
    """How strong: exactly one of strength and weights is set (see mixing). The strength
    may be protocol.AUTO: the backend reads it off the pixels (dni_client.auto)."""

    strength: float | str | None
    weights: tuple[float, ...] | None
    preset: str | None = None  # the preset that supplied them, if any


class JobSpec(NamedTuple):
    family: FamilyInfo
    crop: Rect  # the pixels sent, in image coordinates
    fmt: PixelFormat
    pixels: bytes
    amount: Amount
    mode: str = "network"  # or "pixel": blend the members' outputs (the paper's baseline)
    mask: bytes | None = None  # one byte per pixel of crop: where the engine may change
    # One byte per pixel: the strength, pixel by pixel; or protocol.AUTO: the backend's map.
    strength_map: bytes | str | None = None
    preview: bool = False
    tile: int | None = None  # None: the backend picks one

    @property
    def scale(self) -> int:
        return self.family.scale

    def request(self) -> dict[str, Any]:
        """Keyword arguments for Client.submit."""
        if self.mode not in P.MODES:
            raise RequestError(f"mode must be one of {', '.join(P.MODES)}, not {self.mode!r}")
        kwargs: dict[str, Any] = dict(
            family=self.family.name, width=self.crop.width, height=self.crop.height,
            layout=self.fmt.layout, pixels=self.pixels, mode=self.mode, preview=self.preview)
        if self.strength_map is not None:
            kwargs["strength_map"] = self.strength_map  # the map is the strength
        elif self.amount.weights is not None:
            kwargs["weights"] = list(self.amount.weights)
        else:
            kwargs["strength"] = self.amount.strength
        if self.mask is not None:
            kwargs["mask"] = self.mask
        if self.tile is not None:
            kwargs["tile"] = self.tile
        return kwargs

    def checked_pixels(self, width: int, height: int, layout: str, data: bytes) -> bytes:
        """The result's bytes if they are what this job asked for; RequestError (nothing
        to write) otherwise."""
        s = self.scale
        if (width, height) != (self.crop.width * s, self.crop.height * s):
            raise RequestError(f"The backend returned {width}x{height} pixels for a "
                               f"{self.crop.width}x{self.crop.height} area (scale {s}); "
                               "nothing was changed.")
        try:
            same_layout = P.canonical_layout(layout) == self.fmt.layout
        except P.ProtocolError:
            same_layout = False
        if not same_layout:
            raise RequestError(f"The backend returned {layout} pixels, expected "
                               f"{self.fmt.layout}; nothing was changed.")
        check_bytes(data, width, height, self.fmt.bytes_per_pixel, "result")
        return data

    def result_name(self) -> str:
        """'DNI Denoise 40%' or 'DNI Stylize 20/50/30'; a pixel blend says so."""
        if self.strength_map is not None:
            amount = "auto map" if self.strength_map == P.AUTO else "map"
        elif self.amount.strength == P.AUTO:
            amount = "auto"
        elif self.amount.weights is not None:
            amount = "/".join(str(int(round(w * 100))) for w in self.amount.weights)
        else:
            amount = f"{int(round(float(self.amount.strength or 0.0) * 100))}%"
        suffix = " (pixel blend)" if self.mode == "pixel" else ""
        return f"DNI {self.family.title} {amount}{suffix}"
