"""Messages from the worker threads to the I/O thread, which alone sends them.

ZeroMQ sockets must stay in the thread that made them, so workers never touch the ROUTER:
they put their messages on a queue and send one byte on an inproc PUSH socket of their
own, which wakes the I/O thread's poller.
"""

from __future__ import annotations

import queue
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import zmq

from .jobs import Tracked


@dataclass
class Outgoing:
    job: Tracked  # a run or an install
    header: dict[str, Any]
    frames: Sequence[Any] = ()
    terminal: bool = False           # the job's result or error: its last message


Post = Callable[[Outgoing], None]


class Outbox:
    def __init__(self, context: zmq.Context) -> None:
        self._context = context
        self._endpoint = f"inproc://dni-server-wake-{id(self)}"
        self._items: queue.SimpleQueue[Outgoing] = queue.SimpleQueue()
        self.wake = context.socket(zmq.PULL)  # the I/O thread polls this
        self.wake.bind(self._endpoint)

    @contextmanager
    def poster(self) -> Iterator[Post]:
        """In a worker thread: a function that hands a message to the I/O thread."""
        push = self._context.socket(zmq.PUSH)
        push.setsockopt(zmq.LINGER, 0)
        push.setsockopt(zmq.SNDHWM, 1)  # one pending wake-up is as good as many
        push.connect(self._endpoint)

        def post(item: Outgoing) -> None:
            self._items.put(item)
            try:
                push.send(b"", zmq.NOBLOCK)
            except zmq.Again:
                pass  # the I/O thread has a wake-up pending already

        try:
            yield post
        finally:
            push.close(linger=0)

    def clear_wakeups(self) -> None:
        while True:
            try:
                self.wake.recv(zmq.NOBLOCK)
            except zmq.Again:
                return

    def pending(self) -> Iterator[Outgoing]:
        """The messages posted so far, oldest first (I/O thread)."""
        while True:
            try:
                yield self._items.get_nowait()
            except queue.Empty:
                return

    def close(self) -> None:
        self.wake.close(linger=0)
