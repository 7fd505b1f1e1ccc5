"""`dni serve`: the ZeroMQ backend the editor plugins talk to (see docs/protocol.md)."""

from __future__ import annotations

from .core import Limits, Server
from .security import SecurityError, is_local_endpoint

__all__ = ["Limits", "SecurityError", "Server", "is_local_endpoint"]
