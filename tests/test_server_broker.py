"""Scale-out: two `dni serve --connect` workers behind a zmq.proxy broker."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import numpy as np
import pytest
import zmq
from test_server_util import Process, broker_cluster

from dni_client import ConnectionLost, ZmqClient
from dni_client import protocol as P


@pytest.fixture(scope="module")
def cluster(tiny_family_dir: Path) -> Iterator[tuple[Process, str]]:
    with broker_cluster(tiny_family_dir) as (broker, _workers):
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


@pytest.mark.parametrize("frames", [
    [b"x"],                                              # no delimiter at all
    [b"x", b'{"v": 1, "op": "hello", "id": "h"}'],
    [b'{"v": 1, "op": "hello", "id": "h"}'],
    [b"r"] * 8 + [b"", b'{"v": 1, "op": "hello", "id": "h"}'],   # the longest envelope
    [b"r"] * 9 + [b"", b'{"v": 1, "op": "hello", "id": "h"}'],   # one frame too many
    [b"r"] * 20 + [b"", b'{"v": 1, "op": "hello", "id": "h"}'],
])
def test_malformed_envelopes_through_the_broker_get_a_reply(
        cluster: tuple[Process, str], frames: list[bytes]) -> None:
    """The worker's peer is the broker: an error addressed to the broker alone would be
    dropped by its frontend, so the client would never hear back."""
    _, endpoint = cluster
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(endpoint)
    try:
        sock.send_multipart(frames)
        assert sock.poll(10_000), f"no reply to {frames!r:.80}"
        reply = sock.recv_multipart()
        header = P.decode_header(reply[reply.index(b"") + 1])
        assert header["kind"] in ("hello", "error"), header
        if len(frames) < 3 or len(frames) > 10:
            assert header["kind"] == "error" and header["code"] in ("bad_message", "too_large")
    finally:
        sock.close()
