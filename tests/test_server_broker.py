"""Scale-out: two `dni serve --connect` workers behind a zmq.proxy broker."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import numpy as np
import pytest
from test_server_util import Process

from dni_client import ConnectionLost, ZmqClient


@pytest.fixture(scope="module")
def cluster(tiny_family_dir: Path) -> Iterator[tuple[Process, str]]:
    with ExitStack() as stack:
        broker = Process(["broker", "--frontend", "tcp://127.0.0.1:0",
                          "--backend", "tcp://127.0.0.1:0"])
        stack.callback(broker.stop)
        backend = re.search(r"workers: (\S+)\)", broker.extra[0])
        assert backend is not None
        workers = []
        for _ in range(2):  # started side by side: each spends seconds importing torch
            worker = Process(["serve", "--device", "cpu", "--connect", backend.group(1),
                              "--family-path", str(tiny_family_dir)], wait=False)
            stack.callback(worker.stop)
            workers.append(worker)
        for worker in workers:
            worker.wait_ready()
        yield broker, broker.endpoint


def test_two_workers_share_the_jobs(cluster: tuple[Process, str]) -> None:
    _, endpoint = cluster
    with ZmqClient(endpoint, timeout=20.0) as client:
        # Workers connect to the broker asynchronously: say hello until both answered.
        workers: set[str] = set()
        deadline = time.monotonic() + 60
        while len(workers) < 2:
            assert time.monotonic() < deadline, workers
            workers.add(client.hello()["worker"])
        rng = np.random.default_rng(0)
        images = [rng.integers(0, 256, 24 * 16 * 4, dtype=np.uint8).tobytes() for _ in range(6)]
        jobs = {client.submit("identity", 24, 16, "rgba8", data, strength=0.5): data
                for data in images}
        used = set()
        done = 0
        deadline = time.monotonic() + 60
        while done < len(jobs):
            assert time.monotonic() < deadline
            for event in client.poll(100):
                if event.kind == "progress":
                    continue
                assert event.kind == "result", event
                assert event.pixels == jobs[event.job_id]
                used.add(event.header["worker"])
                done += 1
        assert used == workers  # round robin: both did some of the work


def test_cancel_reaches_the_right_worker(cluster: tuple[Process, str]) -> None:
    _, endpoint = cluster
    with ZmqClient(endpoint, timeout=20.0) as client:
        job = client.submit("tiny", 1024, 1024, "grey8", bytes(1024 * 1024), strength=0.5,
                            tile=32)
        deadline = time.monotonic() + 60
        cancelled_at = None
        end = None
        while end is None:
            assert time.monotonic() < deadline
            for event in client.poll(100):
                if event.job_id != job:
                    continue
                if event.kind == "progress" and event.stage == "inference" \
                        and cancelled_at is None:
                    client.cancel(job)
                    cancelled_at = event.fraction
                elif event.kind != "progress":
                    end = event
        assert end.kind == "error" and end.header["code"] == "cancelled"
        assert end.header["tiles_after_cancel"] <= 2  # one more cancel hop at most


def test_curve_broker_with_a_curve_worker(tiny_family_dir: Path, tmp_path: Path) -> None:
    from dni.server.__main__ import main

    keys = tmp_path / "keys"
    assert main(["keys", str(keys)]) == 0
    with ExitStack() as stack:
        broker = Process(["broker", "--curve-keys", str(keys), "--frontend",
                          "tcp://127.0.0.1:0", "--backend", "tcp://127.0.0.1:0"])
        stack.callback(broker.stop)
        backend = re.search(r"workers: (\S+)\)", broker.extra[0])
        assert backend is not None
        worker = Process(["serve", "--device", "cpu", "--curve-keys", str(keys), "--connect",
                          backend.group(1), "--family-path", str(tiny_family_dir)])
        stack.callback(worker.stop)
        with ZmqClient(broker.endpoint, server_public_key=str(keys / "server.key"),
                    client_keys_dir=str(keys), timeout=30.0) as client:
            assert client.hello()["curve"] is True
            data = bytes(range(48))
            assert client.run("identity", 4, 4, "rgb8", data, strength=0.5).pixels == data
        with ZmqClient(broker.endpoint, timeout=1.0) as plain:
            with pytest.raises(ConnectionLost):
                plain.hello()
