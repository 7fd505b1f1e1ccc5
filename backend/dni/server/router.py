"""The server's ROUTER socket: its options, where it binds or connects, receiving within
a budget, and sending without ever blocking.

Only the I/O thread uses it. ROUTER_MANDATORY turns a message to a client whose
connection has closed into an error (EHOSTUNREACH) instead of a silent drop, and libzmq
heartbeats close connections to peers that died without closing them: together they tell
the server that a client is gone.

Sending never waits. When libzmq's queue towards a peer is full (the client stopped
reading), droppable messages (progress) are dropped and the others wait, in order, in
that peer's backlog, retried by the I/O loop; a peer whose backlog outgrows its bounds,
or that stays unwritable for `backlog_seconds`, is cut off (Delivery.CUT_OFF).

Receiving reads a message frame by frame: libzmq hands over a multipart message only
once all of it has arrived and cannot limit its total size (ZMQ_MAXMSGSIZE is per frame),
but frames past the budget are let go as they are read instead of being kept.
"""

from __future__ import annotations

import errno
import logging
import secrets
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import zmq

from dni_client import protocol as P

from .limits import Limits
from .security import CurveKeys, SecurityError, make_curve_client, make_curve_server, wildcard_port

log = logging.getLogger("dni.server")

Done = Callable[[bool], None]  # told once whether a message went out (True) or not


class Delivery(Enum):
    SENT = "sent"
    QUEUED = "queued"    # waits in the peer's backlog: the client reads slowly
    DROPPED = "dropped"  # a droppable message to a client that reads slowly
    GONE = "gone"        # the client's connection has closed
    CUT_OFF = "cut_off"  # the client stopped reading: its backlog was discarded


@dataclass
class Incoming:
    """One received message: its first frames, within the budget, and its real size."""

    frames: list[zmq.Frame]
    count: int   # frames in the whole message
    nbytes: int  # bytes in the whole message

    @property
    def cut(self) -> bool:
        return len(self.frames) < self.count


@dataclass
class _Waiting:
    message: list[Any]
    nbytes: int
    done: Done | None


@dataclass
class _Backlog:
    since: float  # when the peer was last writable
    items: deque[_Waiting] = field(default_factory=deque)
    nbytes: int = 0


def _nbytes(frames: Sequence[Any]) -> int:
    return sum(memoryview(frame).nbytes for frame in frames)


def _tell(done: Done | None, sent: bool) -> None:
    if done is not None:
        done(sent)


class Router:
    def __init__(self, context: zmq.Context, limits: Limits) -> None:
        self._limits = limits
        self._backlogs: dict[bytes, _Backlog] = {}  # by the peer's routing id
        self.endpoints: list[str] = []
        # The routing ids this socket gave its connections to brokers: a message whose
        # peer is one of them came from a client behind that broker (parsing.py).
        self.brokers: set[bytes] = set()
        self.socket = context.socket(zmq.ROUTER)
        s = self.socket
        s.setsockopt(zmq.LINGER, 0)
        s.setsockopt(zmq.ROUTER_MANDATORY, 1)
        s.setsockopt(zmq.MAXMSGSIZE, limits.max_frame_bytes + 1024)  # + the header's share
        s.setsockopt(zmq.HEARTBEAT_IVL, 2000)
        s.setsockopt(zmq.HEARTBEAT_TIMEOUT, 6000)
        s.setsockopt(zmq.HEARTBEAT_TTL, 6000)
        s.setsockopt(zmq.SNDHWM, limits.send_hwm)
        s.setsockopt(zmq.RCVHWM, limits.receive_hwm)

    def attach(self, endpoint: str | None, connect: Sequence[str],
               curve: CurveKeys | None) -> None:
        """Bind `endpoint` and/or connect to brokers' backends."""
        if curve is not None:
            if endpoint and connect:
                raise SecurityError("with CurveZMQ, bind an endpoint or connect to a broker, "
                                    "not both")
            # Bound: clients authenticate to us. Connected to a broker: we authenticate
            # to it with the folder's client key pair.
            (make_curve_server if endpoint else make_curve_client)(self.socket, curve)
        if any(P.is_ipv6_endpoint(address) for address in [endpoint or "", *connect]):
            self.socket.setsockopt(zmq.IPV6, 1)
        if endpoint:
            self.socket.bind(wildcard_port(endpoint))
            self.endpoints.append(self.socket.getsockopt_string(zmq.LAST_ENDPOINT))
        for address in connect:
            broker = b"\0broker-" + secrets.token_bytes(16)
            self.socket.setsockopt(zmq.CONNECT_ROUTING_ID, broker)
            self.socket.connect(address)
            self.brokers.add(broker)
            self.endpoints.append(address)

    # -- receiving ---------------------------------------------------------------------

    def receive(self) -> Incoming | None:
        """The next message, without waiting; None when there is none. Frames past
        max_message_frames or max_request_bytes are read and let go at once."""
        try:
            frame = self.socket.recv(zmq.NOBLOCK, copy=False)
        except zmq.Again:
            return None
        kept, count, nbytes = [frame], 1, len(frame)
        keeping = True
        while frame.more:
            frame = self.socket.recv(copy=False)  # the rest has arrived: libzmq delivers
            count += 1                            # whole messages only
            nbytes += len(frame)
            keeping = (keeping and count <= self._limits.max_message_frames
                       and nbytes <= self._limits.max_request_bytes)
            if keeping:
                kept.append(frame)
        return Incoming(kept, count, nbytes)

    # -- sending -----------------------------------------------------------------------

    @property
    def backlogged(self) -> bool:
        """Some replies wait for clients that read slowly (retry() them soon)."""
        return bool(self._backlogs)

    def send(self, client: Sequence[bytes], header: dict[str, Any],
             frames: Sequence[Any] = (), droppable: bool = False,
             done: Done | None = None) -> Delivery:
        """Send one message, or queue it for a client that reads slowly. `done` is told,
        now or later, whether the message went out."""
        header.setdefault("v", P.PROTOCOL_VERSION)
        message = [*client, b"", P.encode_header(header), *frames]
        peer = bytes(client[0])
        backlog = self._backlogs.get(peer)
        if backlog is None:
            outcome = self._try(message)
            if outcome is not None:
                _tell(done, outcome is Delivery.SENT)
                return outcome
        if droppable:  # progress: the next one will tell the client as much
            _tell(done, False)
            return Delivery.DROPPED
        if backlog is None:
            backlog = self._backlogs[peer] = _Backlog(time.monotonic())
        item = _Waiting(message, _nbytes(message), done)
        backlog.items.append(item)
        backlog.nbytes += item.nbytes
        if (len(backlog.items) > self._limits.max_backlog
                or (backlog.nbytes > self._limits.max_backlog_bytes and len(backlog.items) > 1)):
            self._discard(peer, "it stopped reading and its backlog is full", cut_off=True)
            return Delivery.CUT_OFF
        return Delivery.QUEUED

    def retry(self) -> list[tuple[bytes, Delivery]]:
        """Send what waits, oldest first. Returns the peers lost meanwhile: GONE, or
        CUT_OFF after `backlog_seconds` without being writable."""
        lost = []
        now = time.monotonic()
        for peer, backlog in list(self._backlogs.items()):
            if self._drain(backlog, now) is Delivery.GONE:
                self._discard(peer, "its connection closed")
                lost.append((peer, Delivery.GONE))
            elif not backlog.items:
                del self._backlogs[peer]
            elif now - backlog.since > self._limits.backlog_seconds:
                self._discard(peer, f"it read nothing for {self._limits.backlog_seconds:g} s",
                              cut_off=True)
                lost.append((peer, Delivery.CUT_OFF))
        return lost

    def _drain(self, backlog: _Backlog, now: float) -> Delivery | None:
        while backlog.items:
            item = backlog.items[0]
            outcome = self._try(item.message)
            if outcome is None:
                return None
            backlog.items.popleft()
            backlog.nbytes -= item.nbytes
            backlog.since = now  # the client reads again
            _tell(item.done, outcome is Delivery.SENT)
            if outcome is Delivery.GONE:
                return outcome
        return Delivery.SENT

    def _discard(self, peer: bytes, why: str, cut_off: bool = False) -> None:
        backlog = self._backlogs.pop(peer)
        (log.warning if cut_off else log.info)(
            "discarding %d message(s) to a client: %s", len(backlog.items), why)
        for item in backlog.items:
            _tell(item.done, False)

    def _try(self, message: list[Any]) -> Delivery | None:
        """SENT or GONE; None when libzmq's queue towards the peer is full."""
        try:
            self.socket.send_multipart(message, zmq.NOBLOCK, copy=False)
            return Delivery.SENT
        except zmq.Again:
            return None
        except zmq.ZMQError as exc:
            if exc.errno == errno.EHOSTUNREACH:
                return Delivery.GONE
            raise

    def close(self) -> None:
        for peer in list(self._backlogs):
            self._discard(peer, "the server is stopping")
        self.socket.close(linger=0)
