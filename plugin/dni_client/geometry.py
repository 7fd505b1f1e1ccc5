"""Pixel rectangles: where to filter, which crop a preview shows, where a result goes.

Pure Python 3.8+; the editors' own rectangle types are converted to `Rect` at the host.
"""

from __future__ import annotations

from typing import NamedTuple

from .errors import RequestError

# Context the network sees around a selection so its edges match the surroundings
# (a receptive field of a few dozen pixels covers the bundled architectures).
DEFAULT_PADDING = 32


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
    x = min(max(int(round(cx - width / 2.0)), image.x), image.right - width)
    y = min(max(int(round(cy - height / 2.0)), image.y), image.bottom - height)
    return Rect(x, y, width, height)


def cut(data: bytes, bytes_per_pixel: int, width: int, height: int, part: Rect) -> bytes:
    """The bytes of `part` (relative to the top-left of a width x height block)."""
    if len(data) != width * height * bytes_per_pixel:
        raise RequestError(f"{len(data)} bytes do not make {width}x{height} pixels of "
                           f"{bytes_per_pixel} bytes")
    if not Rect(0, 0, width, height).contains(part) or part.empty:
        raise RequestError(f"{part} lies outside a {width}x{height} block")
    row = width * bytes_per_pixel
    if part.x == 0 and part.width == width:
        return bytes(data[part.y * row:part.bottom * row])
    start, end = part.x * bytes_per_pixel, part.right * bytes_per_pixel
    view = memoryview(data)
    return b"".join(view[y * row + start:y * row + end] for y in range(part.y, part.bottom))
