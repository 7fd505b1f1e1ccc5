"""The `dni serve` server: one ROUTER socket, a job queue, one inference worker per device.

Threads:

* the I/O thread (the caller of `Server.serve`) owns the ROUTER socket. It validates
  requests, answers hello/families/ping/stats/cancel at once, queues runs, and sends
  everything the workers produce. It never runs a network, so it always answers.
* one worker thread per device owns one Engine and takes jobs from the shared queue.
  Workers hand replies to the I/O thread through a queue plus a one-byte inproc wake-up
  (ZeroMQ sockets must stay in one thread).

A client counts as gone when the ROUTER can no longer route to it (ROUTER_MANDATORY makes
that an error instead of a silent drop; libzmq heartbeats close dead TCP peers): its
queued jobs are dropped and its running job is cancelled.
"""

from __future__ import annotations

import errno
import logging
import os
import queue
import socket
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import zmq

from dni_client import protocol as P

from .. import __version__, layouts
from ..errors import Cancelled, DNIError
from .security import (
    CurveKeys,
    SecurityError,
    check_endpoint,
    make_curve_client,
    make_curve_server,
    start_authenticator,
    wildcard_port,
)

log = logging.getLogger("dni.server")

_WAKE_ENDPOINT = "inproc://dni-server-wake-{}"
_SEND_RETRY_S = 5.0            # a terminal reply waits this long for a slow client
_FAMILIES_TTL_S = 2.0           # hello/families re-read the manifests at most this often
_MAX_BATCH = 64                 # requests handled before the outbox gets a turn


@dataclass
class Limits:
    max_header_bytes: int = P.MAX_HEADER_BYTES
    max_side: int = P.MAX_SIDE
    max_pixels: int = P.MAX_PIXELS
    max_queue: int = 64             # queued jobs, all clients together
    max_queue_per_client: int = 16
    max_queue_bytes: int = 4 * 2**30

    @property
    def max_frame_bytes(self) -> int:
        widest = max(channels * size for channels, size, _, _ in P.LAYOUTS.values())
        return self.max_pixels * widest

    def to_dict(self) -> dict[str, int]:
        return {"max_header_bytes": self.max_header_bytes, "max_side": self.max_side,
                "max_pixels": self.max_pixels, "max_frames": P.MAX_FRAMES,
                "max_message_bytes": self.max_frame_bytes, "max_queue": self.max_queue,
                "max_queue_per_client": self.max_queue_per_client}


@dataclass
class Job:
    client: tuple[bytes, ...]        # routing ids: the reply envelope and the client's key
    id: str
    family: str
    width: int
    height: int
    layout: str
    frames: dict[str, Any]           # frame name -> zmq.Frame (kept alive for zero-copy)
    nbytes: int
    strength: float | None = None
    weights: list[float] | None = None
    mode: str = "network"
    preview: bool = False
    tile: int | None = None
    state: str = "queued"            # queued -> running -> done
    cancel: threading.Event = field(default_factory=threading.Event)
    vanished: bool = False
    tiles_after_cancel: int = 0

    @property
    def key(self) -> tuple[tuple[bytes, ...], str]:
        return self.client, self.id


@dataclass
class _Outgoing:
    job: Job | None
    header: dict[str, Any]
    frames: Sequence[Any] = ()
    terminal: bool = False


EngineFactory = Callable[[str], Any]


def _default_engine_factory(family_paths: Sequence[Path], max_pixels: int) -> EngineFactory:
    def make(device: str) -> Any:
        from ..engine import Engine

        return Engine(device, list(family_paths), max_pixels=max_pixels)

    return make


class Server:
    """Serve jobs on `endpoint` (bind) or, behind a broker, on `connect` endpoints."""

    def __init__(self, endpoint: str | None = P.DEFAULT_ENDPOINT, *,
                 connect: Sequence[str] = (), devices: Sequence[str] = ("auto",),
                 family_paths: Sequence[Path] = (), curve: CurveKeys | None = None,
                 limits: Limits | None = None, engine_factory: EngineFactory | None = None,
                 context: zmq.Context | None = None) -> None:
        self.limits = limits or Limits()
        for address in ([endpoint] if endpoint else []) + list(connect):
            check_endpoint(address, curve)  # before anything is bound or loaded
        if not endpoint and not connect:
            raise ValueError("give an endpoint to bind or one to connect to")
        self.name = f"{socket.gethostname()}:{os.getpid()}:{id(self) & 0xFFFF:04x}"
        self._context = context or zmq.Context()
        self._own_context = context is None
        self._curve = curve
        self._auth = start_authenticator(self._context, curve) if curve and endpoint else None
        factory = engine_factory or _default_engine_factory(family_paths,
                                                             self.limits.max_pixels)
        self._engines = [factory(device) for device in devices]
        self.devices = [str(engine.device) for engine in self._engines]

        self.endpoints: list[str] = []
        self._router = self._context.socket(zmq.ROUTER)
        try:
            self._open_router(endpoint, connect, curve)
        except BaseException:
            self._router.close(linger=0)
            if self._auth is not None:
                self._auth.stop()
            if self._own_context:
                self._context.term()
            raise
        wake_endpoint = _WAKE_ENDPOINT.format(id(self))
        self._wake_endpoint = wake_endpoint
        self._wake = self._context.socket(zmq.PULL)
        self._wake.bind(wake_endpoint)
        self._outbox: queue.SimpleQueue[_Outgoing] = queue.SimpleQueue()
        self._local = threading.local()  # each worker's PUSH end of the wake-up pipe

        self._cond = threading.Condition()
        self._queue: deque[Job] = deque()
        self._jobs: dict[tuple[tuple[bytes, ...], str], Job] = {}
        self._queued_bytes = 0
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._families_cache: tuple[float, list[dict[str, Any]]] | None = None
        self.counters = {"requests": 0, "errors": 0, "completed": 0, "failed": 0,
                         "cancelled": 0, "superseded": 0, "vanished_dropped": 0}

    def _open_router(self, endpoint: str | None, connect: Sequence[str],
                     curve: CurveKeys | None) -> None:
        r = self._router
        self.endpoints = []
        r.setsockopt(zmq.LINGER, 0)
        r.setsockopt(zmq.ROUTER_MANDATORY, 1)
        r.setsockopt(zmq.MAXMSGSIZE, self.limits.max_frame_bytes + 1024)
        r.setsockopt(zmq.HEARTBEAT_IVL, 2000)
        r.setsockopt(zmq.HEARTBEAT_TIMEOUT, 6000)
        r.setsockopt(zmq.HEARTBEAT_TTL, 6000)
        r.setsockopt(zmq.SNDHWM, 10000)
        r.setsockopt(zmq.RCVHWM, 1000)
        if curve is not None:
            if endpoint and connect:
                raise SecurityError("with CurveZMQ, bind an endpoint or connect to a broker, "
                                    "not both")
            # Bound: clients authenticate to us. Connected to a broker: we authenticate
            # to it with the folder's client key pair.
            (make_curve_server if endpoint else make_curve_client)(r, curve)
        if endpoint:
            r.bind(wildcard_port(endpoint))
            self.endpoints.append(r.getsockopt_string(zmq.LAST_ENDPOINT))
        for address in connect:
            r.connect(address)
            self.endpoints.append(address)

    # -- lifecycle ---------------------------------------------------------------------

    def serve(self, ready: Callable[[Server], None] | None = None) -> None:
        """Run until stop() is called (from a signal handler or another thread)."""
        for index, engine in enumerate(self._engines):
            thread = threading.Thread(target=self._worker, args=(engine,), daemon=True,
                                      name=f"dni-worker-{index}")
            thread.start()
            self._threads.append(thread)
        if ready is not None:
            ready(self)
        poller = zmq.Poller()
        poller.register(self._router, zmq.POLLIN)
        poller.register(self._wake, zmq.POLLIN)
        try:
            while not self._stopping.is_set():
                events = dict(poller.poll(200))
                if self._wake in events:
                    self._drain_wake()
                if self._router in events:
                    for _ in range(_MAX_BATCH):
                        try:
                            frames = self._router.recv_multipart(zmq.NOBLOCK, copy=False)
                        except zmq.Again:
                            break
                        self._handle(frames)
                self._flush_outbox()
        finally:
            self._shutdown()

    def stop(self) -> None:
        self._stopping.set()

    def _shutdown(self) -> None:
        with self._cond:
            for job in self._queue:
                self._send_error(job.client, job.id, "shutting_down", "the server is stopping")
            self._queue.clear()
            for job in self._jobs.values():
                job.cancel.set()
            self._cond.notify_all()
        for thread in self._threads:
            thread.join(timeout=5.0)
        self._flush_outbox()
        self._router.close(linger=0)
        self._wake.close(linger=0)
        if self._auth is not None:
            self._auth.stop()
        # term() waits for every socket; a worker stuck in a long tile still holds one.
        if self._own_context and not any(t.is_alive() for t in self._threads):
            self._context.term()

    # -- sending -----------------------------------------------------------------------

    def _send(self, client: Sequence[bytes], header: dict[str, Any],
              frames: Sequence[Any] = (), droppable: bool = False) -> bool:
        """Send one message; False when the client is gone (or the message was dropped)."""
        header.setdefault("v", P.PROTOCOL_VERSION)
        message = [*client, b"", P.encode_header(header), *frames]
        deadline = None
        while True:
            try:
                self._router.send_multipart(message, zmq.NOBLOCK, copy=False)
                return True
            except zmq.Again:
                # The client reads slower than we produce: progress can go, results wait.
                if droppable or self._stopping.is_set():
                    return False
                deadline = deadline or time.monotonic() + _SEND_RETRY_S
                if time.monotonic() > deadline:
                    log.warning("dropping a reply to a client that stopped reading")
                    return False
                time.sleep(0.005)
            except zmq.ZMQError as exc:
                if exc.errno == errno.EHOSTUNREACH:
                    self._client_gone(tuple(client))
                    return False
                raise

    def _send_error(self, client: Sequence[bytes], request_id: Any, code: str,
                    message: str) -> None:
        self.counters["errors"] += 1
        header: dict[str, Any] = {"kind": P.KIND_ERROR, "code": code, "message": message}
        if isinstance(request_id, str) and len(request_id) <= 64:
            header["id"] = request_id
        self._send(client, header)

    def _emit(self, item: _Outgoing) -> None:
        """From a worker thread: hand a message to the I/O thread."""
        self._outbox.put(item)
        try:
            self._local.wake.send(b"", zmq.NOBLOCK)
        except zmq.Again:
            pass  # the I/O thread has wake-ups pending already

    def _drain_wake(self) -> None:
        while True:
            try:
                self._wake.recv(zmq.NOBLOCK)
            except zmq.Again:
                return

    def _flush_outbox(self) -> None:
        while True:
            try:
                item = self._outbox.get_nowait()
            except queue.Empty:
                return
            job = item.job
            if job is not None and job.vanished:
                if item.terminal:
                    with self._cond:
                        self._jobs.pop(job.key, None)
                continue
            delivered = self._send(job.client if job else (), item.header, item.frames,
                                   droppable=not item.terminal)
            if item.terminal and job is not None:
                with self._cond:
                    self._jobs.pop(job.key, None)
                if not delivered:
                    log.info("job %s finished after its client left", job.id)

    # -- clients -----------------------------------------------------------------------

    def _client_gone(self, client: tuple[bytes, ...]) -> None:
        with self._cond:
            dropped = [job for job in self._jobs.values() if job.client == client]
            for job in dropped:
                job.vanished = True
                job.cancel.set()
                if job.state == "queued":
                    self._unqueue(job)
                    self._jobs.pop(job.key, None)
            self.counters["vanished_dropped"] += len(dropped)
        if dropped:
            log.info("client gone: dropped %d job(s)", len(dropped))

    def _unqueue(self, job: Job) -> None:
        """Remove a queued job (caller holds the lock)."""
        try:
            self._queue.remove(job)
        except ValueError:
            return
        self._queued_bytes -= job.nbytes
        job.frames = {}
        job.state = "done"

    # -- requests ----------------------------------------------------------------------

    def _handle(self, frames: list[zmq.Frame]) -> None:
        self.counters["requests"] += 1
        identity = [frames[0].bytes]
        try:
            envelope, body = P.split_envelope(frames[1:])
        except P.ProtocolError as exc:
            self._send_error(identity, None, exc.code, exc.message)
            return
        client = tuple(identity + [f.bytes for f in envelope])
        request_id: Any = None
        try:
            if not body:
                raise P.ProtocolError("bad_message", "no header frame after the delimiter")
            if len(body) > P.MAX_FRAMES:
                raise P.ProtocolError("too_large", f"{len(body)} frames after the delimiter; "
                                      f"at most {P.MAX_FRAMES} (header, pixels, mask, "
                                      "strength map)")
            header = P.decode_header(body[0].buffer, self.limits.max_header_bytes)
            request_id = header.get("id")
            version = header.get("v")
            if version != P.PROTOCOL_VERSION:
                raise P.ProtocolError("unsupported_version", f"protocol version {version!r} "
                                      f"is not supported; this server speaks "
                                      f"{P.PROTOCOL_VERSION}")
            op = header.get("op")
            if not isinstance(request_id, str) or not P.JOB_ID_RE.match(request_id):
                raise P.header_error("'id' must be 1-64 characters of A-Z a-z 0-9 _ . : -")
            data = body[1:]
            if op != P.OP_RUN and data:
                raise P.ProtocolError("bad_frames", f"{op!r} takes no data frames")
            if op == P.OP_HELLO:
                self._send(client, self._hello(request_id))
            elif op == P.OP_FAMILIES:
                self._send(client, {"kind": P.KIND_FAMILIES, "id": request_id,
                                    "families": self._families()})
            elif op == P.OP_PING:
                self._send(client, {"kind": P.KIND_PONG, "id": request_id})
            elif op == P.OP_STATS:
                self._send(client, self._stats(request_id))
            elif op == P.OP_CANCEL:
                self._cancel(client, request_id)
            elif op == P.OP_RUN:
                self._submit(client, header, data)
            else:
                raise P.ProtocolError("unknown_op", f"unknown op {op!r}; known: "
                                      f"{', '.join(P.OPS)}")
        except P.ProtocolError as exc:
            self._send_error(client, request_id, exc.code, exc.message)
        except DNIError as exc:
            self._send_error(client, request_id, exc.code, str(exc))
        except Exception as exc:  # noqa: BLE001 - a bad request must never stop the server
            log.error("request failed: %s", traceback.format_exc())
            self._send_error(client, request_id, "internal", f"{type(exc).__name__}: {exc}")

    def _hello(self, request_id: str) -> dict[str, Any]:
        return {"kind": P.KIND_HELLO, "id": request_id, "protocol": P.PROTOCOL_VERSION,
                "server": f"dni {__version__}", "worker": self.name, "devices": self.devices,
                "families": self._families(), "layouts": layouts.names(),
                "layout_aliases": dict(P.LAYOUT_ALIASES), "ops": list(P.OPS),
                "limits": self.limits.to_dict(), "curve": self._curve is not None}

    def _families(self) -> list[dict[str, Any]]:
        now = time.monotonic()
        if self._families_cache is None or now - self._families_cache[0] > _FAMILIES_TTL_S:
            self._families_cache = (now, self._engines[0].families())
        return self._families_cache[1]

    def _stats(self, request_id: str) -> dict[str, Any]:
        with self._cond:
            running = sum(1 for job in self._jobs.values() if job.state == "running")
            return {"kind": P.KIND_STATS, "id": request_id, "worker": self.name,
                    "queued": len(self._queue), "running": running,
                    "queued_bytes": self._queued_bytes, "counters": dict(self.counters)}

    def _cancel(self, client: tuple[bytes, ...], job_id: str) -> None:
        with self._cond:
            job = self._jobs.get((client, job_id))
            if job is not None and job.state == "queued":
                self._unqueue(job)
                self._jobs.pop(job.key, None)
                self.counters["cancelled"] += 1
                self._send_error(client, job_id, "cancelled", "cancelled before it started")
            elif job is not None:
                job.cancel.set()
        self._send(client, {"kind": P.KIND_CANCEL_ACK, "id": job_id,
                            "found": job is not None})

    def _submit(self, client: tuple[bytes, ...], header: dict[str, Any],
                data: list[zmq.Frame]) -> None:
        job = self._parse_run(client, header, data)
        with self._cond:
            if job.key in self._jobs:
                raise P.header_error(f"job id {job.id!r} is already in use by this client")
            if job.preview:
                # Slider drags send many previews: only the newest queued one matters.
                for old in [q for q in self._queue if q.client == client and q.preview]:
                    self._unqueue(old)
                    self._jobs.pop(old.key, None)
                    self.counters["superseded"] += 1
                    self._send_error(client, old.id, "superseded",
                                     f"replaced by the newer preview {job.id}")
            mine = sum(1 for q in self._queue if q.client == client)
            if (len(self._queue) >= self.limits.max_queue
                    or mine >= self.limits.max_queue_per_client
                    or self._queued_bytes + job.nbytes > self.limits.max_queue_bytes):
                raise P.ProtocolError("busy", f"the queue is full ({len(self._queue)} jobs, "
                                      f"{mine} of them yours); try again later")
            self._queue.append(job)
            self._queued_bytes += job.nbytes
            self._jobs[job.key] = job
            position = len(self._queue)
            self._cond.notify()
        self._send(client, {"kind": P.KIND_PROGRESS, "id": job.id, "fraction": 0.0,
                            "stage": "queued", "position": position}, droppable=True)

    def _parse_run(self, client: tuple[bytes, ...], header: dict[str, Any],
                   data: list[zmq.Frame]) -> Job:
        lim = self.limits
        family = P.get_str(header, "family", 64)
        width = P.get_int(header, "width", 1, lim.max_side)
        height = P.get_int(header, "height", 1, lim.max_side)
        assert width is not None and height is not None
        if width * height > lim.max_pixels:
            raise P.ProtocolError("too_large", f"{width}x{height} is over the limit of "
                                  f"{lim.max_pixels} pixels")
        layout = P.canonical_layout(header.get("layout"))
        strength = P.get_number(header, "strength")
        weights = header.get("weights")
        if weights is not None:
            if (not isinstance(weights, list) or not weights or len(weights) > P.MAX_WEIGHTS
                    or any(isinstance(w, bool) or not isinstance(w, (int, float))
                           for w in weights)):
                raise P.header_error(f"'weights' must be a list of 1-{P.MAX_WEIGHTS} numbers")
            weights = [float(w) for w in weights]
        mode = header.get("mode", "network")
        if mode not in P.MODES:
            raise P.header_error(f"'mode' must be one of {', '.join(P.MODES)}")
        preview = header.get("preview", False)
        if not isinstance(preview, bool):
            raise P.header_error("'preview' must be true or false")
        tile = P.get_int(header, "tile", 1, 1 << 16, required=False)
        names = header.get("frames", [P.FRAME_PIXELS])
        if (not isinstance(names, list) or not names or names[0] != P.FRAME_PIXELS
                or any(n not in P.RUN_FRAMES for n in names) or len(set(names)) != len(names)):
            raise P.header_error("'frames' must list 'pixels' first, then optionally "
                                 "'mask' and 'strength_map', each once")
        if len(names) != len(data):
            raise P.ProtocolError("bad_frames", f"the header names {len(names)} data frame(s), "
                                  f"the message has {len(data)}")
        frames = dict(zip(names, data, strict=True))
        need = P.expected_bytes(layout, width, height)
        got = len(frames[P.FRAME_PIXELS])
        if got != need:
            raise P.ProtocolError("bad_frames", f"pixels: {width}x{height} {layout} needs "
                                  f"{need} bytes, the frame has {got}")
        for name in names[1:]:
            if len(frames[name]) != width * height:
                raise P.ProtocolError("bad_frames", f"{name}: needs {width * height} bytes "
                                      f"(one per pixel), the frame has {len(frames[name])}")
        return Job(client=client, id=header["id"], family=family, width=width, height=height,
                   layout=layout, frames=frames, nbytes=sum(len(f) for f in data),
                   strength=strength, weights=weights, mode=mode, preview=preview, tile=tile)

    # -- workers -----------------------------------------------------------------------

    def _worker(self, engine: Any) -> None:
        wake = self._context.socket(zmq.PUSH)
        wake.setsockopt(zmq.LINGER, 0)
        wake.setsockopt(zmq.SNDHWM, 1)  # one pending wake-up is as good as many
        wake.connect(self._wake_endpoint)
        self._local.wake = wake
        try:
            self._work(engine)
        finally:
            wake.close(linger=0)

    def _work(self, engine: Any) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._stopping.is_set():
                    self._cond.wait()
                if self._stopping.is_set():
                    return
                job = self._queue.popleft()
                self._queued_bytes -= job.nbytes
                job.state = "running"
            try:
                self._run_job(engine, job)
            finally:
                job.frames = {}
                job.state = "done"

    def _run_job(self, engine: Any, job: Job) -> None:
        def progress(fraction: float, stage: str) -> None:
            if job.cancel.is_set():
                job.tiles_after_cancel += 1
            self._emit(_Outgoing(job, {"kind": P.KIND_PROGRESS, "id": job.id,
                                       "fraction": round(float(fraction), 6),
                                       "stage": str(stage)}))

        def finish(header: dict[str, Any], frames: Sequence[Any] = ()) -> None:
            header.setdefault("id", job.id)
            self._emit(_Outgoing(job, header, frames, terminal=True))

        started = time.perf_counter()
        try:
            progress(0.0, "started")
            if hasattr(engine, "family"):
                engine.family(job.family)  # loading shows up as its own stage
            image = layouts.to_array(job.frames[P.FRAME_PIXELS].buffer, job.width,
                                     job.height, job.layout)
            planes = {name: layouts.plane_to_array(job.frames[name].buffer, job.width,
                                                   job.height, name)
                      for name in (P.FRAME_MASK, P.FRAME_STRENGTH_MAP) if name in job.frames}
            out = engine.run(job.family, image, strength=job.strength, weights=job.weights,
                             mask=planes.get(P.FRAME_MASK),
                             strength_map=planes.get(P.FRAME_STRENGTH_MAP), mode=job.mode,
                             tile=job.tile, progress=progress, cancelled=job.cancel.is_set,
                             # previews: the device's fastest reduced precision (bf16 on
                             # CPUs that have it is ~5x quicker, within a few levels of 255)
                             precision="fast" if job.preview else None)
            payload = layouts.from_array(out, job.layout)
            self.counters["completed"] += 1
            finish({"kind": P.KIND_RESULT, "width": int(payload.shape[1]),
                    "height": int(payload.shape[0]), "layout": job.layout,
                    "seconds": round(time.perf_counter() - started, 4),
                    "device": str(engine.device), "worker": self.name}, [payload])
        except Cancelled:
            self.counters["cancelled"] += 1
            finish({"kind": P.KIND_ERROR, "code": "cancelled", "message": "cancelled",
                    "tiles_after_cancel": job.tiles_after_cancel})
        except DNIError as exc:
            self.counters["failed"] += 1
            finish({"kind": P.KIND_ERROR, "code": exc.code, "message": str(exc)})
        except Exception as exc:  # noqa: BLE001 - report it, keep serving
            self.counters["failed"] += 1
            if _is_out_of_memory(exc):
                finish({"kind": P.KIND_ERROR, "code": "out_of_memory",
                        "message": "out of memory even with the smallest tile; "
                                   "try a smaller image or region"})
            else:
                log.error("job %s failed: %s", job.id, traceback.format_exc())
                finish({"kind": P.KIND_ERROR, "code": "internal",
                        "message": f"{type(exc).__name__}: {exc}"[:500]})


def _is_out_of_memory(exc: BaseException) -> bool:
    if type(exc).__name__ == "OutOfMemoryError" or isinstance(exc, MemoryError):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()
