"""`dni serve`: the ZeroMQ backend the editor plugins talk to (see docs/protocol.md)."""

from __future__ import annotations

from .limits import Limits
from .security import SecurityError, is_local_endpoint
from .server import Server

__all__ = ["Limits", "SecurityError", "Server", "is_local_endpoint"]
