"""Layer bytes as the editors hand them out: pixel formats, masks, strength-map planes.

A `PixelFormat` is derived from the protocol's table of layouts (protocol.LAYOUTS and the
editors' aliases there), so a format and its wire layout cannot disagree. Per-pixel work
uses C-speed bytes operations where it matters; pure Python 3.8+, no numpy.
"""

from __future__ import annotations

import re
import struct
import sys
from collections.abc import Sequence
from typing import NamedTuple

from . import protocol as P
from .errors import RequestError

_STRUCT_CODES = {"u8": "B", "u16": "H", "f16": "e", "f32": "f"}


class PixelFormat(NamedTuple):
    """One colour depth of an RGBA layer, as the editor hands it out."""

    depth: str  # the editor's name: Krita's U8/U16/F16/F32, GIMP's babl format
    layout: str  # the protocol's layout name
    bytes_per_pixel: int
    sample: str  # struct code of one channel: B, H, e, f
    alpha_offset: int  # byte offset of the alpha channel within a pixel

    @property
    def sample_bytes(self) -> int:
        return struct.calcsize(self.sample)

    @property
    def opaque(self) -> float:
        return {"B": 255.0, "H": 65535.0}.get(self.sample, 1.0)

    @property
    def channel_order(self) -> str:
        return P.LAYOUTS[self.layout][3]


def pixel_format(depth: str, alias: str) -> PixelFormat:
    """The format an editor calls `depth`, travelling as the protocol alias `alias`."""
    layout = P.canonical_layout(alias)
    channels, size, kind, order = P.LAYOUTS[layout]
    return PixelFormat(depth, layout, channels * size, _STRUCT_CODES[kind],
                       order.index("A") * size)


# Krita: U8/U16 layers are B, G, R, A; F16/F32 are R, G, B, A (see docs/protocol.md).
KRITA_FORMATS = {d: pixel_format(d, f"krita:{d}") for d in ("U8", "U16", "F16", "F32")}
# GIMP 3: babl names of RGBA drawables.
GIMP_FORMATS = {n: pixel_format(n, n) for n in
                ("R'G'B'A u8", "R'G'B'A u16", "R'G'B'A half", "R'G'B'A float")}


def check_bytes(data: bytes, width: int, height: int, bytes_per_pixel: int, what: str) -> None:
    need = width * height * bytes_per_pixel
    if len(data) != need:
        raise RequestError(f"{what}: expected {need} bytes for {width}x{height}, "
                           f"got {len(data)}")


def mask_is_empty(mask: bytes) -> bool:
    return not mask.strip(b"\x00")


def mask_is_full(mask: bytes) -> bool:
    return not mask.strip(b"\xff")


def samples(data: bytes, code: str) -> Sequence[float]:
    """The values of little-endian samples (struct code B, H, e or f), fast where possible:
    memoryview.cast knows H and f but not the half float e."""
    if code == "B":
        return data
    if sys.byteorder == "little" and code != "e":
        return memoryview(data).cast(code)
    count = len(data) // struct.calcsize(code)
    return struct.unpack(f"<{count}{code}", data)


def _to_u8(value: float) -> int:
    return 0 if value <= 0.0 else 255 if value >= 1.0 else int(value * 255.0 + 0.5)


def _grey_fast_path(pixels: bytes, channels: int) -> bytes | None:
    """8-bit grey, opaque pixels need no arithmetic (the common painted strength map)."""
    if channels == 4:
        b, g, r, a = pixels[0::4], pixels[1::4], pixels[2::4], pixels[3::4]
        return bytes(g) if b == g == r and mask_is_full(a) else None
    return bytes(pixels[0::2]) if mask_is_full(pixels[1::2]) else None


def grey_plane(pixels: bytes, fmt: PixelFormat | None, channels: int, count: int) -> bytes:
    """One byte per pixel from a layer used as a strength map: its luminance times its
    alpha (transparent = black = weakest). `channels` is 4 (RGBA in `fmt`), 2 (grey and
    alpha) or 1 (an 8-bit mask, taken as it is)."""
    if channels == 1:
        if len(pixels) != count:
            raise RequestError("strength map: unexpected mask size")
        return bytes(pixels)
    if fmt is None:
        raise RequestError("strength map: unsupported colour depth")
    per_pixel = channels * fmt.sample_bytes
    if len(pixels) != count * per_pixel:
        raise RequestError("strength map: the layer's pixel data has an unexpected size")
    if fmt.sample == "B":
        fast = _grey_fast_path(pixels, channels)
        if fast is not None:
            return fast
    values = samples(pixels, fmt.sample)
    if channels == 4:
        order = fmt.channel_order
        ri, gi, bi = order.index("R"), order.index("G"), order.index("B")
    else:
        ri = gi = bi = 0
    peak, alpha = fmt.opaque, channels - 1
    out = bytearray(count)
    for i in range(count):
        base = i * channels
        luma = 0.299 * values[base + ri] + 0.587 * values[base + gi] + 0.114 * values[base + bi]
        out[i] = _to_u8(luma / peak * min(max(values[base + alpha] / peak, 0.0), 1.0))
    return bytes(out)


_RUNS = re.compile(rb"\x00+|\xff+|[^\x00\xff]+")


def multiply_alpha(pixels: bytes, mask: bytes, fmt: PixelFormat) -> bytes:
    """The pixels with alpha scaled by a one-byte-per-pixel mask (soft edges kept).

    Fully unselected runs become fully transparent (zero bytes in every format) and fully
    selected runs stay as they are: only soft edges need per-pixel arithmetic.
    """
    bpp = fmt.bytes_per_pixel
    if len(pixels) != len(mask) * bpp:
        raise RequestError("mask and pixels differ in size")
    if mask_is_full(mask):
        return bytes(pixels)
    out = bytearray(pixels)
    for run in _RUNS.finditer(mask):
        start, end = run.span()
        if mask[start] == 255:
            continue
        if mask[start] == 0:
            # Clear whole pixels so no stale colour hides under zero alpha.
            out[start * bpp:end * bpp] = bytes((end - start) * bpp)
            continue
        _scale_alpha(out, mask, start, end, fmt)
    return bytes(out)


def _scale_alpha(out: bytearray, mask: bytes, start: int, end: int, fmt: PixelFormat) -> None:
    packer = struct.Struct("<" + fmt.sample)
    size, integer = fmt.sample_bytes, fmt.sample in ("B", "H")
    for i in range(start, end):
        pos = i * fmt.bytes_per_pixel + fmt.alpha_offset
        (value,) = packer.unpack_from(out, pos)
        scaled = value * mask[i] / 255.0
        if integer:
            scaled = int(scaled + 0.5)
        if scaled == 0:
            out[pos:pos + size] = bytes(size)
        else:
            packer.pack_into(out, pos, scaled)


def upscale_plane(plane: bytes, width: int, height: int, factor: int) -> bytes:
    """Nearest-neighbour enlargement of a one-byte-per-pixel plane (the selection of a
    result that a super-resolution family made `factor` times larger)."""
    if factor == 1:
        return bytes(plane)
    if len(plane) != width * height:
        raise RequestError("plane size does not match its dimensions")
    out = bytearray()
    wide = bytearray(width * factor)
    for y in range(height):
        row = plane[y * width:(y + 1) * width]
        for k in range(factor):
            wide[k::factor] = row
        out += bytes(wide) * factor
    return bytes(out)
