"""Layer bytes as QImages for the dialog's preview (display only, 8-bit)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from dni_client import display
from dni_client import pixels as px

from .qt import QColor, QImage, QObject, QPainter, QPixmap, QTimer


class Converter(QObject):
    """Turns layer bytes into QImages between GUI events (dni_client.display slices the
    work), so a float layer's preview never freezes Krita. One conversion per `slot`: a
    newer one replaces an unfinished older one."""

    def __init__(self, parent: QObject) -> None:
        super().__init__(parent)
        self._work: dict[str, tuple[Iterator[bytes | None], Callable[[bytes], None]]] = {}
        self._timer = QTimer(self)
        self._timer.setInterval(0)
        self._timer.timeout.connect(self._step)

    def convert(self, slot: str, pixels: bytes, width: int, height: int,
                fmt: px.PixelFormat, linear: bool, done: Callable[[QImage], None]) -> None:
        def finished(data: bytes) -> None:
            done(_qimage(data, width, height))

        steps = display.bgra8_steps(pixels, fmt, linear)
        first = next(steps)
        if first is not None:  # 8 and 16 bits: ready at once
            self._work.pop(slot, None)
            finished(first)
            return
        self._work[slot] = (steps, finished)
        self._timer.start()

    def busy(self) -> bool:
        return bool(self._work)

    def _step(self) -> None:
        for slot, (steps, finished) in list(self._work.items()):
            item = next(steps)
            if item is not None:
                del self._work[slot]
                finished(item)
        if not self._work:
            self._timer.stop()

    def stop(self) -> None:
        self._work.clear()
        self._timer.stop()


def _qimage(bgra: bytes, width: int, height: int) -> QImage:
    image = QImage(bgra, width, height, width * 4, QImage.Format.Format_ARGB32)
    return image.copy()  # own the memory: `bgra` goes away


def to_qimage(pixels: bytes, width: int, height: int, fmt: px.PixelFormat,
              linear: bool = False) -> QImage:
    """Layer bytes as an 8-bit ARGB32 QImage, at once (small images, scripts)."""
    return _qimage(display.to_bgra8(pixels, fmt, linear), width, height)


def mask_qimage(mask: bytes, width: int, height: int) -> QImage:
    return QImage(bytes(mask), width, height, width, QImage.Format.Format_Alpha8).copy()


def checker(width: int, height: int) -> QPixmap:
    """The grey checkerboard that shows transparency."""
    pix = QPixmap(width, height)
    pix.fill(QColor(200, 200, 200))
    painter = QPainter(pix)
    for y in range(0, height, 8):
        for x in range((y // 8) % 2 * 8, width, 16):
            painter.fillRect(x, y, 8, 8, QColor(160, 160, 160))
    painter.end()
    return pix


def over(top: QImage, bottom: QImage | None, mask: QImage) -> QImage:
    """`top` where the mask is white, `bottom` elsewhere (soft edges blend)."""
    masked = top.convertToFormat(QImage.Format.Format_ARGB32_Premultiplied)
    painter = QPainter(masked)
    painter.setCompositionMode(QPainter.CompositionMode.CompositionMode_DestinationIn)
    painter.drawImage(0, 0, mask)
    painter.end()
    if bottom is None:
        return masked
    out = bottom.convertToFormat(QImage.Format.Format_ARGB32_Premultiplied)
    painter = QPainter(out)
    painter.drawImage(0, 0, masked)
    painter.end()
    return out


def blend(low: QImage, high: QImage, t: float) -> QImage:
    """`high` over `low` at opacity `t`: (1 - t)·low + t·high where both are opaque (a
    stand-in between two rendered strengths; dni_client.preview_cache)."""
    out = low.convertToFormat(QImage.Format.Format_ARGB32_Premultiplied)
    painter = QPainter(out)
    painter.setOpacity(t)
    painter.drawImage(0, 0, high)
    painter.end()
    return out
