"""dni_client.session with the real ZeroMQ client: reaching an endpoint never blocks the
caller (the editors call it on their GUI thread)."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from dni_client.errors import BackendError
from dni_client.session import STATE_ERROR, Session
from dni_client.settings import BackendSettings


def test_a_port_held_by_another_program_never_freezes_the_caller(tmp_path) -> None:
    """Another program listens and never speaks ZeroMQ: each step returns at once, and
    after the greeting's timeout the session says plainly what is wrong."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                continue

    threading.Thread(target=accept, daemon=True).start()
    endpoint = f"tcp://127.0.0.1:{listener.getsockname()[1]}"
    session = Session(BackendSettings(str(tmp_path), endpoint=endpoint), installer="-")
    slowest = 0.0
    try:
        with pytest.raises(BackendError, match="Another program answers") as info:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                started = time.perf_counter()
                try:
                    session.step()
                finally:
                    slowest = max(slowest, time.perf_counter() - started)
                time.sleep(0.02)
    finally:
        stop.set()
        listener.close()
        for conn in accepted:
            conn.close()
        session.shutdown()
    assert session.state == STATE_ERROR and endpoint in str(info.value)
    # The 3 s greeting ran on its own thread: no step took more than a blink.
    assert slowest < 0.1, slowest
