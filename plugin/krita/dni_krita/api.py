"""The scripting entry point: `dni_krita.run_filter(...)` for Krita's Scripter and batch
scripts (and the end-to-end tests). It blocks the script, not Krita: while it waits,
Krita's event loop keeps running."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from dni_client.errors import FilterError, RequestError
from dni_client.job import Amount

from . import core
from .plugin import instance


def pump_events() -> None:
    """Let Krita repaint and handle input while a script waits."""
    from .qt import QCoreApplication

    QCoreApplication.processEvents()


def _pump() -> Callable[[], None] | None:
    try:
        from .qt import QCoreApplication  # noqa: F401
    except ImportError:  # tests without Qt
        return None
    return pump_events


def _krita() -> Any:
    from krita import Krita

    return Krita.instance()


def walk(node: Any):  # noqa: ANN201 - a generator of Krita nodes
    yield node
    for child in node.childNodes():
        yield from walk(child)


def document_of(node: Any) -> Any:
    """The open document that holds `node` (libkis nodes do not know their document)."""
    wanted = node.uniqueId()
    for doc in _krita().documents():
        if any(n.uniqueId() == wanted for n in walk(doc.rootNode())):
            return doc
    return None


def _resolve_map(doc: Any, strength_map: Any) -> Any:
    if not isinstance(strength_map, str) or strength_map == core.MAP_SELECTION:
        return strength_map
    node = doc.nodeByName(strength_map)
    if node is None:
        raise RequestError(f"There is no layer named '{strength_map}' to use as a strength "
                           "map.")
    return node


def _amount(strength: float | None, weights: Sequence[float] | None) -> Amount:
    if strength is not None and weights is not None:
        raise RequestError("Give a strength or weights, not both.")
    if weights is not None:
        return Amount(None, tuple(weights))
    return Amount(0.5 if strength is None else strength, None)


def _target(layer: Any, document: Any) -> tuple[Any, Any]:
    doc = document
    if doc is None and layer is not None:
        doc = document_of(layer)
    if doc is None:
        doc = _krita().activeDocument()
    if doc is None:
        raise RequestError("Open an image first.")
    return doc, layer if layer is not None else doc.activeNode()


def run_filter(family: str, strength: float | None = None,
               weights: Sequence[float] | None = None, layer: Any = None,
               selection_only: bool = True, strength_map: Any = None, *,
               mode: str = "network", target: str = core.TARGET_NEW_LAYER,
               sr_output: str = core.SR_NEW_DOCUMENT, document: Any = None,
               timeout: float = 600.0,
               on_progress: Callable[[float], Any] | None = None) -> Any:
    """Filter a paint layer with an interpolated network; return the new layer.

    family: a family name (`dni families`), e.g. "denoise", "super-resolve", "stylize".
    strength: 0 = the family's first member .. 1 = its last (default 0.5); or
    weights: one per member, >= 0, summing to 1 (not rescaled).
    layer: a paint layer (default: the active layer of the active document).
    selection_only: with a selection, filter inside it only (soft edges kept).
    strength_map: "selection", a greyscale layer (Node) or a layer name: white = strongest,
      black = weakest, per pixel.
    mode: "network" (DNI) or "pixel" (blend the members' outputs: the paper's baseline).
    target: "new_layer" (above the source; the default) or "replace" (undoable).
    sr_output: for super-resolution, "new_document" (the default: the source stays) or
      "resize" (enlarge this image and add the result as a new layer: one undo step).
    on_progress(fraction): returning True cancels the job.
    Raises FilterError with a message for the user; the document is unchanged then.
    """
    doc, node = _target(layer, document)
    plugin = instance()
    pump = _pump()
    plugin.session.wait_connected(pump=pump)
    options = core.Options(_amount(strength, weights), mode, selection_only,
                           _resolve_map(doc, strength_map), target, sr_output)
    job = core.prepare(doc, node, plugin.session.family(family), options)
    progress = None if on_progress is None else (lambda fraction, _stage: on_progress(fraction))
    result = plugin.session.run(job.spec, timeout=timeout, pump=pump, on_progress=progress)
    layer = plugin.apply(job, result)
    if pump is not None:
        # Krita's layer views learn of the new layer through queued events; a script that
        # goes straight on (e.g. deselecting) before they have caught up crashed Krita
        # 5.1.5 now and then (a "dummy" assertion, then a segfault).
        pump()
    return layer


__all__ = ["FilterError", "run_filter"]
