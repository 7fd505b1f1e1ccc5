"""Scale-out: clients -> ROUTER (frontend) -> zmq.proxy -> DEALER (backend) -> workers.

Each worker is a `dni serve --connect BACKEND` (one per GPU or host). The DEALER hands
requests to the connected workers in turn; replies travel back along the routing ids
that the frontend ROUTER and each worker's ROUTER put before the empty delimiter.
"""

from __future__ import annotations

import logging

import zmq

from dni_client import protocol as P

from .limits import Limits
from .security import (
    CurveKeys,
    check_endpoint,
    make_curve_server,
    start_authenticator,
    wildcard_port,
)

log = logging.getLogger("dni.broker")


class Broker:
    def __init__(self, frontend: str, backend: str, *, curve: CurveKeys | None = None,
                 max_message_bytes: int | None = None,
                 context: zmq.Context | None = None) -> None:
        if max_message_bytes is None:  # what a worker with default limits accepts
            max_message_bytes = Limits().max_frame_bytes + 1024
        check_endpoint(frontend, curve)
        check_endpoint(backend, curve)
        self._context = context or zmq.Context()
        self._auth = start_authenticator(self._context, curve) if curve else None
        self.frontend = self._context.socket(zmq.ROUTER)
        self.backend = self._context.socket(zmq.DEALER)
        for sock, endpoint in ((self.frontend, frontend), (self.backend, backend)):
            sock.setsockopt(zmq.LINGER, 0)
            if P.is_ipv6_endpoint(endpoint):
                sock.setsockopt(zmq.IPV6, 1)  # off by default in libzmq
            sock.setsockopt(zmq.MAXMSGSIZE, max_message_bytes)
            sock.setsockopt(zmq.HEARTBEAT_IVL, 2000)
            sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, 6000)
            if curve is not None:
                # Workers connect with the folder's client key pair, clients with theirs;
                # both are checked against authorized/.
                make_curve_server(sock, curve)
        self.frontend.bind(wildcard_port(frontend))
        self.backend.bind(wildcard_port(backend))
        self.endpoints = (self.frontend.getsockopt_string(zmq.LAST_ENDPOINT),
                          self.backend.getsockopt_string(zmq.LAST_ENDPOINT))

    def serve(self) -> None:
        """Forward until ctrl-C (or until the context is terminated)."""
        try:
            zmq.proxy(self.frontend, self.backend)
        except (zmq.ContextTerminated, KeyboardInterrupt):
            pass
        finally:
            self.frontend.close(linger=0)
            self.backend.close(linger=0)
            if self._auth is not None:
                self._auth.stop()

