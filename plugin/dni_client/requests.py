"""Host-agnostic request building for the editor plugins (Krita now, GIMP later).

Everything between "the user has this layer, this selection and these options" and the
bytes that `Client.submit` takes, and back: which rectangle to send (selection bounds plus
context padding, clipped to the image), which pixel layout a colour depth maps to, the
mask and strength-map planes, which crop a preview shows, and where a (possibly
upscaled) result goes. Pure Python 3.8+, no numpy or Qt: it runs inside the editors' own
interpreters. Per-pixel work is done with C-speed bytes operations where it matters.
"""

from __future__ import annotations

import re
import struct
import sys
from collections.abc import Sequence
from typing import NamedTuple

# Context the network sees around a selection so its edges match the surroundings
# (a receptive field of a few dozen pixels covers the bundled architectures).
DEFAULT_PADDING = 32
DEFAULT_PREVIEW_SIZE = 384


class RequestError(Exception):
    """Something about the user's input that the plugin should show as a message."""


class Rect(NamedTuple):
    x: int
    y: int
    width: int
    height: int

    @property
    def right(self) -> int:
        return self.x + self.width

    @property
    def bottom(self) -> int:
        return self.y + self.height

    @property
    def empty(self) -> bool:
        return self.width <= 0 or self.height <= 0

    @property
    def area(self) -> int:
        return 0 if self.empty else self.width * self.height

    def intersect(self, other: Rect) -> Rect:
        x0, y0 = max(self.x, other.x), max(self.y, other.y)
        x1, y1 = min(self.right, other.right), min(self.bottom, other.bottom)
        return Rect(x0, y0, max(0, x1 - x0), max(0, y1 - y0))

    def padded(self, amount: int, within: Rect | None = None) -> Rect:
        grown = Rect(self.x - amount, self.y - amount, self.width + 2 * amount,
                     self.height + 2 * amount)
        return grown if within is None else grown.intersect(within)

    def scaled(self, factor: int) -> Rect:
        return Rect(self.x * factor, self.y * factor, self.width * factor, self.height * factor)

    def contains(self, other: Rect) -> bool:
        return (self.x <= other.x and self.y <= other.y and other.right <= self.right
                and other.bottom <= self.bottom)


# -- pixel formats -------------------------------------------------------------------------

class PixelFormat(NamedTuple):
    """One colour depth of an RGBA layer, as the editor hands it out."""

    depth: str  # the editor's name: U8, U16, F16, F32
    layout: str  # the protocol's layout name
    bytes_per_pixel: int
    sample: str  # struct/memoryview code of one channel: B, H, e, f
    alpha_offset: int  # byte offset of the alpha channel within a pixel

    @property
    def sample_bytes(self) -> int:
        return self.bytes_per_pixel // 4

    @property
    def opaque(self) -> float:
        return {"B": 255.0, "H": 65535.0}.get(self.sample, 1.0)


# Krita: U8/U16 layers are B, G, R, A; F16/F32 are R, G, B, A (see docs/protocol.md).
KRITA_FORMATS = {
    "U8": PixelFormat("U8", "bgra8", 4, "B", 3),
    "U16": PixelFormat("U16", "bgra16", 8, "H", 6),
    "F16": PixelFormat("F16", "rgba16f", 8, "e", 6),
    "F32": PixelFormat("F32", "rgba32f", 16, "f", 12),
}

# GIMP 3 (babl format names of RGBA drawables), for the GIMP plug-in.
GIMP_FORMATS = {
    "R'G'B'A u8": PixelFormat("R'G'B'A u8", "rgba8", 4, "B", 3),
    "R'G'B'A u16": PixelFormat("R'G'B'A u16", "rgba16", 8, "H", 6),
    "R'G'B'A half": PixelFormat("R'G'B'A half", "rgba16f", 8, "e", 6),
    "R'G'B'A float": PixelFormat("R'G'B'A float", "rgba32f", 16, "f", 12),
}

_MODEL_HINTS = {
    "CMYKA": "Convert it with Image ▸ Convert Image Color Space… to RGB/Alpha, run the "
             "filter, and convert back if you need CMYK.",
    "LABA": "Convert it with Image ▸ Convert Image Color Space… to RGB/Alpha; L*a*b* "
            "values would be misread as RGB.",
    "GRAYA": "Convert it with Image ▸ Convert Image Color Space… to RGB/Alpha (the "
             "networks work on colour).",
    "XYZA": "Convert it with Image ▸ Convert Image Color Space… to RGB/Alpha.",
    "YCbCrA": "Convert it with Image ▸ Convert Image Color Space… to RGB/Alpha.",
}


def krita_format(color_model: str, depth: str) -> PixelFormat:
    """The format of an RGBA layer; RequestError naming the fix for anything else."""
    if color_model != "RGBA":
        hint = _MODEL_HINTS.get(color_model, "Convert it to RGB/Alpha first.")
        raise RequestError(f"DNI works on RGB images; this layer is {color_model}/{depth}. "
                           + hint)
    fmt = KRITA_FORMATS.get(depth)
    if fmt is None:
        raise RequestError(f"The colour depth {depth} is not supported; convert the image "
                           "to 8-bit, 16-bit or 32-bit float RGB/Alpha.")
    return fmt


# -- what to send ------------------------------------------------------------------------

class WorkArea(NamedTuple):
    """The rectangle to send (`crop`) and the part the user asked for (`core`)."""

    crop: Rect
    core: Rect
    selected: bool  # a selection limits the effect: multiply the result's alpha by it


def work_area(image: Rect, layer_bounds: Rect | None, selection_bounds: Rect | None, *,
              padding: int = DEFAULT_PADDING) -> WorkArea:
    """Where to filter: the selection (with context padding) or the layer's content.

    Everything is clipped to the image: pixels outside the canvas are not the user's
    picture. Raises RequestError for an empty selection or an empty layer.
    """
    if selection_bounds is not None:
        core = selection_bounds.intersect(image)
        if core.empty:
            raise RequestError("The selection is empty or lies outside the image. Select "
                               "an area (or Select ▸ Deselect to filter the whole layer).")
        return WorkArea(core.padded(padding, image), core, True)
    core = image if layer_bounds is None else layer_bounds.intersect(image)
    if core.empty:
        raise RequestError("The layer is empty: there is nothing to filter.")
    return WorkArea(core, core, False)


def preview_crop(image: Rect, size: int, *, selection_bounds: Rect | None = None,
                 centre: tuple[float, float] | None = None) -> Rect:
    """A square of at most `size` pixels: on the selection's centre, else on `centre`
    (the view's), else on the image's; shifted (not shrunk) to stay inside the image."""
    size = max(16, int(size))
    if selection_bounds is not None and not selection_bounds.intersect(image).empty:
        sel = selection_bounds.intersect(image)
        cx, cy = sel.x + sel.width / 2.0, sel.y + sel.height / 2.0
    elif centre is not None:
        cx, cy = centre
    else:
        cx, cy = image.x + image.width / 2.0, image.y + image.height / 2.0
    width, height = min(size, image.width), min(size, image.height)
    x = int(round(cx - width / 2.0))
    y = int(round(cy - height / 2.0))
    x = min(max(x, image.x), image.right - width)
    y = min(max(y, image.y), image.bottom - height)
    return Rect(x, y, width, height)


def check_bytes(data: bytes, rect: Rect, bytes_per_pixel: int, what: str) -> None:
    need = rect.width * rect.height * bytes_per_pixel
    if len(data) != need:
        raise RequestError(f"{what}: expected {need} bytes for {rect.width}x{rect.height}, "
                           f"got {len(data)}")


def mask_is_empty(mask: bytes) -> bool:
    return not mask.strip(b"\x00")


def mask_is_full(mask: bytes) -> bool:
    return not mask.strip(b"\xff")


def invert_plane(plane: bytes) -> bytes:
    return plane.translate(bytes(range(255, -1, -1)))


# -- strength maps -----------------------------------------------------------------------

def samples(data: bytes, code: str) -> Sequence[float]:
    """The values of little-endian samples (struct code B, H, e or f), fast where possible:
    memoryview.cast knows H and f but not the half float e."""
    if code == "B":
        return data
    if sys.byteorder == "little" and code != "e":
        return memoryview(data).cast(code)
    count = len(data) // struct.calcsize(code)
    return struct.unpack(f"<{count}{code}", data)


def _to_u8(value: float, peak: float) -> int:
    v = value / peak
    return 0 if v <= 0.0 else 255 if v >= 1.0 else int(v * 255.0 + 0.5)


def grey_plane(pixels: bytes, color_model: str, depth: str, width: int, height: int) -> bytes:
    """One byte per pixel from a layer used as a strength map: its luminance times its
    alpha (transparent = black = weakest). RGBA, GRAYA and alpha-only (mask) layers."""
    count = width * height
    if color_model == "A" or (color_model == "GRAYA" and depth == "U8" and len(pixels) == count):
        if len(pixels) != count:
            raise RequestError("strength map: unexpected mask size")
        return bytes(pixels)
    if color_model == "RGBA":
        fmt = KRITA_FORMATS.get(depth)
        if fmt is None:
            raise RequestError(f"strength map: unsupported depth {depth}")
        channels, order = 4, ((2, 1, 0) if fmt.layout.startswith("bgra") else (0, 1, 2))
        code, peak = fmt.sample, fmt.opaque
    elif color_model == "GRAYA":
        fmt = KRITA_FORMATS.get(depth)
        if fmt is None:
            raise RequestError(f"strength map: unsupported depth {depth}")
        channels, order, code, peak = 2, (0, 0, 0), fmt.sample, fmt.opaque
    else:
        raise RequestError(f"A {color_model} layer cannot serve as a strength map; use a "
                           "greyscale paint layer or a selection.")
    per_pixel = channels * struct.calcsize(code)
    if len(pixels) != count * per_pixel:
        raise RequestError("strength map: the layer's pixel data has an unexpected size")
    if code == "B" and channels == 4:
        # Fast path for 8-bit: grey pixels (B = G = R) and opaque ones need no arithmetic.
        b, g, r, a = pixels[0::4], pixels[1::4], pixels[2::4], pixels[3::4]
        if b == g == r and mask_is_full(a):
            return bytes(g)
    if code == "B" and channels == 2 and mask_is_full(pixels[1::2]):
        return bytes(pixels[0::2])
    s = samples(pixels, code)
    ri, gi, bi = order
    alpha = channels - 1
    out = bytearray(count)
    for i in range(count):
        base = i * channels
        luma = 0.299 * s[base + ri] + 0.587 * s[base + gi] + 0.114 * s[base + bi]
        out[i] = _to_u8(luma * min(max(s[base + alpha] / peak, 0.0), 1.0), peak)
    return bytes(out)


# -- results -----------------------------------------------------------------------------

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
    size = fmt.sample_bytes
    off = fmt.alpha_offset
    zero = b"\x00" * size
    packer = struct.Struct("<" + fmt.sample)
    for run in _RUNS.finditer(mask):
        start, end = run.span()
        first = mask[start]
        if first == 255:
            continue
        if first == 0:
            # Clear whole pixels so no stale colour hides under zero alpha.
            out[start * bpp:end * bpp] = bytes((end - start) * bpp)
            continue
        for i in range(start, end):
            pos = i * bpp + off
            (value,) = packer.unpack_from(out, pos)
            scaled = value * mask[i] / 255.0
            if fmt.sample in ("B", "H"):
                scaled = int(scaled + 0.5)
            if scaled == 0:
                out[pos:pos + size] = zero
            else:
                packer.pack_into(out, pos, scaled)
    return bytes(out)


def upscale_plane(plane: bytes, width: int, height: int, factor: int) -> bytes:
    """Nearest-neighbour enlargement of a one-byte-per-pixel plane (mask for a result
    that a super-resolution family made `factor` times larger)."""
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


def placement(crop: Rect, scale: int) -> Rect:
    """Where a result computed from `crop` goes in an image enlarged `scale` times."""
    return crop.scaled(scale)


def layer_name(title: str, strength: float | None, weights: Sequence[float] | None,
               labels: Sequence[str] = (), mode: str = "network") -> str:
    """'DNI Denoise 40%' or 'DNI Stylize 20/50/30'; a pixel blend says so."""
    if weights is not None:
        amount = "/".join(str(int(round(w * 100))) for w in weights)
    elif strength is not None:
        amount = f"{int(round(strength * 100))}%"
    else:
        amount = "map"
    suffix = " (pixel blend)" if mode == "pixel" else ""
    return f"DNI {title} {amount}{suffix}"


# -- weights -----------------------------------------------------------------------------

def convex(weights: Sequence[float]) -> tuple[float, ...]:
    """Non-negative weights that sum to 1, for a mixer whose sliders the user moved."""
    clean = [max(0.0, float(w)) for w in weights]
    total = sum(clean)
    if not clean:
        raise RequestError("no weights")
    if total <= 0:
        return tuple(1.0 / len(clean) for _ in clean)
    return tuple(w / total for w in clean)


def set_weight(weights: Sequence[float], index: int, value: float) -> tuple[float, ...]:
    """Move one weight of a convex mix to `value` and share the rest among the others in
    their current proportions (equally if they are all zero): the linked-sliders rule."""
    count = len(weights)
    value = min(max(float(value), 0.0), 1.0)
    if count == 1:
        return (1.0,)
    others = [w for i, w in enumerate(weights) if i != index]
    rest = 1.0 - value
    total = sum(max(0.0, w) for w in others)
    out = []
    for i, w in enumerate(weights):
        if i == index:
            out.append(value)
        elif total > 0:
            out.append(rest * max(0.0, w) / total)
        else:
            out.append(rest / (count - 1))
    return tuple(out)


def strength_for_weights(weights: Sequence[float], positions: Sequence[float]
                         ) -> float | None:
    """The strength whose weights these are (two neighbouring members only), else None."""
    lo, hi = positions[0], positions[-1]
    if hi == lo:
        return None
    nonzero = [i for i, w in enumerate(weights) if w > 1e-9]
    if len(nonzero) == 1:
        return (positions[nonzero[0]] - lo) / (hi - lo)
    if len(nonzero) == 2 and nonzero[1] == nonzero[0] + 1:
        i, j = nonzero
        pos = positions[i] * weights[i] + positions[j] * weights[j]
        return (pos - lo) / (hi - lo)
    return None


def weights_for_strength(strength: float, positions: Sequence[float]) -> tuple[float, ...]:
    """The engine's convention: members ordered by position, 0 = first, 1 = last, linear
    between the two neighbours of the point on the axis."""
    count = len(positions)
    if count == 1:
        return (1.0,)
    strength = min(max(float(strength), 0.0), 1.0)
    lo, hi = positions[0], positions[-1]
    point = lo + strength * (hi - lo)
    out = [0.0] * count
    for i in range(count - 1):
        a, b = positions[i], positions[i + 1]
        if point <= b or i == count - 2:
            t = 0.0 if b == a else min(max((point - a) / (b - a), 0.0), 1.0)
            out[i], out[i + 1] = 1.0 - t, t
            break
    return tuple(out)
