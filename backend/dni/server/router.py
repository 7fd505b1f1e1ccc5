"""The server's ROUTER socket: its options, where it binds or connects, and sending.

Only the I/O thread uses it. ROUTER_MANDATORY turns a message to a client whose
connection has closed into an error (EHOSTUNREACH) instead of a silent drop, and libzmq
heartbeats close connections to peers that died without closing them: together they tell
the server that a client is gone.
"""

from __future__ import annotations

import errno
import logging
import threading
import time
from collections.abc import Sequence
from enum import Enum
from typing import Any

import zmq

from dni_client import protocol as P

from .security import CurveKeys, SecurityError, make_curve_client, make_curve_server, wildcard_port

log = logging.getLogger("dni.server")

_SEND_RETRY_S = 5.0  # a terminal reply waits this long for a client that reads slowly


class Delivery(Enum):
    SENT = "sent"
    DROPPED = "dropped"  # the client reads too slowly (or we are stopping)
    GONE = "gone"        # the client's connection has closed


class Router:
    def __init__(self, context: zmq.Context, max_frame_bytes: int,
                 stopping: threading.Event) -> None:
        self._stopping = stopping
        self.endpoints: list[str] = []
        self.socket = context.socket(zmq.ROUTER)
        s = self.socket
        s.setsockopt(zmq.LINGER, 0)
        s.setsockopt(zmq.ROUTER_MANDATORY, 1)
        s.setsockopt(zmq.MAXMSGSIZE, max_frame_bytes + 1024)  # + the header's share
        s.setsockopt(zmq.HEARTBEAT_IVL, 2000)
        s.setsockopt(zmq.HEARTBEAT_TIMEOUT, 6000)
        s.setsockopt(zmq.HEARTBEAT_TTL, 6000)
        s.setsockopt(zmq.SNDHWM, 10000)
        s.setsockopt(zmq.RCVHWM, 1000)

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
        if endpoint:
            self.socket.bind(wildcard_port(endpoint))
            self.endpoints.append(self.socket.getsockopt_string(zmq.LAST_ENDPOINT))
        for address in connect:
            self.socket.connect(address)
            self.endpoints.append(address)

    def receive(self) -> list[zmq.Frame] | None:
        """The next message, without waiting; None when there is none."""
        try:
            return self.socket.recv_multipart(zmq.NOBLOCK, copy=False)
        except zmq.Again:
            return None

    def send(self, client: Sequence[bytes], header: dict[str, Any],
             frames: Sequence[Any] = (), droppable: bool = False) -> Delivery:
        header.setdefault("v", P.PROTOCOL_VERSION)
        message = [*client, b"", P.encode_header(header), *frames]
        deadline = None
        while True:
            try:
                self.socket.send_multipart(message, zmq.NOBLOCK, copy=False)
                return Delivery.SENT
            except zmq.Again:
                # The client reads slower than we produce: progress can go, results wait.
                if droppable or self._stopping.is_set():
                    return Delivery.DROPPED
                deadline = deadline or time.monotonic() + _SEND_RETRY_S
                if time.monotonic() > deadline:
                    log.warning("dropping a reply to a client that stopped reading")
                    return Delivery.DROPPED
                time.sleep(0.005)
            except zmq.ZMQError as exc:
                if exc.errno == errno.EHOSTUNREACH:
                    return Delivery.GONE
                raise

    def close(self) -> None:
        self.socket.close(linger=0)
