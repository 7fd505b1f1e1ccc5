"""The `dni serve` server: the I/O loop, and a table of ops that answers each request.

Threads:

* the I/O thread (the caller of `Server.serve`) owns the ROUTER socket (router.py). It
  parses requests (requests.py), answers hello/families/ping/stats/cancel at once, queues
  runs (jobs.py) and sends everything the workers produce (outbox.py). It never runs a
  network, so it always answers.
* one worker thread per device (worker.py) owns one Engine and takes jobs from the
  shared queue.

A client counts as gone when the ROUTER can no longer route to it, and is cut off when
it stops reading its replies (router.py): either way its queued jobs are dropped and its
running job is cancelled. Sending never waits, so one slow reader cannot stall the rest.
"""

from __future__ import annotations

import ctypes
import logging
import os
import secrets
import socket
import threading
import traceback
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import zmq

from dni_client import protocol as P

from .. import __version__
from . import layouts
from .counters import Counters
from .failures import describe
from .installs import Installs
from .jobs import Cancel, Job, JobQueue
from .limits import Limits
from .outbox import Outbox
from .parsing import (
    Client,
    InstallRequest,
    PingRequest,
    Request,
    RequestError,
    RunRequest,
    parse_request,
    refuse_oversized,
)
from .router import Delivery, Done, Incoming, Router
from .security import CurveKeys, check_endpoint, start_authenticator
from .worker import Engine, Worker

log = logging.getLogger("dni.server")

_MAX_BATCH = 64  # requests handled before the workers' messages get a turn
_RETRY_MS = 10   # how soon replies waiting for a slow reader are tried again

EngineFactory = Callable[[str], Engine]


def _default_engine_factory(family_paths: Sequence[Path], max_pixels: int) -> EngineFactory:
    def make(device: str) -> Engine:
        from ..engine import Engine  # torch: only once a server really starts

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
        # New on every start: clients tell a restarted server (that lost their jobs) by it.
        self.instance = secrets.token_hex(8)
        factory = engine_factory or _default_engine_factory(family_paths,
                                                             self.limits.max_pixels)
        self._engines = [factory(device) for device in devices]
        self.devices = [str(engine.device) for engine in self._engines]
        self._curve = curve
        self._stopping = threading.Event()
        self.counters = Counters()
        self.jobs = JobQueue(self.limits, self._stopping)
        self._ops: dict[str, Callable[[Request], None]] = {
            P.OP_HELLO: self._hello, P.OP_FAMILIES: self._families, P.OP_RUN: self._run,
            P.OP_CANCEL: self._cancel, P.OP_PING: self._ping, P.OP_STATS: self._stats,
            P.OP_CATALOGUE: self._catalogue, P.OP_INSTALL: self._install}

        self._context = context or zmq.Context()
        self._own_context = context is None
        self._auth = start_authenticator(self._context, curve) if curve and endpoint else None
        self._router = Router(self._context, self.limits)
        try:
            self._router.attach(endpoint, connect, curve)
        except BaseException:
            self._release_sockets()
            raise
        self.endpoints = self._router.endpoints
        self._outbox = Outbox(self._context)
        self._installs = Installs(self._outbox, self.instance)
        self._memory = _FreedMemory()
        self._threads: list[threading.Thread] = []

    # -- lifecycle ---------------------------------------------------------------------

    def serve(self, ready: Callable[[Server], None] | None = None) -> None:
        """Run until stop() is called (from a signal handler or another thread)."""
        for index, engine in enumerate(self._engines):
            worker = Worker(engine, self.jobs, self._outbox, self.counters, self.name)
            thread = threading.Thread(target=worker.run, daemon=True,
                                      name=f"dni-worker-{index}")
            thread.start()
            self._threads.append(thread)
        if ready is not None:
            ready(self)
        poller = zmq.Poller()
        poller.register(self._router.socket, zmq.POLLIN)
        poller.register(self._outbox.wake, zmq.POLLIN)
        try:
            while not self._stopping.is_set():
                # Replies waiting for slow readers are retried soon; libzmq's POLLOUT on a
                # ROUTER says that *some* peer is writable, not which, so a timer it is.
                events = dict(poller.poll(_RETRY_MS if self._router.backlogged else 200))
                if self._outbox.wake in events:
                    self._outbox.clear_wakeups()
                if self._router.socket in events:
                    self._receive_batch()
                self._flush_outbox()
                self._send_signs_of_life()
                self._retry_backlogs()
        finally:
            self._shutdown()

    def stop(self) -> None:
        self._stopping.set()  # only an Event: this runs in signal handlers

    def _shutdown(self) -> None:
        self._installs.stop()
        for job in self.jobs.close():
            self._send_error(job.client, job.id, "shutting_down", "the server is stopping")
        for thread in self._threads:
            thread.join(timeout=5.0)
        self._flush_outbox()
        self._outbox.close()
        # term() waits for every socket; a worker stuck in a long tile still holds one.
        self._release_sockets(term=not any(t.is_alive() for t in self._threads))

    def _release_sockets(self, term: bool = True) -> None:
        self._router.close()
        if self._auth is not None:
            self._auth.stop()
        if self._own_context and term:
            self._context.term()

    # -- the I/O loop ------------------------------------------------------------------

    def _receive_batch(self) -> None:
        for _ in range(_MAX_BATCH):
            incoming = self._router.receive()
            if incoming is None:
                return
            nbytes = incoming.nbytes
            self._handle(incoming)
            del incoming  # its frames go now, unless a job holds them
            self._memory.released(nbytes)

    def _handle(self, incoming: Incoming) -> None:
        self.counters.add("requests")
        frames = incoming.frames
        request: Request | None = None
        try:
            if incoming.cut:
                raise refuse_oversized(frames, incoming.count, incoming.nbytes, self.limits,
                                       self._router.brokers)
            request = parse_request(frames, self.limits, self._ops, self._router.brokers)
            self._ops[request.op](request)
        except RequestError as exc:
            self._send_error(exc.client, exc.request_id, exc.code, exc.message)
        # A request, however bad, must never stop the server: it gets an error reply.
        except Exception as exc:  # noqa: BLE001
            failure = describe(exc)
            if failure.unexpected:
                log.error("request failed: %s", traceback.format_exc())
            client = request.client if request else (bytes(frames[0]),)
            self._send_error(client, request.id if request else None, failure.code,
                             failure.message)

    def _flush_outbox(self) -> None:
        """Send what the workers produced; a terminal reply frees its job's id once it
        has gone out (or will never go: its bytes count until then)."""
        for item in self._outbox.pending():
            job = item.job
            if job.vanished:  # nobody to tell
                if item.terminal:
                    self.jobs.forget(job)
                continue
            done = partial(self._replied, job) if item.terminal else None
            self._send(job.client, item.header, item.frames, droppable=not item.terminal,
                       done=done)

    def _replied(self, job: Job, sent: bool) -> None:
        self.jobs.forget(job)
        if not sent:
            log.info("job %s finished after its client left or stopped reading", job.id)

    def _retry_backlogs(self) -> None:
        if self._router.backlogged:
            for peer, delivery in self._router.retry():
                self._peer_lost((peer,), delivery)

    # -- sending -----------------------------------------------------------------------

    def _send(self, client: Client, header: dict[str, Any], frames: Sequence[Any] = (),
              droppable: bool = False, done: Done | None = None) -> Delivery:
        """Send one message, never waiting: a client that reads slowly gets it later."""
        delivery = self._router.send(client, header, frames, droppable, done)
        if delivery in (Delivery.GONE, Delivery.CUT_OFF):
            self._peer_lost(client, delivery)
        return delivery

    def _reply(self, request: Request, header: dict[str, Any]) -> None:
        self._send(request.client, {**header, "id": request.id})

    def _send_error(self, client: Client, request_id: object, code: str, message: str) -> None:
        self.counters.add("errors")
        header: dict[str, Any] = {"kind": P.KIND_ERROR, "code": code, "message": message}
        if isinstance(request_id, str) and len(request_id) <= 64:  # echo only a sane id
            header["id"] = request_id
        self._send(client, header)

    def _send_signs_of_life(self) -> None:
        """Liveness: each job its client has heard nothing about for a while gets its
        latest progress again, so a client can tell a long tile from a lost job."""
        for job in self.jobs.quiet(P.ALIVE_INTERVAL_S):
            self._send(job.client, job.alive(), droppable=True)
        for install in self._installs.quiet(P.ALIVE_INTERVAL_S):
            self._send(install.client, install.alive(), droppable=True)

    def _peer_lost(self, client: Client, delivery: Delivery) -> None:
        """The client's connection closed (GONE), or it stopped reading and was cut off:
        either way nobody will read its jobs' results."""
        dropped = self.jobs.drop_client(client)
        self._installs.drop_client(client)
        if delivery is Delivery.CUT_OFF:
            self.counters.add("slow_clients")
            self.counters.add("slow_dropped", dropped)
        else:
            self.counters.add("vanished_dropped", dropped)
        if dropped:
            log.info("client %s: dropped %d job(s)", delivery.value, dropped)

    # -- the ops -----------------------------------------------------------------------

    def _hello(self, request: Request) -> None:
        self._reply(request, {
            "kind": P.KIND_HELLO, "protocol": P.PROTOCOL_VERSION, "version": __version__,
            "server": f"dni {__version__}", "worker": self.name, "devices": self.devices,
            "families": self._engines[0].families(), "layouts": layouts.names(),
            "layout_aliases": dict(P.LAYOUT_ALIASES), "ops": list(self._ops),
            "limits": self.limits.to_dict(), "curve": self._curve is not None,
            "instance": self.instance, "direct": request.direct})

    def _families(self, request: Request) -> None:
        # Re-read on every request (cheap: the registry caches manifests by mtime), so
        # that a family the user just added or edited shows up without a restart.
        self._reply(request, {"kind": P.KIND_FAMILIES,
                              "families": self._engines[0].families()})

    def _ping(self, request: Request) -> None:
        assert isinstance(request, PingRequest)  # the parser makes one for every ping
        jobs = self.jobs.known(request.client, request.jobs)
        jobs.update(self._installs.known(request.client, request.jobs))
        self._reply(request, {"kind": P.KIND_PONG, "instance": self.instance,
                              "direct": request.direct, "jobs": jobs})

    def _stats(self, request: Request) -> None:
        queued, running, queued_bytes = self.jobs.counts()
        self._reply(request, {"kind": P.KIND_STATS, "worker": self.name, "queued": queued,
                              "running": running, "queued_bytes": queued_bytes,
                              "counters": self.counters.snapshot()})

    def _scale(self, family: str) -> int:
        """The family's scale, for the output limit (1 if unknown: the worker will say
        that the family is unknown). The registry caches manifests: a few stat calls."""
        for info in self._engines[0].families():
            if info.get("name") == family:
                return int(info.get("scale", 1))
        return 1

    def _catalogue(self, request: Request) -> None:
        from .. import catalogue

        entries = catalogue.load(catalogue.catalogue_path())
        have = {info.get("name") for info in self._engines[0].families()}
        self._reply(request, {"kind": P.KIND_CATALOGUE, "families": [
            dict(entry.to_dict(), installed=entry.name in have) for entry in entries]})

    def _install(self, request: Request) -> None:
        assert isinstance(request, InstallRequest)  # the parser makes one for every install
        self._installs.start(request)

    def _cancel(self, request: Request) -> None:
        if self._installs.cancel((request.client, request.id)):
            self._reply(request, {"kind": P.KIND_CANCEL_ACK, "found": True})
            return
        outcome = self.jobs.cancel((request.client, request.id))
        if outcome is Cancel.UNQUEUED:
            self.counters.add("cancelled")
            self._send_error(request.client, request.id, "cancelled",
                             "cancelled before it started")
        self._reply(request, {"kind": P.KIND_CANCEL_ACK,
                              "found": outcome is not Cancel.UNKNOWN})

    def _run(self, request: Request) -> None:
        assert isinstance(request, RunRequest)  # the parser makes one for every run
        too_large = self.limits.output_too_large(request.width, request.height,
                                                 self._scale(request.family))
        if too_large:
            raise P.ProtocolError("too_large", too_large)
        job = Job(request, self.instance)
        self.jobs.check_new(job.key)
        if request.preview:
            for old in self.jobs.supersede_previews(job.client):
                self.counters.add("superseded")
                self._send_error(old.client, old.id, "superseded",
                                 f"replaced by the newer preview {job.id}")
        position = self.jobs.add(job)
        self._send(job.client, job.progress(0.0, "queued", position=position), droppable=True)


class _FreedMemory:
    """Hands the memory of big received messages back to the system.

    glibc keeps freed chunks below its mmap threshold (up to 32 MiB) in its arenas, so a
    flood of refused multi-megabyte frames would leave the server that much larger. Once
    big messages worth _AFTER_BYTES have been handled (and let go), malloc_trim returns
    the free pages (a no-op where libc has none). It runs before the next message is
    read, so the next reply sees its effect."""

    _AFTER_BYTES = 64 * 2**20

    def __init__(self) -> None:
        try:
            self._trim: Callable[[int], int] | None = ctypes.CDLL(None).malloc_trim
        except (OSError, AttributeError):  # not glibc
            self._trim = None
        self._pending = 0

    def released(self, nbytes: int) -> None:
        """A message of `nbytes` has been handled; its frames are gone unless a job
        holds them."""
        if nbytes < 2**20 or self._trim is None:  # small ones come from reused pools
            return
        self._pending += nbytes
        if self._pending >= self._AFTER_BYTES:
            self._pending = 0
            self._trim(0)
