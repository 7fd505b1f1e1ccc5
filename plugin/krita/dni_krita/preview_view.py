"""The dialog's preview: before | after with a draggable split, wheel to zoom, drag to pan,
and a small overview of the whole image where a click picks the area to preview.

Widgets only: which pixels to show is the dialog's business (`dni_client.preview_area`).
"""

from __future__ import annotations

from .preview_image import checker
from .qt import (
    QColor,
    QImage,
    QPainter,
    QPen,
    QPixmap,
    QPoint,
    QRect,
    QSize,
    Qt,
    QWidget,
    pyqtSignal,
)

GRAB_PX = 6  # how close to the split line a press grabs it


def _event_pos(event: object) -> QPoint:
    # Qt 6 mouse events have position() (QPointF); Qt 5 has pos().
    if hasattr(event, "position"):
        return event.position().toPoint()
    return event.pos()


class PreviewView(QWidget):
    """Shows `before` left of the split and `after` right of it, at a fixed zoom."""

    panned = pyqtSignal(int, int)  # screen pixels dragged, once the drag ends
    zoomed = pyqtSignal(int)  # wheel steps: +1 in, -1 out

    def __init__(self, width: int, height: int) -> None:
        super().__init__()
        self.setFixedSize(width, height)
        self.setMouseTracking(True)
        self.before: QImage | None = None
        self.after: QImage | None = None
        self.split = 0.5  # fraction of the width; 0 = all after, 1 = all before
        self.zoom = 1.0
        self._press: QPoint | None = None
        self._dragging_split = False
        self._drag = QPoint(0, 0)
        self._checker: QPixmap | None = None
        self.setToolTip("Drag the line to compare before | after, drag the picture to "
                        "move it, scroll to zoom.")

    def show_images(self, before: QImage | None, after: QImage | None) -> None:
        self.before, self.after = before, after
        self.update()

    def set_split(self, fraction: float) -> None:
        self.split = min(max(fraction, 0.0), 1.0)
        self.update()

    def _target(self, image: QImage) -> QRect:
        size = QSize(int(image.width() * self.zoom), int(image.height() * self.zoom))
        x = (self.width() - size.width()) // 2 + self._drag.x()
        y = (self.height() - size.height()) // 2 + self._drag.y()
        return QRect(x, y, size.width(), size.height())

    def paintEvent(self, _event: object) -> None:  # noqa: N802 - Qt override
        painter = QPainter(self)
        if self._checker is None or self._checker.size() != self.size():
            self._checker = checker(self.width(), self.height())  # drawn once per size
        painter.drawPixmap(0, 0, self._checker)
        line = int(self.width() * self.split)
        shown = [(self.before, QRect(0, 0, line, self.height())),
                 (self.after if self.after is not None else self.before,
                  QRect(line, 0, self.width() - line, self.height()))]
        for image, clip in shown:
            if image is None or clip.width() <= 0:
                continue
            painter.setClipRect(clip)
            painter.drawImage(self._target(image), image)
        painter.setClipping(False)
        if 0 < line < self.width():
            painter.setPen(QPen(QColor(255, 255, 255), 1))
            painter.drawLine(line, 0, line, self.height())
            painter.setPen(QColor(255, 255, 255))
            painter.drawText(6, 16, "before")
            painter.drawText(line + 6, 16, "after")
        painter.end()

    def mousePressEvent(self, event: object) -> None:  # noqa: N802 - Qt override
        self._press = _event_pos(event)
        self._dragging_split = abs(self._press.x() - self.width() * self.split) <= GRAB_PX

    def mouseMoveEvent(self, event: object) -> None:  # noqa: N802 - Qt override
        pos = _event_pos(event)
        near = abs(pos.x() - self.width() * self.split) <= GRAB_PX
        self.setCursor(Qt.CursorShape.SplitHCursor if near or self._dragging_split
                       else Qt.CursorShape.OpenHandCursor)
        if self._press is None:
            return
        if self._dragging_split:
            self.set_split(pos.x() / max(1, self.width()))
        else:
            self._drag = pos - self._press  # shown at once; the new crop follows on release
            self.update()

    def mouseReleaseEvent(self, event: object) -> None:  # noqa: N802 - Qt override
        pos = _event_pos(event)
        if self._press is not None and not self._dragging_split:
            moved = pos - self._press
            if moved.manhattanLength() > 2:
                self.panned.emit(moved.x(), moved.y())
        self._press = None
        self._dragging_split = False

    def picture_moved(self) -> None:
        """The dialog has re-read the area after a pan: drop the temporary offset."""
        self._drag = QPoint(0, 0)
        self.update()

    def wheelEvent(self, event: object) -> None:  # noqa: N802 - Qt override
        steps = 1 if event.angleDelta().y() > 0 else -1
        self.zoomed.emit(steps)


class Overview(QWidget):
    """The whole image, small, with the previewed area outlined; a click picks the area."""

    picked = pyqtSignal(float, float)  # image coordinates

    def __init__(self, width: int, height: int) -> None:
        super().__init__()
        self.setFixedSize(width, height)
        self.thumbnail: QImage | None = None
        self.image_size = (1, 1)
        self.area: tuple[int, int, int, int] | None = None  # x, y, w, h in image pixels
        self.setToolTip("Click to preview that part of the image.")
        self.setCursor(Qt.CursorShape.CrossCursor)

    def set_image(self, thumbnail: QImage | None, width: int, height: int) -> None:
        self.thumbnail, self.image_size = thumbnail, (max(1, width), max(1, height))
        self.update()

    def set_area(self, x: int, y: int, width: int, height: int) -> None:
        self.area = (x, y, width, height)
        self.update()

    def _fit(self) -> tuple[float, int, int]:
        w, h = self.image_size
        factor = min(self.width() / w, self.height() / h)
        return factor, int((self.width() - w * factor) / 2), int((self.height() - h * factor) / 2)

    def paintEvent(self, _event: object) -> None:  # noqa: N802 - Qt override
        painter = QPainter(self)
        painter.fillRect(0, 0, self.width(), self.height(), QColor(68, 68, 68))
        factor, ox, oy = self._fit()
        w, h = self.image_size
        if self.thumbnail is not None:
            painter.drawImage(QRect(ox, oy, int(w * factor), int(h * factor)), self.thumbnail)
        if self.area is not None:
            x, y, aw, ah = self.area
            painter.setPen(QPen(QColor(255, 200, 0), 2))
            painter.drawRect(int(ox + x * factor), int(oy + y * factor),
                             max(2, int(aw * factor)), max(2, int(ah * factor)))
        painter.end()

    def mousePressEvent(self, event: object) -> None:  # noqa: N802 - Qt override
        pos = _event_pos(event)
        factor, ox, oy = self._fit()
        self.picked.emit((pos.x() - ox) / factor, (pos.y() - oy) / factor)
