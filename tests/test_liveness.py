"""Per-job liveness against real processes (docs/protocol.md, "Liveness").

A job whose server lost it must end with a `connection_lost` error, never leave the
client waiting: a `dni serve` killed and restarted on the same port mid-job (for
`Client.run` and for `dni apply --server`), and a worker behind a real `dni broker`
killed mid-job while another worker keeps answering pings.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from test_server_util import Process, broker_cluster

from dni_client import ConnectionLost, Event, Result, ZmqClient
from dni_client import protocol as P

BIG = 1024        # 1024 tiles of 32 x 32: seconds of work, long enough to kill mid-job
TILE = 32
# The client asks about a job after this much quiet; the server's answer ends it.
DETECT_S = 3 * P.ALIVE_INTERVAL_S


def free_endpoint() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{sock.getsockname()[1]}"


def start_server(family_dir: Path, endpoint: str) -> Process:
    return Process(["serve", "--device", "cpu", "--endpoint", endpoint,
                    "--family-path", str(family_dir)])


def kill(process: Process) -> None:
    process.proc.send_signal(signal.SIGKILL)
    process.proc.wait()


def big_job(client: ZmqClient) -> str:
    return client.submit("tiny", BIG, BIG, "grey8", bytes(BIG * BIG), strength=0.5, tile=TILE)


def wait_end(client: ZmqClient, job: str, timeout: float) -> tuple[Event, list[Event]]:
    """The job's final event, and the events before it; AssertionError after `timeout`."""
    seen: list[Event] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for event in client.poll(100):
            if event.job_id == job and event.kind != "progress":
                return event, seen
            seen.append(event)
    raise AssertionError(f"job {job} still pending after {timeout} s")


def wait_running(client: ZmqClient, job: str, timeout: float = 60.0) -> Event:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for event in client.poll(100):
            assert event.kind == "progress", event
            if event.job_id == job and event.stage == "inference":
                return event
    raise AssertionError(f"job {job} did not start within {timeout} s")


@pytest.fixture
def restartable(tiny_family_dir: Path) -> Iterator[list[Process]]:
    """Servers started on one endpoint, one after the other; all stopped at the end."""
    servers: list[Process] = []
    yield servers
    for server in servers:
        server.stop()


def test_run_ends_when_the_server_is_restarted_mid_job(tiny_family_dir: Path,
                                                       restartable: list[Process]) -> None:
    """The restarted server answers every ping, but has never heard of the job: the job
    ends as soon as the client asks, not after the (long) timeout, and never hangs."""
    endpoint = free_endpoint()
    restartable.append(start_server(tiny_family_dir, endpoint))
    client = ZmqClient(endpoint, timeout=120.0)
    restarted_at: list[float] = []

    def restart_once(_fraction: float, stage: str) -> bool:
        if stage == "inference" and not restarted_at:
            kill(restartable[0])
            restartable.append(start_server(tiny_family_dir, endpoint))
            restarted_at.append(time.monotonic())
        return False

    outcome: list[Result | BaseException] = []

    def run() -> None:
        try:
            outcome.append(client.run("tiny", BIG, BIG, "grey8", bytes(BIG * BIG),
                                      strength=0.5, tile=TILE, on_progress=restart_once))
        except BaseException as exc:  # noqa: BLE001 - examined below
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)  # a hang must fail, not block
    thread.start()
    thread.join(timeout=180)
    assert not thread.is_alive(), "client.run still waits for a job the server lost"
    assert restarted_at and len(outcome) == 1
    assert isinstance(outcome[0], ConnectionLost), outcome
    assert "no longer has this job (it was restarted)" in str(outcome[0])
    assert time.monotonic() - restarted_at[0] < DETECT_S + 15  # not the 120 s timeout
    # The same client goes on with the new server.
    data = bytes(range(48))
    assert client.run("identity", 4, 4, "rgb8", data, strength=0.5).pixels == data
    client.close()


def dni_command() -> list[str]:
    installed = Path(sys.executable).with_name("dni")
    if installed.exists():
        return [str(installed)]
    return [sys.executable, "-c", "import sys; from dni.cli import main; sys.exit(main())"]


def test_apply_with_server_ends_when_the_server_is_restarted(
        tiny_family_dir: Path, restartable: list[Process], tmp_path: Path) -> None:
    endpoint = free_endpoint()
    restartable.append(start_server(tiny_family_dir, endpoint))
    source, output = tmp_path / "in.png", tmp_path / "out.png"
    Image.fromarray(np.zeros((BIG, BIG), np.uint8)).save(source)
    apply = subprocess.Popen(
        [*dni_command(), "apply", str(source), "-o", str(output), "--server", endpoint,
         "--family", "tiny", "--strength", "0.5", "--tile", str(TILE)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    with ExitStack() as stack:
        stack.callback(lambda: apply.poll() is None and apply.kill())
        with ZmqClient(endpoint, timeout=30.0) as watcher:
            deadline = time.monotonic() + 120
            while watcher.stats()["running"] == 0:  # the server's own word: it runs
                assert apply.poll() is None, apply.communicate()
                assert time.monotonic() < deadline, "the job never started"
                time.sleep(0.05)
        kill(restartable[0])
        restartable.append(start_server(tiny_family_dir, endpoint))
        restarted = time.monotonic()
        try:
            _, err = apply.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            pytest.fail("`dni apply --server` still waits for a job the server lost")
        waited = time.monotonic() - restarted
    assert apply.returncode == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("dni: error: "), err
    assert waited < DETECT_S + 15  # the restart was noticed: not the 30 s timeout
    assert not output.exists()


# -- behind a broker ---------------------------------------------------------------------

@pytest.fixture
def cluster(tiny_family_dir: Path) -> Iterator[tuple[Process, list[Process]]]:
    """A broker and two workers of its own (one of them gets killed)."""
    with broker_cluster(tiny_family_dir) as (broker, workers):
        yield broker, workers


def instances(client: ZmqClient, workers: list[Process]) -> dict[str, Process]:
    """Each worker's instance id, from hellos (the broker hands them out in turn)."""
    by_pid = {worker.pid: worker for worker in workers}
    found: dict[str, Process] = {}
    deadline = time.monotonic() + 60
    while len(found) < len(workers):
        assert time.monotonic() < deadline, found
        hello: dict[str, Any] = client.hello()
        assert hello["direct"] is False  # the broker is in between
        found[hello["instance"]] = by_pid[int(hello["worker"].split(":")[1])]
    return found


def test_a_job_ends_when_its_broker_worker_dies(
        cluster: tuple[Process, list[Process]]) -> None:
    """The other worker answers every ping (and knows nothing of the job): that must not
    keep the job alive. It ends within its timeout of its last sign of life."""
    broker, workers = cluster
    timeout = 5.0
    with ZmqClient(broker.endpoint, timeout=timeout) as client:
        by_instance = instances(client, workers)
        job = big_job(client)
        running = wait_running(client, job)
        victim = by_instance[running.header["instance"]]
        kill(victim)
        killed = time.monotonic()
        end, _ = wait_end(client, job, timeout=60)
        waited = time.monotonic() - killed
        assert (end.kind, end.code) == ("error", "connection_lost"), end
        assert waited < timeout + 5, waited
        # The surviving worker serves the next job.
        data = bytes(range(48))
        result = client.run("identity", 4, 4, "rgb8", data, strength=0.5)
        assert result.pixels == data
        assert int(result.header["worker"].split(":")[1]) != victim.pid
