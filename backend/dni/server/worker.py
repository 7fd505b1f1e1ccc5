"""A worker: one thread per device that takes jobs from the shared queue and runs them on
its own Engine. It never touches a socket: its progress, results and errors go to the I/O
thread through the outbox."""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np

from dni_client import protocol as P

from . import layouts
from .counters import Counters
from .failures import describe
from .jobs import Job, JobQueue
from .outbox import Outbox, Outgoing, Post

log = logging.getLogger("dni.server")


class Engine(Protocol):
    """What the server needs of an engine (dni.engine.Engine; tests script their own)."""

    @property
    def device(self) -> str: ...

    def families(self) -> list[dict[str, Any]]: ...

    def run(self, family: str, image: np.ndarray, **options: Any) -> np.ndarray: ...

    def estimate(self, family: str, image: np.ndarray, per_region: bool = False) -> Any: ...


class Worker:
    def __init__(self, engine: Engine, jobs: JobQueue, outbox: Outbox, counters: Counters,
                 server_name: str) -> None:
        self.engine = engine
        self._jobs = jobs
        self._outbox = outbox
        self._counters = counters
        self._server_name = server_name

    def run(self) -> None:
        """The thread's body: until the queue says the server is stopping."""
        with self._outbox.poster() as post:
            while (job := self._jobs.take()) is not None:
                try:
                    self._run_job(job, post)
                finally:
                    job.release()

    def _run_job(self, job: Job, post: Post) -> None:
        def progress(fraction: float, stage: str) -> None:
            if job.cancel.is_set():
                job.tiles_after_cancel += 1  # the cancel rule's evidence (docs/protocol.md)
            post(Outgoing(job, job.progress(round(float(fraction), 6), str(stage))))

        started = time.perf_counter()
        frames: Sequence[Any] = ()
        try:
            progress(0.0, "started")
            payload, found = self._compute(job, progress)
            frames = [payload]
            header = {**found, "kind": P.KIND_RESULT, "width": int(payload.shape[1]),
                      "height": int(payload.shape[0]), "layout": job.request.layout,
                      "seconds": round(time.perf_counter() - started, 4),
                      "device": str(self.engine.device), "worker": self._server_name}
            self._counters.add("completed")
        # Whatever the engine raises, a worker thread must not die: the client gets an
        # error reply and the server serves on.
        except Exception as exc:  # noqa: BLE001
            header = self._failure(job, exc)
        header["id"] = job.id
        post(Outgoing(job, header, frames, terminal=True))

    def _compute(self, job: Job, progress: Callable[[float, str], None]
                 ) -> tuple[np.ndarray, dict[str, Any]]:
        """Decode the frames, run the engine, encode the result in the request's layout;
        with it, the result header's "auto" when the strength was read off the pixels."""
        request = job.request
        size = request.width, request.height
        image = layouts.to_array(memoryview(request.frames[P.FRAME_PIXELS]), *size,
                                 request.layout)
        planes = {name: layouts.plane_to_array(memoryview(request.frames[name]), *size, name)
                  for name in (P.FRAME_MASK, P.FRAME_STRENGTH_MAP) if name in request.frames}
        strength, smap, found = request.strength, planes.get(P.FRAME_STRENGTH_MAP), {}
        if request.auto is not None:
            by_map = request.auto == P.FRAME_STRENGTH_MAP
            estimate = self.engine.estimate(request.family, image, per_region=by_map)
            strength, smap = (None, estimate.strength_map) if by_map else \
                (estimate.strength, smap)
            found = {"auto": estimate.to_json()}
        out = self.engine.run(
            request.family, image, strength=strength, weights=request.weights,
            mask=planes.get(P.FRAME_MASK), strength_map=smap,
            mode=request.mode, tile=request.tile, progress=progress,
            cancelled=job.cancel.is_set,
            # previews: the device's fastest reduced precision (bf16 on CPUs that have it
            # is ~5x quicker, within a few levels of 255)
            precision="fast" if request.preview else None)
        return layouts.from_array(out, request.layout), found

    def _failure(self, job: Job, exc: Exception) -> dict[str, Any]:
        failure = describe(exc)
        header: dict[str, Any] = {"kind": P.KIND_ERROR, "code": failure.code,
                                  "message": failure.message}
        if failure.code == "cancelled":
            self._counters.add("cancelled")
            header["tiles_after_cancel"] = job.tiles_after_cancel
        else:
            self._counters.add("failed")
        if failure.unexpected:
            log.error("job %s failed: %s", job.id, traceback.format_exc())
        return header
