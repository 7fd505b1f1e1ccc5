"""A client that stops reading must not stall the others, and must not lose the replies
of a client that reads late: sends never wait, replies queue per client in a bounded
backlog, and a client that stays unwritable is cut off (its jobs cancelled).

The first test floods a real `dni serve` the way issue 22 found the stall (20,000
unread replies: another client's stats() took 4.8 s); the others run the server in this
process on inproc://, where libzmq's queue towards a client holds only send_hwm +
the client's RCVHWM messages, so the backlog's rules can be checked exactly.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zmq
from test_server_util import serve

from dni.errors import Cancelled
from dni.server import Limits, Server
from dni_client import ZmqClient
from dni_client import protocol as P

FLOOD = 20_000


def dealer(context: zmq.Context, endpoint: str) -> zmq.Socket:
    """A DEALER that buffers as little as possible of what it does not read."""
    sock = context.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RCVHWM, 1)
    sock.setsockopt(zmq.RCVBUF, 4096)
    sock.connect(endpoint)
    return sock


def request(op: str, request_id: str, **fields: Any) -> list[bytes]:
    return [b"", P.encode_header({"v": 1, "op": op, "id": request_id, **fields})]


def wait_until(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("the condition did not come true in time")
        time.sleep(0.01)


# -- a real server, a real flood ---------------------------------------------------------

def test_one_client_that_stops_reading_does_not_stall_the_others(tiny_family_dir: Path
                                                                 ) -> None:
    with serve(tiny_family_dir) as server:
        flood = dealer(zmq.Context.instance(), server.endpoint)
        with ZmqClient(server.endpoint, timeout=30.0) as client:
            client.hello()
            # Each gets a bad_layout error of about 700 bytes, which it never reads.
            bad = {"family": "identity", "width": 1, "height": 1, "layout": "nope",
                   "strength": 0.5}
            for index in range(FLOOD):
                flood.send_multipart(request("run", f"f{index}", **bad))
            latencies, results = [], []
            data = bytes(range(48))
            deadline = time.monotonic() + 60
            while True:
                started = time.perf_counter()
                counters = client.stats()["counters"]
                latencies.append(time.perf_counter() - started)
                if len(latencies) % 50 == 0:  # real jobs meanwhile: each must end once
                    results.append(client.run("identity", 4, 4, "rgb8", data, strength=0.5))
                if counters["requests"] >= FLOOD or time.monotonic() > deadline:
                    break
            final = client.stats()["counters"]
        flood.close()
    latencies.sort()
    p95 = latencies[int(0.95 * (len(latencies) - 1))]
    print(f"\nstats() during a flood of {FLOOD} unread replies: {len(latencies)} calls, "
          f"median {statistics.median(latencies) * 1e3:.2f} ms, p95 {p95 * 1e3:.1f} ms, "
          f"max {latencies[-1] * 1e3:.0f} ms; the flooder was cut off "
          f"{final.get('slow_clients')} time(s)")
    assert counters["requests"] >= FLOOD, "the server did not get through the flood"
    # Before: every stats() behind the full queue waited 5-10 s (median 5.0 s).
    assert p95 < 0.5 and latencies[-1] < 4.0
    assert results and all(r.pixels == data for r in results)
    assert final["slow_clients"] >= 1


# -- the rules, in this process ----------------------------------------------------------

class GatedEngine:
    """Runs ten fake tiles; tiles after the first wait for `gate`."""

    device = "cpu"

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.gate.set()
        self.started = threading.Event()

    def families(self) -> list[dict[str, Any]]:
        return [{"name": "fake", "scale": 1}]

    def run(self, family: str, image: np.ndarray, *, progress: Callable[[float, str], None],
            cancelled: Callable[[], bool], **_: Any) -> np.ndarray:
        for index in range(10):
            if cancelled():
                raise Cancelled("cancelled")
            self.started.set()
            if index:
                self.gate.wait(10)
            progress((index + 1) / 10, "inference")
        return image


@pytest.fixture
def engine() -> GatedEngine:
    return GatedEngine()


@pytest.fixture
def context() -> Iterator[zmq.Context]:
    ctx = zmq.Context()
    yield ctx
    ctx.destroy(linger=0)


def start(context: zmq.Context, engine: GatedEngine, **limits: Any) -> tuple[Server,
                                                                           threading.Thread]:
    # inproc: no TCP buffers, so libzmq holds send_hwm + the client's RCVHWM messages.
    srv = Server(f"inproc://dni-{id(engine)}", devices=["cpu"], context=context,
                 engine_factory=lambda _: engine, limits=Limits(send_hwm=1, **limits))
    ready = threading.Event()
    thread = threading.Thread(target=srv.serve, args=(lambda _: ready.set(),), daemon=True)
    thread.start()
    assert ready.wait(10)
    return srv, thread


@pytest.fixture
def stop_after() -> Iterator[list[tuple[Server, threading.Thread, GatedEngine]]]:
    running: list[tuple[Server, threading.Thread, GatedEngine]] = []
    yield running
    for srv, thread, engine in running:
        engine.gate.set()
        srv.stop()
        thread.join(10)
        assert not thread.is_alive()


def test_replies_wait_for_a_late_reader_and_arrive_in_order(
        context: zmq.Context, engine: GatedEngine, stop_after: list) -> None:
    srv, thread = start(context, engine)
    stop_after.append((srv, thread, engine))
    late = dealer(context, srv.endpoints[0])
    for index in range(30):
        late.send_multipart(request("ping", f"p{index}"))
    # All 30 are answered at once although only two fit libzmq's queue: the rest wait.
    wait_until(lambda: srv.counters.snapshot()["requests"] >= 30, timeout=10)
    ids = []
    while len(ids) < 30:
        assert late.poll(5000)
        ids.append(P.decode_header(late.recv_multipart()[1])["id"])
    assert ids == [f"p{index}" for index in range(30)]
    assert not late.poll(100)  # each exactly once
    assert srv.counters.snapshot()["slow_clients"] == 0
    late.close()


def submit(sock: zmq.Socket, job_id: str) -> None:
    sock.send_multipart([*request("run", job_id, family="fake", width=1, height=1,
                                  layout="grey8", strength=0.5), b"\0"])


def test_a_client_that_never_reads_is_cut_off_and_its_jobs_cancelled(
        context: zmq.Context, engine: GatedEngine, stop_after: list) -> None:
    srv, thread = start(context, engine, max_backlog=20)
    stop_after.append((srv, thread, engine))
    engine.gate.clear()  # its first job stays running, two more stay queued
    rude = dealer(context, srv.endpoints[0])
    for job_id in ("running", "queued1", "queued2"):
        submit(rude, job_id)
    assert engine.started.wait(10)
    for index in range(60):
        rude.send_multipart(request("ping", f"p{index}"))
    wait_until(lambda: srv.counters.snapshot()["slow_clients"] >= 1)
    jobs = srv.jobs.active()
    assert all(job.cancel.is_set() and job.vanished for job in jobs)  # the running one
    assert srv.counters.snapshot()["slow_dropped"] == 3
    # The others are served as ever.
    with ZmqClient(srv.endpoints[0], timeout=10.0, context=context) as client:
        assert client.stats()["queued"] == 0
    rude.close()


def test_a_client_unwritable_for_backlog_seconds_is_cut_off(
        context: zmq.Context, engine: GatedEngine, stop_after: list) -> None:
    srv, thread = start(context, engine, backlog_seconds=0.3)
    stop_after.append((srv, thread, engine))
    asleep = dealer(context, srv.endpoints[0])
    for index in range(5):  # two fit libzmq's queue, three wait in the backlog
        asleep.send_multipart(request("ping", f"p{index}"))
    wait_until(lambda: srv.counters.snapshot()["slow_clients"] == 1, timeout=10)
    # What libzmq had queued still arrives; the three discarded replies never do.
    got = []
    while asleep.poll(300):
        got.append(P.decode_header(asleep.recv_multipart()[1])["id"])
    assert got == ["p0", "p1"]
    asleep.close()


def test_progress_to_a_slow_reader_is_dropped_but_its_result_arrives(
        context: zmq.Context, engine: GatedEngine, stop_after: list) -> None:
    srv, thread = start(context, engine)
    stop_after.append((srv, thread, engine))
    slow = dealer(context, srv.endpoints[0])
    submit(slow, "job")  # queued, started, 10 x inference, result: 13 messages
    wait_until(lambda: srv.counters.snapshot()["completed"] == 1, timeout=10)
    kinds: list[str] = []
    while not kinds or kinds[-1] != "result":  # it waits in the backlog until read
        assert slow.poll(5000)
        kinds.append(P.decode_header(slow.recv_multipart()[1])["kind"])
    assert not slow.poll(300) and not srv.jobs.active()
    assert len(kinds) < 13  # progress that did not fit was dropped, not queued
    slow.close()
