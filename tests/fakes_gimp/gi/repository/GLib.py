from __future__ import annotations


class Error(Exception):
    def __init__(self, message: str = "", domain: str = "", code: int = 0) -> None:
        super().__init__(message)
        self.message = message
        self.domain = domain
        self.code = code


def markup_escape_text(text: str, length: int = -1) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# Timers: recorded, run by the test (there is no main loop here). id -> (callback, args)
timeouts: dict[int, tuple[object, tuple[object, ...]]] = {}


def timeout_add(interval_ms: int, callback: object, *args: object) -> int:
    source = len(timeouts) + 1
    timeouts[source] = (callback, args)
    return source


def source_remove(source: int) -> bool:
    return timeouts.pop(source, None) is not None


def run_timeouts() -> None:
    """One round of every timer; a callback returning False is removed, as in GLib."""
    for source, (callback, args) in list(timeouts.items()):
        if not callback(*args):  # type: ignore[operator]
            timeouts.pop(source, None)
