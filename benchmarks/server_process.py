"""Start a real `dni serve` for a benchmark and stop it afterwards."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager


@contextmanager
def running_server(*args: Sequence[str] | str, device: str = "cpu") -> Iterator[str]:
    """Yield the endpoint of a fresh `dni serve` on a free loopback port."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "dni.server", "serve", "--endpoint", "tcp://127.0.0.1:0",
         "--device", device, *args], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("listening on "):
                yield line.split()[2]
                break
        else:
            raise RuntimeError(f"dni serve exited with {proc.wait()}")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
