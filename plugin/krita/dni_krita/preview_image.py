"""Layer bytes as QImages for the dialog's preview (display only, 8-bit)."""

from __future__ import annotations

from dni_client import pixels as px

from .qt import QColor, QImage, QPainter, QPixmap


def _u8(value: float) -> int:
    return 0 if value <= 0.0 else 255 if value >= 1.0 else int(value * 255.0 + 0.5)


def _float_to_bgra8(pixels: bytes, count: int, fmt: px.PixelFormat, linear: bool) -> bytes:
    values = px.samples(bytes(pixels), fmt.sample)
    out = bytearray(count * 4)
    gamma = 1.0 / 2.2 if linear else 1.0
    # Float layers are RGBA; QImage ARGB32 wants B, G, R, A in memory.
    for i in range(0, count * 4, 4):
        r, g, b, a = values[i], values[i + 1], values[i + 2], values[i + 3]
        if gamma != 1.0:
            r, g, b = (max(r, 0.0) ** gamma, max(g, 0.0) ** gamma, max(b, 0.0) ** gamma)
        out[i], out[i + 1], out[i + 2], out[i + 3] = _u8(b), _u8(g), _u8(r), _u8(a)
    return bytes(out)


def to_qimage(pixels: bytes, width: int, height: int, fmt: px.PixelFormat,
              linear: bool = False) -> QImage:
    """Layer bytes as an 8-bit ARGB32 QImage."""
    if fmt.sample == "B":
        data = bytes(pixels)
    elif fmt.sample == "H":
        data = bytes(pixels[1::2])  # little-endian high bytes: BGRA8 at C speed
    else:
        data = _float_to_bgra8(pixels, width * height, fmt, linear)
    image = QImage(data, width, height, width * 4, QImage.Format.Format_ARGB32)
    return image.copy()  # own the memory: `data` goes away


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
