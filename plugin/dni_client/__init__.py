"""Client side of DNI for the editor plugins: pure Python (3.8+) and pyzmq; no numpy,
torch or Qt, because it runs inside Krita's and GIMP's own interpreters.

The data path: a host reads pixels into a `JobSpec` (job.py), a `Session` (session.py)
sends it through a `Client` (client.py; `ZmqClient` speaks the wire protocol of
protocol.py) and hands the result back. The rules both sides of the wire share live in
mixing.py (strength <-> weights, presets) and filters.py (the filters and their tasks).

Nothing here imports pyzmq at import time: only `ZmqClient` needs it, so a host can load
every other module (and explain a missing pyzmq) first.
"""

from __future__ import annotations

from typing import Any

from .client import Client, ClientError, ConnectionLost, Event, Result, ServerError
from .protocol import DEFAULT_ENDPOINT, PROTOCOL_VERSION

__all__ = [
    "Client",
    "ClientError",
    "ConnectionLost",
    "DEFAULT_ENDPOINT",
    "Event",
    "PROTOCOL_VERSION",
    "Result",
    "ServerError",
    "ZmqClient",
]


def __getattr__(name: str) -> Any:
    if name == "ZmqClient":  # imports pyzmq: only when asked for
        from .zmq_client import ZmqClient

        return ZmqClient
    raise AttributeError(f"module 'dni_client' has no attribute {name!r}")
