"""What the editors need of a backend connection: the `Client` interface, and the events
and results it hands out. `ZmqClient` (zmq_client.py) talks to `dni serve`; the tests'
fakes implement the same interface. No pyzmq here, so the hosts can import this before
knowing whether pyzmq loads.

Two styles: blocking (`hello`, `families`, `run`) and non-blocking (`submit`, then `poll`
from a GUI timer, `cancel` at any time). A client is used from one thread.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any


class ClientError(Exception):
    """Base class of the client's exceptions."""


class ServerError(ClientError):
    """The server answered with an error reply."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class ConnectionLost(ClientError, TimeoutError):
    """No answer from the server within the timeout; the client has reconnected."""


class Event:
    """One message about a job: kind is "progress", "result" or "error" (an install ends
    with "installed" instead of "result")."""

    __slots__ = ("kind", "job_id", "header", "pixels")

    def __init__(self, kind: str, job_id: str, header: dict[str, Any],
                 pixels: bytes | None = None) -> None:
        self.kind = kind
        self.job_id = job_id
        self.header = header
        self.pixels = pixels

    @property
    def fraction(self) -> float:
        return float(self.header.get("fraction") or 0.0)

    @property
    def stage(self) -> str:
        return str(self.header.get("stage") or "")

    @property
    def code(self) -> str:
        return str(self.header.get("code") or "error")

    @property
    def message(self) -> str:
        return str(self.header.get("message") or "")

    def __repr__(self) -> str:
        return f"Event({self.kind!r}, {self.job_id!r}, {self.header!r})"


class Result:
    """A finished job: the new pixels in `layout`, `width` x `height`."""

    __slots__ = ("width", "height", "layout", "pixels", "header")

    def __init__(self, width: int, height: int, layout: str, pixels: bytes,
                 header: dict[str, Any]) -> None:
        self.width = width
        self.height = height
        self.layout = layout
        self.pixels = pixels
        self.header = header

    @classmethod
    def from_event(cls, event: Event) -> Result:
        h = event.header
        return cls(int(h["width"]), int(h["height"]), str(h["layout"]), event.pixels or b"",
                   h)

    def __repr__(self) -> str:
        return f"Result({self.width}x{self.height} {self.layout}, {len(self.pixels)} bytes)"


class Client(ABC):
    """A connection to one backend (or a broker in front of several)."""

    endpoint: str
    timeout: float  # seconds of silence after which a pending job counts as lost

    @abstractmethod
    def hello(self) -> dict[str, Any]:
        """Server and protocol version, devices, families and limits."""

    @abstractmethod
    def families(self) -> list[dict[str, Any]]:
        """The installed families, as `dni families --json` lists them."""

    @abstractmethod
    def submit(self, family: str, width: int, height: int, layout: str, pixels: Any, *,
               strength: float | None = None, weights: Sequence[float] | None = None,
               mask: Any = None, strength_map: Any = None, mode: str = "network",
               preview: bool = False, tile: int | None = None,
               job_id: str | None = None) -> str:
        """Queue a job and return its id at once; follow it with poll()."""

    @abstractmethod
    def poll(self, timeout_ms: int = 0) -> list[Event]:
        """Events that arrived since the last call (waiting up to timeout_ms for the
        first). A job ends with exactly one "result" or "error" event."""

    @abstractmethod
    def cancel(self, job_id: str) -> None:
        """Ask for a job to stop; its end arrives as an error with code "cancelled"."""

    @abstractmethod
    def run(self, family: str, width: int, height: int, layout: str, pixels: Any, *,
            strength: float | None = None, weights: Sequence[float] | None = None,
            mask: Any = None, strength_map: Any = None, mode: str = "network",
            preview: bool = False, tile: int | None = None,
            on_progress: Callable[[float, str], Any] | None = None) -> Result:
        """Run a job and wait for it: ServerError on an error reply, ConnectionLost when
        the server goes silent. on_progress(fraction, stage) returning True cancels."""

    def catalogue(self) -> list[dict[str, Any]]:
        """The families the backend can download: name, title, licence, size (bytes),
        members, installed (docs/protocol.md, `catalogue`)."""
        raise ClientError("this backend cannot download families")

    def install(self, family: str) -> str:
        """Start downloading a catalogue family and return the install's id at once: its
        progress, then one "installed" or "error" event, arrive through poll(); cancel()
        stops it."""
        raise ClientError("this backend cannot download families")

    @abstractmethod
    def close(self) -> None:
        """Close the connection; the server drops this client's jobs."""

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
