"""Which part of the image a dialog's preview shows: a centre, a zoom and the preview's
size on screen give the crop sent to the backend. Zooming in previews fewer pixels (so it
stays fast); panning and picking move the centre; the crop always stays inside the image.
"""

from __future__ import annotations

from .geometry import Rect

ZOOMS = (0.25, 0.5, 1.0, 2.0, 4.0)
MAX_CROP = 1024  # source pixels per side: larger previews stop following the slider


class PreviewArea:
    def __init__(self, image: Rect, view_width: int, view_height: int,
                 centre: tuple[float, float] | None = None) -> None:
        self.image = image
        self.view_width, self.view_height = max(16, view_width), max(16, view_height)
        self.zoom = 1.0
        self.centre = centre if centre is not None else (
            image.x + image.width / 2.0, image.y + image.height / 2.0)

    def crop(self, scale: int = 1) -> Rect:
        """The source pixels to preview. A ×`scale` family's answer is `scale` times
        larger, so it takes `scale` times fewer pixels to fill the preview."""
        per_pixel = self.zoom * max(1, scale)
        width = min(MAX_CROP, max(16, int(self.view_width / per_pixel)))
        height = min(MAX_CROP, max(16, int(self.view_height / per_pixel)))
        w, h = min(width, self.image.width), min(height, self.image.height)
        cx, cy = self.centre
        x = min(max(int(round(cx - w / 2.0)), self.image.x), self.image.right - w)
        y = min(max(int(round(cy - h / 2.0)), self.image.y), self.image.bottom - h)
        return Rect(x, y, w, h)

    def set_zoom(self, zoom: float) -> None:
        self.zoom = min(ZOOMS, key=lambda z: abs(z - zoom))

    def zoom_by(self, steps: int) -> None:
        index = ZOOMS.index(self.zoom) + steps
        self.zoom = ZOOMS[min(max(index, 0), len(ZOOMS) - 1)]

    def pan(self, dx_screen: float, dy_screen: float, scale: int = 1) -> None:
        """Drag the picture by screen pixels: the centre moves the other way."""
        per_pixel = self.zoom * max(1, scale)
        self.pick(self.centre[0] - dx_screen / per_pixel, self.centre[1] - dy_screen / per_pixel)

    def pick(self, x: float, y: float) -> None:
        """Centre the preview on an image point (clamped to the image)."""
        self.centre = (min(max(x, self.image.x), self.image.right),
                       min(max(y, self.image.y), self.image.bottom))
