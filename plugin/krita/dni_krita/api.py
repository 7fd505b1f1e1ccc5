"""The scripting entry point: `dni_krita.run_filter(...)` for Krita's Scripter and batch
scripts (and the end-to-end tests). It blocks the script, not Krita: while it waits,
Krita's event loop keeps running."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from dni_client.requests import RequestError

from . import core
from .connection import BackendError, Connection, Waiter, wait_job
from .settings import Settings

_connection: Connection | None = None
last_job: core.Job | None = None  # the last job run_filter applied (its doc, area...)


class DNIError(Exception):
    """Why a filter could not run; the message is meant for the user."""


def connection() -> Connection:
    """The plugin's shared backend connection (created on first use)."""
    global _connection
    if _connection is None:
        _connection = Connection(Settings.load())
    return _connection


def set_connection(conn: Connection | None) -> None:
    """Replace the shared connection (tests; settings changes)."""
    global _connection
    if _connection is not None and conn is not _connection:
        _connection.shutdown()
    _connection = conn


def pump_events() -> None:
    """Let Krita repaint and handle input while a script waits."""
    try:
        from PyQt5.QtCore import QCoreApplication

        QCoreApplication.processEvents()
    except ImportError:
        pass


def _krita() -> Any:
    from krita import Krita

    return Krita.instance()


def _walk(node: Any):
    yield node
    for child in node.childNodes():
        yield from _walk(child)


def document_of(node: Any) -> Any:
    """The open document that holds `node` (libkis nodes do not know their document)."""
    wanted = node.uniqueId()
    for doc in _krita().documents():
        if any(n.uniqueId() == wanted for n in _walk(doc.rootNode())):
            return doc
    return None


def _resolve_map(doc: Any, strength_map: Any) -> Any:
    if strength_map is None or strength_map == core.MAP_SELECTION:
        return strength_map
    if isinstance(strength_map, str):
        node = doc.nodeByName(strength_map)
        if node is None:
            raise DNIError(f"There is no layer named '{strength_map}' to use as a strength "
                           "map.")
        return node
    return strength_map


def run_filter(family: str, strength: float | None = None,
               weights: Sequence[float] | None = None, layer: Any = None,
               selection_only: bool = True, strength_map: Any = None, *,
               mode: str = "network", target: str = core.TARGET_NEW_LAYER,
               sr_output: str = core.SR_RESIZE, document: Any = None,
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
    sr_output: for super-resolution, "resize" (enlarge this image) or "new_document".
    Raises DNIError with a message for the user; the document is unchanged then.
    """
    global last_job
    app = _krita()
    doc = document
    if doc is None and layer is not None:
        doc = document_of(layer)
    if doc is None:
        doc = app.activeDocument()
    if doc is None:
        raise DNIError("Open an image first.")
    if layer is None:
        layer = doc.activeNode()
    conn = connection()
    try:
        conn.wait_connected(pump=pump_events)
        fam = conn.family(family)
        options = core.Options(strength=strength, weights=tuple(weights) if weights else None,
                               mode=mode, selection_only=selection_only,
                               strength_map=_resolve_map(doc, strength_map), target=target,
                               sr_output=sr_output)
        job = core.prepare(doc, layer, fam, options)
        waiter = Waiter(on_progress)
        job_id = conn.submit(job.submit_kwargs(), waiter)
        wait_job(conn, waiter, job_id, timeout, pump=pump_events)
        if waiter.kind != "result":
            raise DNIError(_error_text(waiter.header))
        h = waiter.header
        new_layer = core.apply_result(job, int(h["width"]), int(h["height"]), str(h["layout"]),
                                      waiter.pixels or b"")
        last_job = job
        return new_layer
    except (RequestError, BackendError) as exc:
        raise DNIError(str(exc)) from None


def _error_text(header: dict[str, Any]) -> str:
    code = str(header.get("code") or "error")
    message = str(header.get("message") or "unknown error")
    if code == "cancelled":
        return "Cancelled; the image was not changed."
    if code == "backend_died":
        return f"{message} The image was not changed."
    if code == "connection_lost":
        return f"The backend stopped answering ({message}); the image was not changed."
    if code == "out_of_memory":
        return ("The backend ran out of memory; the image was not changed. Try a smaller "
                "selection or the CPU device.")
    return f"The backend refused the job ({code}): {message}"


# -- asynchronous jobs for the dialog and the docker --------------------------------------

class RunningJob:
    """A full-size job in flight; the docker shows its progress and can cancel it."""

    def __init__(self, job: core.Job, on_finished: Callable[[Any, str | None], None]
                 ) -> None:
        self.job = job
        self.job_id = ""
        self.fraction = 0.0
        self.done = False
        self.on_finished = on_finished

    def cancel(self) -> None:
        if not self.done and self.job_id:
            connection().cancel(self.job_id)


current: RunningJob | None = None
last_run: dict[str, Any] | None = None  # what the docker re-runs
job_listeners: list = []  # callables() told when `current` changes or progresses


def _notify() -> None:
    for listener in list(job_listeners):
        try:
            listener()
        except Exception:
            pass


def start_job(doc: Any, node: Any, family: dict[str, Any], options: core.Options,
              on_finished: Callable[[Any, str | None], None]) -> RunningJob:
    """Read the pixels now, run on the backend, apply when the answer arrives (GUI thread).
    on_finished(new_layer, None) or on_finished(None, message). RequestError/BackendError
    for problems found before anything was sent."""
    global current, last_run
    conn = connection()
    job = core.prepare(doc, node, family, options)
    running = RunningJob(job, on_finished)
    record: dict[str, Any] = {"doc": doc, "node": node, "family": family["name"],
                              "options": options, "layer": None}

    def handler(kind: str, header: dict[str, Any], pixels: bytes | None) -> None:
        global current, last_job
        if kind == "progress":
            running.fraction = float(header.get("fraction") or 0.0)
            _notify()
            return
        running.done = True
        if current is running:
            current = None
        layer, error = None, None
        if kind == "result":
            try:
                layer = core.apply_result(job, int(header["width"]), int(header["height"]),
                                          str(header["layout"]), pixels or b"")
                last_job = job
                record["layer"] = layer
            except RequestError as exc:
                error = str(exc)
        else:
            error = _error_text(header)
        _notify()
        running.on_finished(layer, error)

    running.job_id = conn.submit(job.submit_kwargs(), handler)
    current = running
    last_run = record
    _notify()
    return running
