"""The server's side of liveness and of who-is-who, in this process with an engine held
at a gate: signs of life for quiet jobs, pongs that say which jobs the server holds, a
connection the server drops, per-connection caps against made-up routing frames, duplicate
job ids, IPv6 loopback (docs/protocol.md)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
import zmq
from test_server_util import serve_in_thread, serving

from dni.errors import Cancelled
from dni.server import Limits, Server
from dni.server.broker import Broker
from dni_client import ZmqClient
from dni_client import protocol as P


class GateEngine:
    """Each job reports one tile, then waits at the gate (checking for a cancel)."""

    device = "cpu"

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.running = threading.Event()

    def families(self) -> list[dict[str, Any]]:
        return [{"name": "fake", "scale": 1}]

    def run(self, family: str, image: np.ndarray, *, progress: Callable[[float, str], None],
            cancelled: Callable[[], bool], **_: Any) -> np.ndarray:
        progress(0.5, "inference")
        self.running.set()
        while not self.gate.wait(0.01):
            if cancelled():
                raise Cancelled("cancelled")
        progress(1.0, "inference")
        return np.ascontiguousarray(image)


@pytest.fixture
def engine() -> GateEngine:
    return GateEngine()


@pytest.fixture
def server(engine: GateEngine) -> Iterator[Server]:
    srv = Server("tcp://127.0.0.1:0", devices=["cpu"], engine_factory=lambda _: engine,
                 limits=Limits(max_pixels=64 * 64, max_queue=10, max_queue_per_client=3))
    with serving(srv, engine.gate) as thread:
        yield srv
    assert not thread.is_alive()


@pytest.fixture
def raw(server: Server) -> Iterator[zmq.Socket]:
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(server.endpoints[0])
    yield sock
    sock.close()


def send(sock: zmq.Socket, header: dict[str, Any], *data: bytes,
         envelope: tuple[bytes, ...] = ()) -> None:
    sock.send_multipart([*envelope, *P.encode({"v": 1, **header}, data)])


def receive(sock: zmq.Socket, timeout: float = 10.0) -> dict[str, Any]:
    assert sock.poll(int(timeout * 1000)), "no reply"
    frames = sock.recv_multipart()
    return P.decode_header(frames[frames.index(b"") + 1])


def until(sock: zmq.Socket, match: Callable[[dict[str, Any]], bool],
          timeout: float = 10.0) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The first reply that matches, and the ones before it."""
    before: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while True:
        reply = receive(sock, max(0.01, deadline - time.monotonic()))
        if match(reply):
            return reply, before
        before.append(reply)


def run_header(job_id: str, size: int = 8) -> dict[str, Any]:
    return {"op": "run", "id": job_id, "family": "fake", "width": size, "height": size,
            "layout": "grey8", "strength": 0.5}


def test_hello_and_pong_name_the_instance_and_the_jobs_held(
        raw: zmq.Socket, server: Server, engine: GateEngine) -> None:
    send(raw, {"op": "hello", "id": "h"})
    hello = receive(raw)
    assert hello["instance"] == server.instance and len(server.instance) == 16
    assert hello["direct"] is True
    send(raw, run_header("j1"), bytes(64))
    queued = receive(raw)
    assert (queued["stage"], queued["instance"]) == ("queued", server.instance)
    assert engine.running.wait(10)
    send(raw, {"op": "ping", "id": "p", "jobs": ["j1", "other"]})
    pong, _ = until(raw, lambda r: r["kind"] == "pong")
    assert pong["jobs"] == {"j1": "running", "other": None}
    assert (pong["instance"], pong["direct"]) == (server.instance, True)
    send(raw, {"op": "ping", "id": "p2"})  # as older clients ping: still answered
    assert until(raw, lambda r: r["kind"] == "pong")[0]["jobs"] == {}


def test_each_server_start_has_its_own_instance(server: Server) -> None:
    other = Server("tcp://127.0.0.1:0", devices=["cpu"], engine_factory=lambda _: GateEngine())
    thread = serve_in_thread(other)
    other.stop()
    thread.join(10)
    assert other.instance != server.instance


def test_a_quiet_job_gets_its_latest_progress_again(raw: zmq.Socket,
                                                    engine: GateEngine) -> None:
    send(raw, run_header("quiet"), bytes(64))
    last, _ = until(raw, lambda r: r.get("fraction") == 0.5)
    heard = time.monotonic()
    signs = []
    for _ in range(2):
        sign, others = until(raw, lambda r: r.get("alive") is True,
                             timeout=P.ALIVE_INTERVAL_S + 5)
        signs.append((time.monotonic(), sign))
        assert others == []
    for _, sign in signs:
        assert {k: sign[k] for k in ("kind", "id", "fraction", "stage", "instance")} == {
            k: last[k] for k in ("kind", "id", "fraction", "stage", "instance")}
    # No more often than the interval (the server waits that long after its last word).
    assert signs[0][0] - heard > P.ALIVE_INTERVAL_S * 0.9
    assert signs[1][0] - signs[0][0] > P.ALIVE_INTERVAL_S * 0.9
    engine.gate.set()
    result, _ = until(raw, lambda r: r["kind"] == "result")
    assert result["id"] == "quiet"


def test_jobs_on_a_connection_the_server_dropped_end_at_once(
        server: Server, engine: GateEngine) -> None:
    """A frame over the server's size limit makes libzmq drop the connection; the client's
    socket reconnects under a new routing id. Its jobs are gone on the server (the signs of
    life find no route: they are dropped), and the server says so when asked: the client
    ends them long before its timeout."""
    with ZmqClient(server.endpoints[0], timeout=60.0) as client:
        running = client.submit("fake", 8, 8, "grey8", bytes(64), strength=0.5)
        assert engine.running.wait(10)
        side = 100  # 100 x 100 x 16 bytes: over the 64 x 64 server's frame limit
        oversized = client.submit("fake", side, side, "rgba32f", bytes(side * side * 16),
                                  strength=0.5)
        started = time.monotonic()
        ends = {}
        while len(ends) < 2 and time.monotonic() - started < 30:
            for event in client.poll(100):
                if event.kind != "progress":
                    ends[event.job_id] = event
        assert {job: (e.kind, e.code) for job, e in ends.items()} == {
            running: ("error", "connection_lost"), oversized: ("error", "connection_lost")}
        assert time.monotonic() - started < 3 * P.ALIVE_INTERVAL_S + 10  # not 60 s
        assert all("no longer has this job" in e.message for e in ends.values())
        deadline = time.monotonic() + 10
        while (stats := client.stats())["running"]:  # the server's own view, once settled
            assert time.monotonic() < deadline, stats
            time.sleep(0.05)
        assert stats["counters"]["vanished_dropped"] == 1  # its sign of life found no route


def test_made_up_routing_frames_do_not_buy_more_of_the_queue(
        raw: zmq.Socket, engine: GateEngine) -> None:
    send(raw, run_header("blocker"), bytes(64))
    assert engine.running.wait(10)
    codes = {}
    for index in range(6):  # each with its own claimed "client" routing frame
        send(raw, run_header(f"j{index}"), bytes(64), envelope=(b"fake%d" % index,))
        reply, _ = until(raw, lambda r, i=index: r.get("id") == f"j{i}")
        codes[reply["id"]] = reply.get("code", reply.get("stage"))
    assert list(codes.values()) == ["queued"] * 3 + ["busy"] * 3  # the cap: 3 per client


def test_a_duplicate_id_gets_one_refusal_and_the_job_goes_on(
        raw: zmq.Socket, engine: GateEngine) -> None:
    send(raw, run_header("dup"), bytes(64))
    assert engine.running.wait(10)
    send(raw, run_header("dup"), bytes(64))
    refusal, _ = until(raw, lambda r: r["kind"] == "error")
    assert refusal["code"] == "duplicate_id" and refusal["id"] == "dup"
    engine.gate.set()
    end, _ = until(raw, lambda r: r["kind"] in P.TERMINAL_KINDS)
    assert (end["kind"], end["id"]) == ("result", "dup")
    send(raw, {"op": "stats", "id": "s"})
    stats, between = until(raw, lambda r: r["kind"] == "stats")
    assert [r for r in between if r["kind"] in P.TERMINAL_KINDS] == []  # nothing more


def ipv6_loopback() -> bool:
    sock = zmq.Context.instance().socket(zmq.ROUTER)
    sock.setsockopt(zmq.IPV6, 1)
    try:
        sock.bind("tcp://[::1]:*")
        return True
    except zmq.ZMQError:
        return False
    finally:
        sock.close(linger=0)


@pytest.mark.skipif(not ipv6_loopback(), reason="this machine has no IPv6 loopback")
def test_ipv6_loopback_server_and_broker(engine: GateEngine) -> None:
    """`tcp://[::1]` is documented as a loopback endpoint: the server, the broker and the
    client all have to enable IPv6 on their sockets for it."""
    engine.gate.set()
    broker = Broker("tcp://[::1]:0", "tcp://[::1]:0", context=zmq.Context())
    proxy = threading.Thread(target=broker.serve, daemon=True)
    proxy.start()
    frontend, backend = broker.endpoints
    assert frontend.startswith("tcp://[::1]:")
    direct = Server("tcp://[::1]:0", connect=[backend], devices=["cpu"],
                    engine_factory=lambda _: engine)
    thread = serve_in_thread(direct)
    try:
        data = bytes(range(64))
        for endpoint in (direct.endpoints[0], frontend):
            with ZmqClient(endpoint, timeout=20.0) as client:
                assert client.hello()["direct"] is (endpoint != frontend)
                assert client.run("fake", 8, 8, "grey8", data, strength=0.5).pixels == data
    finally:
        direct.stop()
        thread.join(10)
        broker._context.term()  # ends the proxy
        proxy.join(10)
