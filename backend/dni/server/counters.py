"""The server's diagnostic counters (`stats`), bumped by the I/O thread and the workers."""

from __future__ import annotations

import threading

# slow_clients: clients cut off because they stopped reading their replies;
# slow_dropped / vanished_dropped: jobs dropped because their client was cut off / gone.
NAMES = ("requests", "errors", "completed", "failed", "cancelled", "superseded",
         "vanished_dropped", "slow_clients", "slow_dropped")


class Counters:
    def __init__(self) -> None:
        self._lock = threading.Lock()  # workers and the I/O thread count at once
        self._values = dict.fromkeys(NAMES, 0)

    def add(self, name: str, amount: int = 1) -> None:
        with self._lock:
            self._values[name] += amount

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._values)
