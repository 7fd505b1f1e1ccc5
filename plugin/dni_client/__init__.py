"""Client side of DNI for the editor plugins: pure Python + pyzmq, no numpy, torch or Qt.

`Client` talks to a running `dni serve` over ZeroMQ; `protocol` holds the wire format
shared with the server. Further modules (presets, launcher) live next to these.
"""

from __future__ import annotations

from . import protocol
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
    "protocol",
]
