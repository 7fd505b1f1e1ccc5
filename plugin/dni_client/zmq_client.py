"""The ZeroMQ `Client` for `dni serve`: pure Python + pyzmq, 3.8-compatible.

It runs inside Krita's and GIMP's own Python, so it imports neither numpy nor Qt. One
DEALER socket (never REQ: a lost reply must not wedge the editor). Two styles:

* blocking: ``hello()``, ``families()``, ``run()``;
* non-blocking: ``submit()`` then ``poll()`` from a GUI timer, ``cancel()`` at any time.

Liveness is per job (docs/protocol.md, "Liveness"): a job ends with a connection_lost
error when nothing has said for `timeout` seconds that the server still holds it, and at
once when the server says it does not (it was restarted, or dropped our connection).
Messages about other jobs, and pongs, do not keep a job alive.

A Client is not thread-safe: use it from one thread (the GUI thread, typically).
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import zmq

from . import protocol as P
from .client import Client, ClientError, ConnectionLost, Event, Result, ServerError

# Cancels re-sent while a job keeps reporting progress: behind a broker a cancel goes to
# one worker by round robin, and only the worker that runs the job acknowledges it.
_MAX_CANCEL_SENDS = 16


def _load_public_key(key: Any) -> bytes:
    """A Z85 public key from bytes, a string, or the path of a zmq.auth `.key` file."""
    if isinstance(key, bytes) and len(key) == 40:
        return key
    if isinstance(key, str) and len(key) == 40 and not os.path.exists(key):
        return key.encode("ascii")
    path = os.fspath(key)
    public, _ = _load_certificate(path)
    return public


def _load_certificate(path: str):  # -> (public, secret or None)
    from zmq.auth import load_certificate

    return load_certificate(path)


def _load_client_keys(folder: str):
    """The client key pair in `folder`: client.key_secret, or the only *.key_secret."""
    preferred = os.path.join(folder, "client.key_secret")
    if not os.path.exists(preferred):
        secrets = sorted(n for n in os.listdir(folder) if n.endswith(".key_secret"))
        if len(secrets) != 1:
            raise ClientError(f"{folder}: expected client.key_secret (or exactly one *.key_secret)")
        preferred = os.path.join(folder, secrets[0])
    public, secret = _load_certificate(preferred)
    if not secret:
        raise ClientError(f"{preferred} holds no secret key")
    return public, secret


def _data_frames(pixels: Any, mask: Any, strength_map: Any, area: int
                 ) -> tuple[list[str], list[Any]]:
    """A run's data frames and their names: the pixels, then the planes that are given."""
    frames = [pixels]
    names = [P.FRAME_PIXELS]
    for name, plane in ((P.FRAME_MASK, mask), (P.FRAME_STRENGTH_MAP, strength_map)):
        if plane is not None:
            if _byte_length(plane) != area:
                raise ClientError(f"{name}: needs {area} bytes (one per pixel)")
            frames.append(plane)
            names.append(name)
    return names, frames


def _byte_length(data: Any) -> int:
    with memoryview(data) as view:
        return view.nbytes


class _Job:
    __slots__ = ("cancel_sends", "cancelled", "last_sign", "instance")

    def __init__(self) -> None:
        self.cancel_sends = 0
        self.cancelled = False
        self.last_sign = time.monotonic()  # the latest sign that the server holds the job
        self.instance: str | None = None   # the server instance holding it, once known


class ZmqClient(Client):
    """Talks to one `dni serve` (or a broker in front of several)."""

    def __init__(self, endpoint: str = P.DEFAULT_ENDPOINT, *, server_public_key: Any = None,
                 client_keys_dir: str | None = None, timeout: float = 30.0,
                 context: zmq.Context | None = None) -> None:
        self.endpoint = endpoint
        self.timeout = float(timeout)
        self._context = context or zmq.Context.instance()
        self._server_key = _load_public_key(server_public_key) if server_public_key else None
        self._client_keys = None
        if client_keys_dir is not None:
            if self._server_key is None:
                raise ClientError("client_keys_dir needs server_public_key as well")
            self._client_keys = _load_client_keys(os.fspath(client_keys_dir))
        self._socket: zmq.Socket | None = None
        self._jobs: dict[str, _Job] = {}
        self._backlog: deque[Event] = deque()
        self._replies: dict[str, dict[str, Any]] = {}
        self._last_heard = time.monotonic()  # any message from the server
        self._next_ping = 0.0
        self._connect()

    # -- connection -------------------------------------------------------------------

    def _connect(self) -> None:
        sock = self._context.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        # libzmq's own heartbeats notice a dead TCP peer even when nothing is sent.
        sock.setsockopt(zmq.HEARTBEAT_IVL, 2000)
        sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, 6000)
        if P.is_ipv6_endpoint(self.endpoint):
            sock.setsockopt(zmq.IPV6, 1)  # off by default in libzmq
        if self._server_key is not None:
            if self._client_keys is not None:
                public, secret = self._client_keys
            else:
                public, secret = zmq.curve_keypair()
            sock.curve_serverkey = self._server_key
            sock.curve_publickey = public
            sock.curve_secretkey = secret
        sock.connect(self.endpoint)
        self._socket = sock
        self._last_heard = time.monotonic()
        self._next_ping = 0.0

    def _reconnect(self, why: str) -> None:
        """A fresh socket (a new identity): replies to the old one can never arrive, so
        every pending job ends here with a connection_lost error event."""
        for job_id in list(self._jobs):
            self._lose(job_id, why)
        if self._socket is not None:
            self._socket.close(linger=0)
        self._replies.clear()
        self._connect()

    def close(self) -> None:
        """Close the socket; the server drops this client's queued and running jobs."""
        if self._socket is not None:
            self._socket.close(linger=0)
            self._socket = None
        self._jobs.clear()

    def _sock(self) -> zmq.Socket:
        if self._socket is None:
            raise ClientError("the client is closed")
        return self._socket

    def _send(self, header: dict[str, Any], frames: Sequence[Any] = ()) -> None:
        header = dict(header)
        header.setdefault("v", P.PROTOCOL_VERSION)
        try:
            self._sock().send_multipart(P.encode(header, frames), copy=False)
        except zmq.ZMQError as exc:
            raise ClientError(f"could not send to {self.endpoint}: {exc}") from None

    # -- receiving ----------------------------------------------------------------------

    def _receive(self, timeout_ms: int) -> bool:
        """Read every waiting message (waiting up to timeout_ms for the first)."""
        sock = self._sock()
        got = False
        if timeout_ms > 0 and not sock.poll(timeout_ms, zmq.POLLIN):
            return False
        while True:
            try:
                frames = sock.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return got
            got = True
            self._dispatch(frames)

    @staticmethod
    def _header_of(frames: list[zmq.Frame]) -> tuple[dict[str, Any] | None, list[Any]]:
        """(header, body) of a server message; no header for anything else."""
        try:
            envelope, body = P.split_envelope(frames)
            header = P.decode_header(body[0].bytes) if body and not envelope else None
        except P.ProtocolError:
            return None, []
        return header, body

    def _dispatch(self, frames: list[zmq.Frame]) -> None:
        header, body = self._header_of(frames)
        if header is None:
            return  # not from a DNI server: ignore
        self._last_heard = time.monotonic()
        kind = header.get("kind")
        job_id = header.get("id") if isinstance(header.get("id"), str) else ""
        job = self._jobs.get(job_id)
        if kind in (P.KIND_PROGRESS, P.KIND_RESULT, P.KIND_ERROR,
                    P.KIND_INSTALLED) and job is not None:
            self._job_event(kind, job_id, job, header, body)
        elif kind == P.KIND_CANCEL_ACK:
            if job is not None and not header.get("found"):
                self._resend_cancel(job_id, job)
        elif kind == P.KIND_PONG:
            self._pong(header)
        elif job_id:
            # Replies to hello/families/stats, and errors for them.
            self._replies[job_id] = header
            if len(self._replies) > 64:
                self._replies.pop(next(iter(self._replies)))

    def _job_event(self, kind: str, job_id: str, job: _Job, header: dict[str, Any],
                   body: list[Any]) -> None:
        job.last_sign = time.monotonic()
        if isinstance(header.get("instance"), str):
            job.instance = header["instance"]
        if kind == P.KIND_PROGRESS:
            # Still running after our cancel: behind a broker, the cancel may have reached
            # another worker; send it again (round robin moves on).
            if job.cancelled:
                self._resend_cancel(job_id, job)
            if not header.get("alive"):  # a repeat that only says "still here": not news
                self._backlog.append(Event(kind, job_id, header))
            return
        if header.get("code") == "duplicate_id":
            return  # the answer to a second run with this id: the job itself goes on
        del self._jobs[job_id]
        pixels = body[1].bytes if kind == P.KIND_RESULT and len(body) > 1 else None
        self._backlog.append(Event(kind, job_id, header, pixels))

    def _resend_cancel(self, job_id: str, job: _Job) -> None:
        if job.cancel_sends < _MAX_CANCEL_SENDS:
            self._send_cancel(job_id, job)

    # -- liveness ---------------------------------------------------------------------

    def _lose(self, job_id: str, why: str) -> None:
        """End a pending job with a connection_lost error event."""
        del self._jobs[job_id]
        self._backlog.append(Event(P.KIND_ERROR, job_id, {
            "kind": P.KIND_ERROR, "id": job_id, "code": "connection_lost", "message": why}))

    @property
    def _quiet_after(self) -> float:
        """A job without a sign for this long is asked about. The server repeats each
        job's progress every ALIVE_INTERVAL_S, so a healthy job is never this quiet."""
        return min(self.timeout / 2, 3 * P.ALIVE_INTERVAL_S)

    def _check_silence(self) -> None:
        """Jobs without a sign of life for `timeout` seconds are lost; quiet ones are asked
        about. When the server said nothing at all for as long, the socket is renewed."""
        now = time.monotonic()
        if not self._jobs:
            self._last_heard = now
            return
        lost = [job_id for job_id, job in self._jobs.items()
                if now - job.last_sign > self.timeout]
        for job_id in lost:
            self._lose(job_id, f"no word about this job from {self.endpoint} for "
                               f"{self.timeout:.0f} s")
        if lost and now - self._last_heard > self.timeout:
            self._reconnect(f"no answer from {self.endpoint} for {self.timeout:.0f} s")
        elif now >= self._next_ping:
            self._ask_about_quiet_jobs(now)

    def _ask_about_quiet_jobs(self, now: float) -> None:
        quiet = sorted((job_id for job_id, job in self._jobs.items()
                        if now - job.last_sign > self._quiet_after),
                       key=lambda job_id: self._jobs[job_id].last_sign)
        if quiet:
            self._next_ping = now + self._quiet_after
            self._send({"op": P.OP_PING, "id": P.new_job_id(),
                        "jobs": quiet[:P.MAX_PING_JOBS]})

    def _pong(self, header: dict[str, Any]) -> None:
        """A pong says, for each job the ping asked about, whether this server holds it."""
        states = header.get("jobs")
        if not isinstance(states, dict):
            self._legacy_pong()
            return
        # Direct: no broker between us, so this server is the only one that could hold
        # our jobs. Behind a broker only the worker that holds a job can say it does not.
        direct = header.get("direct") is True
        instance = header.get("instance")
        for job_id, state in states.items():
            job = self._jobs.get(job_id) if isinstance(job_id, str) else None
            if job is None:
                continue
            if state:
                job.last_sign = time.monotonic()
            elif direct or (job.instance is not None and job.instance == instance):
                restarted = job.instance is not None and job.instance != instance
                self._lose(job_id, f"the server at {self.endpoint} no longer has this job"
                                   + (" (it was restarted)" if restarted else ""))

    def _legacy_pong(self) -> None:
        """A server without per-job liveness (no "jobs" in its pong): as before, its pong
        keeps the jobs it never named an instance for alive."""
        for job in self._jobs.values():
            if job.instance is None:
                job.last_sign = time.monotonic()

    # -- requests ----------------------------------------------------------------------

    def _request(self, header: dict[str, Any], expect: str) -> dict[str, Any]:
        request_id = P.new_job_id()
        self._send(dict(header, id=request_id))
        deadline = time.monotonic() + self.timeout
        while True:
            reply = self._replies.pop(request_id, None)
            if reply is not None:
                if reply.get("kind") == P.KIND_ERROR:
                    raise ServerError(str(reply.get("code")), str(reply.get("message")))
                if reply.get("kind") != expect:
                    raise ClientError(f"unexpected reply {reply.get('kind')!r} "
                                      f"to {header.get('op')!r}")
                return reply
            left = deadline - time.monotonic()
            if left <= 0:
                why = f"no answer from {self.endpoint} within {self.timeout:.1f} s"
                self._reconnect(why)
                raise ConnectionLost(why)
            self._receive(max(1, int(min(left, 0.25) * 1000)))

    def hello(self) -> dict[str, Any]:
        """Server and protocol version, devices, families and limits."""
        reply = self._request({"op": P.OP_HELLO, "client": "dni_client"}, P.KIND_HELLO)
        if reply.get("protocol") != P.PROTOCOL_VERSION:
            raise ServerError("unsupported_version", f"server speaks protocol "
                              f"{reply.get('protocol')!r}, this client {P.PROTOCOL_VERSION}")
        return reply

    def families(self) -> list[dict[str, Any]]:
        return list(self._request({"op": P.OP_FAMILIES}, P.KIND_FAMILIES)["families"])

    def catalogue(self) -> list[dict[str, Any]]:
        return list(self._request({"op": P.OP_CATALOGUE}, P.KIND_CATALOGUE)["families"])

    def install(self, family: str) -> str:
        """Start an install; its events arrive through poll() like a job's."""
        job_id = P.new_job_id()
        if not self._jobs:
            self._last_heard = time.monotonic()
        self._send({"op": P.OP_INSTALL, "id": job_id, "family": family})
        self._jobs[job_id] = _Job()
        return job_id

    def stats(self) -> dict[str, Any]:
        """The server's queue and job counters (diagnostics)."""
        return self._request({"op": P.OP_STATS}, P.KIND_STATS)

    def submit(self, family: str, width: int, height: int, layout: str, pixels: Any, *,
               strength: float | None = None, weights: Sequence[float] | None = None,
               mask: Any = None, strength_map: Any = None, mode: str = "network",
               preview: bool = False, tile: int | None = None,
               job_id: str | None = None) -> str:
        """Queue a job and return its id at once; follow it with poll().

        pixels: bytes-like in `layout`; mask and strength_map: width*height bytes (0-255).
        A preview supersedes this client's older preview that is still queued.
        """
        layout = P.canonical_layout(layout)
        need = P.expected_bytes(layout, width, height)
        got = _byte_length(pixels)
        if got != need:
            raise ClientError(f"pixels: {got} bytes, but {width}x{height} {layout} needs {need}")
        auto_map = isinstance(strength_map, str) and strength_map == P.AUTO
        names, frames = _data_frames(pixels, mask, None if auto_map else strength_map,
                                     width * height)
        job_id = job_id or P.new_job_id()
        if not P.valid_job_id(job_id) or job_id in self._jobs:
            raise ClientError(f"job id {job_id!r} is not a valid id, or one still pending")
        header: dict[str, Any] = {
            "op": P.OP_RUN, "id": job_id, "family": family, "width": width, "height": height,
            "layout": layout, "mode": mode, "preview": bool(preview), "frames": names,
        }
        if strength is not None:
            header["strength"] = strength  # a number, or P.AUTO
        if auto_map:
            header[P.FRAME_STRENGTH_MAP] = P.AUTO
        if weights is not None:
            header["weights"] = list(weights)
        if tile is not None:
            header["tile"] = tile
        if not self._jobs:
            self._last_heard = time.monotonic()
        self._send(header, frames)
        self._jobs[job_id] = _Job()
        return job_id

    def poll(self, timeout_ms: int = 0) -> list[Event]:
        """Events that arrived since the last call; waits up to timeout_ms for the first.

        A job ends with exactly one "result" or "error" event; an error with code
        "connection_lost" means the server went silent (the client has reconnected).
        """
        if not self._backlog:
            self._receive(timeout_ms)
        else:
            self._receive(0)
        self._check_silence()
        events = list(self._backlog)
        self._backlog.clear()
        return events

    def cancel(self, job_id: str) -> None:
        """Ask the server to stop a job; its end arrives as an error with code "cancelled"."""
        job = self._jobs.get(job_id)
        if job is None:
            return
        job.cancelled = True
        self._send_cancel(job_id, job)

    def _send_cancel(self, job_id: str, job: _Job) -> None:
        job.cancel_sends += 1
        self._send({"op": P.OP_CANCEL, "id": job_id})

    def pending(self) -> list[str]:
        """Ids of jobs submitted and not yet finished."""
        return list(self._jobs)

    def run(self, family: str, width: int, height: int, layout: str, pixels: Any, *,
            strength: float | None = None, weights: Sequence[float] | None = None,
            mask: Any = None, strength_map: Any = None, mode: str = "network",
            preview: bool = False, tile: int | None = None,
            on_progress: Callable[[float, str], Any] | None = None) -> Result:
        """Run a job and wait for it. ServerError on an error reply; ConnectionLost when the
        server goes silent for `timeout` seconds. on_progress(fraction, stage) may return
        True to cancel the job."""
        job_id = self.submit(family, width, height, layout, pixels, strength=strength,
                             weights=weights, mask=mask, strength_map=strength_map, mode=mode,
                             preview=preview, tile=tile)
        others: list[Event] = []
        try:
            while True:
                self._receive(100)
                self._check_silence()
                end = self._next_end(job_id, others, on_progress)
                if end is not None:
                    return self._outcome(end)
        except BaseException:
            # KeyboardInterrupt and friends: don't leave the job running on the server.
            if job_id in self._jobs and self._socket is not None:
                self.cancel(job_id)
            raise
        finally:
            self._backlog.extendleft(reversed(others))

    def _next_end(self, job_id: str, others: list[Event],
                  on_progress: Callable[[float, str], Any] | None) -> Event | None:
        """The job's final event if it arrived; other jobs' events go to `others`."""
        while self._backlog:
            event = self._backlog.popleft()
            if event.job_id != job_id:
                others.append(event)
            elif event.kind != P.KIND_PROGRESS:
                return event
            elif on_progress is not None and on_progress(event.fraction, event.stage):
                self.cancel(job_id)
        return None

    @staticmethod
    def _outcome(event: Event) -> Result:
        if event.kind == P.KIND_RESULT:
            return Result.from_event(event)
        if event.code == "connection_lost":
            raise ConnectionLost(event.message)
        raise ServerError(event.code, event.message)
