"""The preview on the canvas: a temporary, locked layer right above the source, filled
with the filter's result over the visible part of the image (or the selection in it).

Adding a layer is one step in Krita's undo history and writing its pixels is none. When
the preview goes away and nothing was done since it appeared, that step is undone, so the
history is as it was; otherwise the layer is removed as an ordinary (undoable) step.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from krita import Krita

from dni_client.errors import FilterError
from dni_client.geometry import Rect
from dni_client.session import JobHandle, Session

from . import canvas_view, core
from .preview import PreviewScheduler
from .qt import QObject

LAYER_NAME = "DNI preview"
MAX_SIDE = 1024  # a larger visible area is previewed around its centre


def preview_rect(doc: Any, selection_only: bool) -> Rect:
    """The visible part of the image (all of it when unknown), inside the selection's
    bounds when the filter works inside the selection, at most MAX_SIDE per side."""
    image = core.image_rect(doc)
    area = canvas_view.visible_rect(doc) or image
    selection = core.selection_rect(doc)
    if selection_only and selection is not None and not selection.intersect(area).empty:
        area = selection.intersect(area)
    width, height = min(area.width, MAX_SIDE), min(area.height, MAX_SIDE)
    x = area.x + (area.width - width) // 2
    y = area.y + (area.height - height) // 2
    return Rect(x, y, width, height)


class CanvasPreview(QObject):
    def __init__(self, parent: QObject, session: Session, doc: Any, node: Any,
                 make_job: Callable[[], core.KritaJob | None],
                 status: Callable[[str], None]) -> None:
        super().__init__(parent)
        self.doc, self.node = doc, node
        self.layer: Any = None
        self.shown: Rect | None = None  # where the layer has pixels
        self.updates = 0  # for scripts and tests: previews written to the canvas
        self._history_mark: tuple[int, int] | None = None
        self.scheduler = PreviewScheduler(self, session, make_job, self._shown, status)

    def schedule(self) -> None:
        self.scheduler.schedule()

    def _ensure_layer(self) -> Any:
        if self.layer is not None and core.node_alive(self.layer):
            return self.layer
        if not core.node_alive(self.node):
            raise FilterError("The layer being filtered has been deleted.")
        layer = core.new_paint_layer(self.doc, self.node, LAYER_NAME)
        self.node.parentNode().addChildNode(layer, self.node)
        layer.setLocked(True)  # a preview, not something to paint on
        self.doc.setActiveNode(self.node)
        self.layer, self.shown = layer, None
        self._history_mark = canvas_view.undo_position(self.doc)
        return layer

    def _shown(self, job: core.KritaJob, handle: JobHandle) -> None:
        result = handle.result
        assert result is not None
        try:
            pixels = core.result_pixels(job, result.width, result.height, result.layout,
                                        result.pixels)
            layer = self._ensure_layer()
        except FilterError:
            return  # the dialog's own preview reports what went wrong
        place = job.area.crop
        if self.shown is not None and self.shown != place:
            old = self.shown
            layer.setPixelData(bytes(old.area * job.spec.fmt.bytes_per_pixel), old.x, old.y,
                               old.width, old.height)
        layer.setPixelData(pixels, place.x, place.y, place.width, place.height)
        self.shown = place
        self.updates += 1
        self.doc.refreshProjection()

    def close(self) -> None:
        """Stop previewing and take the layer away."""
        self.scheduler.stop()
        layer, self.layer = self.layer, None
        if layer is None or not core.node_alive(layer):
            return
        mark = self._history_mark
        if mark is not None and canvas_view.undo_position(self.doc) == mark:
            Krita.instance().action("edit_undo").trigger()  # the "Add Layer" step itself
            self.doc.waitForDone()  # the undo runs as a stroke: let it finish first
        if core.node_alive(layer):
            layer.remove()
        self.doc.refreshProjection()
        self.doc.waitForDone()
