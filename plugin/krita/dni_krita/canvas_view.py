"""What the artist sees of a document: the part of the image the active view shows, and
the position in the active document's undo history.

libkis (Krita 5.1) has no call for either, so both are read from Krita's widgets, best
effort: every function returns None when the widgets are not what it expects, and the
callers then fall back (the image's centre; an ordinary undoable removal).
"""

from __future__ import annotations

from typing import Any

from krita import Krita

from dni_client.geometry import Rect

from .qt import QAbstractItemView, QAbstractScrollArea, QMdiArea


def _active_window_and_view(doc: Any) -> tuple[Any, Any] | None:
    window = Krita.instance().activeWindow()
    view = window.activeView() if window is not None else None
    if view is None or view.document() is None \
            or view.document().rootNode().uniqueId() != doc.rootNode().uniqueId():
        return None
    return window, view


def _canvas_controller(window: Any) -> Any:
    """The scroll area of the active sub-window's canvas (not just the first one found:
    with several documents open, that may be another document's)."""
    qwindow = window.qwindow()
    mdi = qwindow.findChild(QMdiArea) if qwindow is not None else None
    holder = mdi.activeSubWindow() if mdi is not None else None
    if holder is None:
        return None
    for area in holder.findChildren(QAbstractScrollArea):
        if area.metaObject().className() == "KisCanvasController":
            return area
    return None


def _visible_span(bar: Any, image_size: int) -> tuple[float, float] | None:
    """Image coordinates at the two edges of the view along one scroll bar.

    Krita lets the image scroll out to a margin on both sides: the bar runs from
    -margin to (image size on screen - page + margin), so the image's size on screen is
    maximum + minimum + page, and the bar's value is the image's offset on screen."""
    on_screen = bar.maximum() + bar.minimum() + bar.pageStep()
    if on_screen <= 0 or image_size <= 0:
        return None
    per_pixel = on_screen / image_size
    return bar.value() / per_pixel, (bar.value() + bar.pageStep()) / per_pixel


def visible_rect(doc: Any) -> Rect | None:
    """The part of `doc` the active view shows, in image pixels; None when `doc` is not
    the active view's document or the view is rotated (its edges are not the image's)."""
    found = _active_window_and_view(doc)
    if found is None:
        return None
    window, view = found
    canvas = view.canvas()
    if canvas is not None and abs(float(canvas.rotation())) > 1e-6:
        return None
    controller = _canvas_controller(window)
    if controller is None:
        return None
    width, height = int(doc.width()), int(doc.height())
    xs = _visible_span(controller.horizontalScrollBar(), width)
    ys = _visible_span(controller.verticalScrollBar(), height)
    if xs is None or ys is None:
        return None
    x0, x1 = max(0, int(xs[0])), min(width, int(xs[1] + 0.999))
    y0, y1 = max(0, int(ys[0])), min(height, int(ys[1] + 0.999))
    if x1 <= x0 or y1 <= y0:
        return None
    return Rect(x0, y0, x1 - x0, y1 - y0)


def _history_view() -> Any:
    """The Undo History docker's list (it shows the active document's history)."""
    dockers = [d for d in Krita.instance().dockers() if d.objectName() == "History"]
    if not dockers:
        return None
    for view in dockers[0].findChildren(QAbstractItemView):
        if view.model() is not None:
            return view
    return None


def undo_position(doc: Any) -> tuple[int, int] | None:
    """(commands in the history, the current one) of `doc`, read from the Undo History
    docker, which follows the active document; None if `doc` is not active or the docker
    is missing."""
    if _active_window_and_view(doc) is None:
        return None
    view = _history_view()
    if view is None:
        return None
    return int(view.model().rowCount()), int(view.currentIndex().row())


def undo_names(doc: Any) -> list[str] | None:
    """The names of the history's rows ("Add Layer", …) of `doc`, as the docker lists
    them; None as for undo_position."""
    if _active_window_and_view(doc) is None:
        return None
    view = _history_view()
    if view is None:
        return None
    model = view.model()
    return [str(model.data(model.index(row, 0))) for row in range(model.rowCount())]


def undo_selection_model() -> Any:
    """The Undo History list's selection model: its current row follows every undo and
    redo of the active document. None without the docker."""
    view = _history_view()
    return view.selectionModel() if view is not None else None
