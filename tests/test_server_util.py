"""Helpers that start real `dni serve` / `dni broker` processes, and tests of the small
pieces they rely on (endpoint rules, the ready line, clean shutdown)."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import pytest

from dni.server.security import is_local_endpoint

START_TIMEOUT_S = 120.0  # torch import on a loaded 2-core machine


class Process:
    """A `python -m dni.server ...` child; `endpoints` from its 'listening on' lines."""

    def __init__(self, args: Sequence[str], expect_lines: int = 1, wait: bool = True) -> None:
        # Keep the child away from the user's own family folder, like the tests' fixture.
        env = dict(os.environ, PYTHONUNBUFFERED="1", XDG_DATA_HOME=tempfile.mkdtemp())
        env.pop("DNI_FAMILY_PATH", None)
        self.proc = subprocess.Popen([sys.executable, "-m", "dni.server", *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     env=env)
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.stderr: list[str] = []
        threading.Thread(target=self._pump, args=(self.proc.stdout, self.lines),
                         daemon=True).start()
        threading.Thread(target=self._collect, daemon=True).start()
        self.endpoints: list[str] = []
        self.extra: list[str] = []
        self.expect_lines = expect_lines
        if wait:
            self.wait_ready()

    def wait_ready(self) -> None:
        """Block until the child printed its 'listening on' line(s)."""
        deadline = time.monotonic() + START_TIMEOUT_S
        while len(self.endpoints) < self.expect_lines:
            try:
                line = self.lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                self.stop()
                raise RuntimeError(f"no ready line within {START_TIMEOUT_S} s") from None
            if line is None:
                self.proc.wait()
                raise RuntimeError(f"exited with {self.proc.returncode}: "
                                   f"{''.join(self.stderr)}")
            if line.startswith("listening on "):
                words = line.split()
                self.endpoints.append(words[2])
                self.extra.append(line)

    @staticmethod
    def _pump(stream, out: queue.Queue[str | None]) -> None:  # type: ignore[no-untyped-def]
        for line in stream:
            out.put(line)
        out.put(None)

    def _collect(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr.append(line)

    @property
    def endpoint(self) -> str:
        return self.endpoints[0]

    @property
    def pid(self) -> int:
        return self.proc.pid

    def rss_kib(self) -> int:
        with open(f"/proc/{self.pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise RuntimeError("no VmRSS")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


@contextmanager
def serve(family_dir: Path | None, *extra: str, endpoint: str = "tcp://127.0.0.1:0"
          ) -> Iterator[Process]:
    args = ["serve", "--device", "cpu", *extra]
    if endpoint:
        args += ["--endpoint", endpoint]
    if family_dir is not None:
        args += ["--family-path", str(family_dir)]
    process = Process(args)
    try:
        yield process
    finally:
        process.stop()


@contextmanager
def broker_cluster(family_dir: Path, workers: int = 2) -> Iterator[tuple[Process,
                                                                       list[Process]]]:
    """A real `dni broker` and `workers` real `dni serve --connect` workers behind it."""
    with ExitStack() as stack:
        broker = Process(["broker", "--frontend", "tcp://127.0.0.1:0",
                          "--backend", "tcp://127.0.0.1:0"])
        stack.callback(broker.stop)
        backend = re.search(r"workers: (\S+)\)", broker.extra[0])
        assert backend is not None
        started = []
        for _ in range(workers):  # started side by side: each spends seconds importing torch
            worker = Process(["serve", "--device", "cpu", "--connect", backend.group(1),
                              "--family-path", str(family_dir)], wait=False)
            stack.callback(worker.stop)
            started.append(worker)
        for worker in started:
            worker.wait_ready()
        yield broker, started


def serve_in_thread(server: Any) -> threading.Thread:
    """Run an in-process `Server` on a daemon thread; returns once it is ready."""
    ready = threading.Event()
    thread = threading.Thread(target=server.serve, args=(lambda _: ready.set(),), daemon=True)
    thread.start()
    assert ready.wait(10)
    return thread


@contextmanager
def serving(server: Any, *gates: threading.Event) -> Iterator[threading.Thread]:
    """An in-process `Server` running while the block runs (yields its thread);
    afterwards its engines' `gates` are opened, so that no worker stays held, and it is
    stopped and joined."""
    thread = serve_in_thread(server)
    try:
        yield thread
    finally:
        for gate in gates:
            gate.set()
        server.stop()
        thread.join(10)


def run_command(*args: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dni.server", *args], capture_output=True,
                          text=True, timeout=timeout, check=False)


# -- tests of the pieces ------------------------------------------------------------------

@pytest.mark.parametrize("endpoint", [
    "tcp://127.0.0.1:5557", "tcp://127.0.0.2:1", "tcp://localhost:5557", "tcp://[::1]:5557",
    "ipc:///tmp/dni.sock", "inproc://x",
])
def test_local_endpoints(endpoint: str) -> None:
    assert is_local_endpoint(endpoint)


@pytest.mark.parametrize("endpoint", [
    "tcp://0.0.0.0:5557", "tcp://*:5557", "tcp://192.168.1.5:5557", "tcp://eth0:5557",
    "tcp://example.org:5557", "tcp://127.0.0.1;10.0.0.1:5557", "udp://127.0.0.1:5557",
    "ws://127.0.0.1:5557", "127.0.0.1:5557", "tcp://[::]:5557",
])
def test_remote_endpoints(endpoint: str) -> None:
    assert not is_local_endpoint(endpoint)

