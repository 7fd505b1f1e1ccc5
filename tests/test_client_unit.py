"""The client against a scripted ROUTER in this process: no server, no torch.

The ROUTER plays the server's part message by message, so timeouts, reconnects, pings and
cancel re-sends can be checked exactly.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import zmq
import zmq.auth

import dni_client
from dni_client import ClientError, ConnectionLost, ServerError, ZmqClient
from dni_client import protocol as P

CLIENT_DIR = Path(dni_client.__file__).parent
MY_MODULES = tuple(sorted(p.name for p in CLIENT_DIR.glob("*.py")))


class FakeServer:
    def __init__(self) -> None:
        self.ctx = zmq.Context.instance()
        self.sock = self.ctx.socket(zmq.ROUTER)
        self.sock.setsockopt(zmq.LINGER, 0)
        port = self.sock.bind_to_random_port("tcp://127.0.0.1")
        self.endpoint = f"tcp://127.0.0.1:{port}"

    def receive(self, timeout: float = 5.0) -> tuple[bytes, dict[str, Any], list[bytes]]:
        assert self.sock.poll(int(timeout * 1000)), "the client sent nothing"
        frames = self.sock.recv_multipart()
        identity, delimiter, header, *data = frames
        assert delimiter == b""
        return identity, P.decode_header(header), data

    def nothing_waiting(self, timeout: float = 0.2) -> bool:
        return not self.sock.poll(int(timeout * 1000))

    def reply(self, identity: bytes, header: dict[str, Any], *data: bytes) -> None:
        self.sock.send_multipart([identity, *P.encode(header, data)])

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def fake() -> Iterator[FakeServer]:
    server = FakeServer()
    yield server
    server.close()


@pytest.fixture
def client(fake: FakeServer) -> Iterator[ZmqClient]:
    with ZmqClient(fake.endpoint, timeout=1.0) as c:
        yield c


def poll_until(client: ZmqClient, count: int, timeout: float = 5.0) -> list[dni_client.Event]:
    events: list[dni_client.Event] = []
    deadline = time.monotonic() + timeout
    while len(events) < count and time.monotonic() < deadline:
        events += client.poll(50)
    return events


def test_submit_sends_header_and_raw_frames(fake: FakeServer, client: ZmqClient) -> None:
    job = client.submit("tiny", 3, 2, "krita:U8", bytes(24), strength=0.25, mask=bytes(6),
                        preview=True, tile=64)
    _, header, data = fake.receive()
    assert header == {"v": 1, "op": "run", "id": job, "family": "tiny", "width": 3,
                      "height": 2, "layout": "bgra8", "mode": "network", "preview": True,
                      "frames": ["pixels", "mask"], "strength": 0.25, "tile": 64}
    assert data == [bytes(24), bytes(6)]


def test_poll_is_non_blocking_and_returns_events_in_order(fake: FakeServer,
                                                          client: ZmqClient) -> None:
    started = time.perf_counter()
    assert client.poll() == []
    assert time.perf_counter() - started < 0.05
    job = client.submit("tiny", 2, 1, "rgb8", bytes(6), weights=[1, 0])
    identity, _, _ = fake.receive()
    for fraction in (0.0, 0.5, 1.0):
        fake.reply(identity, {"kind": "progress", "id": job, "fraction": fraction,
                              "stage": "inference"})
    fake.reply(identity, {"kind": "result", "id": job, "width": 2, "height": 1,
                          "layout": "rgb8"}, b"abcdef")
    events = poll_until(client, 4)
    assert [e.kind for e in events] == ["progress"] * 3 + ["result"]
    assert [e.fraction for e in events[:3]] == [0.0, 0.5, 1.0]
    assert events[3].pixels == b"abcdef" and events[3].job_id == job
    assert client.pending() == []


def test_blocking_run_reports_progress_and_errors(fake: FakeServer, client: ZmqClient) -> None:
    job = client.submit("x", 1, 1, "grey8", b"\0", strength=0)  # an older job, left pending
    identity, _, _ = fake.receive()
    seen: list[tuple[float, str]] = []

    def serve_one() -> None:
        ident, header, _ = fake.receive()
        fake.reply(ident, {"kind": "progress", "id": job, "fraction": 0.5, "stage": "other"})
        fake.reply(ident, {"kind": "progress", "id": header["id"], "fraction": 0.5,
                           "stage": "inference"})
        fake.reply(ident, {"kind": "error", "id": header["id"], "code": "bad_weights",
                           "message": "no"})

    thread = threading.Thread(target=serve_one)
    thread.start()
    with pytest.raises(ServerError) as info:
        client.run("tiny", 1, 1, "grey8", b"\0", strength=2.0,
                   on_progress=lambda f, s: seen.append((f, s)))
    thread.join()
    assert info.value.code == "bad_weights" and info.value.message == "no"
    assert seen == [(0.5, "inference")]
    # The other job's event was kept for poll().
    assert [(e.job_id, e.stage) for e in client.poll()] == [(job, "other")]
    del identity


def test_request_timeout_raises_and_reconnects(fake: FakeServer, client: ZmqClient) -> None:
    started = time.monotonic()
    with pytest.raises(ConnectionLost):
        client.hello()
    assert 0.9 < time.monotonic() - started < 3.0
    first, header, _ = fake.receive()
    assert header["op"] == "hello"
    # The next request goes out on a fresh socket (a new routing id) and gets its answer.
    def answer() -> None:
        ident, h, _ = fake.receive()
        assert ident != first
        fake.reply(ident, {"kind": "hello", "id": h["id"], "protocol": P.PROTOCOL_VERSION})

    thread = threading.Thread(target=answer)
    thread.start()
    assert client.hello()["protocol"] == P.PROTOCOL_VERSION
    thread.join()


def test_silent_server_pings_then_loses_pending_jobs(fake: FakeServer, client: ZmqClient) -> None:
    job = client.submit("tiny", 1, 1, "grey8", b"\0", strength=0.5)
    fake.receive()
    events: list[dni_client.Event] = []
    deadline = time.monotonic() + 5
    while not events and time.monotonic() < deadline:
        events = client.poll(50)
    _, ping, _ = fake.receive(timeout=0.1)  # sent after half the timeout
    assert ping["op"] == "ping"
    assert [(e.kind, e.job_id, e.header["code"]) for e in events] == [
        ("error", job, "connection_lost")]
    assert client.pending() == []


# -- liveness: each job needs its own signs of life (docs/protocol.md, "Liveness") ---------

def progress(job: str, instance: str = "A", **extra: Any) -> dict[str, Any]:
    return {"kind": "progress", "id": job, "fraction": 0.0, "stage": "queued",
            "instance": instance, **extra}


def answer_pings(fake: FakeServer, client: ZmqClient, seconds: float, pong: dict[str, Any],
                 state: str | None = None) -> list[dni_client.Event]:
    """Poll for `seconds` (or until a job ends), answering each ping with `pong`, in which
    every job asked about has `state` (None: not here). The events that ended jobs."""
    events: list[dni_client.Event] = []
    deadline = time.monotonic() + seconds
    while not events and time.monotonic() < deadline:
        events = [e for e in client.poll(20) if e.kind != "progress"]
        while fake.sock.poll(0):
            ident, header, _ = fake.receive()
            if header["op"] == "ping":
                jobs = {job: state for job in header.get("jobs", [])}
                fake.reply(ident, {"kind": "pong", "id": header["id"], "jobs": jobs, **pong})
    return events


def test_signs_of_life_keep_a_long_job_alive_and_are_not_events(fake: FakeServer,
                                                                 client: ZmqClient) -> None:
    client.timeout = 0.4
    job = client.submit("tiny", 1, 1, "grey8", b"\0", strength=0.5)
    identity, _, _ = fake.receive()
    deadline = time.monotonic() + 1.3  # three times the timeout
    while time.monotonic() < deadline:
        fake.reply(identity, progress(job, alive=True))
        assert client.poll(50) == []     # a repeat of the last progress is no news
    assert client.pending() == [job]


def test_a_pong_that_names_the_job_keeps_it_alive(fake: FakeServer, client: ZmqClient) -> None:
    client.timeout = 0.4
    job = client.submit("tiny", 1, 1, "grey8", b"\0", strength=0.5)
    fake.receive()
    pong = {"instance": "A", "direct": True}
    assert answer_pings(fake, client, 1.3, pong, state="running") == []
    assert client.pending() == [job]


def test_pongs_alone_do_not_keep_a_lost_job_alive(fake: FakeServer, client: ZmqClient) -> None:
    """Behind a broker another worker answers every ping, knowing nothing of the job: its
    own worker died. The job ends within the timeout of its last sign all the same."""
    job = client.submit("tiny", 1, 1, "grey8", b"\0", strength=0.5)
    identity, _, _ = fake.receive()
    fake.reply(identity, progress(job, instance="A"))
    events = answer_pings(fake, client, 5.0, {"instance": "B", "direct": False})
    assert [(e.kind, e.job_id, e.code) for e in events] == [("error", job, "connection_lost")]
    assert "no word about this job" in events[0].message
    assert client.pending() == []


def test_news_of_other_jobs_does_not_keep_a_job_alive(fake: FakeServer,
                                                      client: ZmqClient) -> None:
    lost = client.submit("tiny", 1, 1, "grey8", b"\0", strength=0.5)
    busy = client.submit("tiny", 1, 1, "grey8", b"\0", strength=0.5)
    identity, _, _ = fake.receive()
    events: list[dni_client.Event] = []
    deadline = time.monotonic() + 5
    while not any(e.kind == "error" for e in events) and time.monotonic() < deadline:
        fake.reply(identity, progress(busy, fraction=0.5, stage="inference"))
        events += client.poll(50)
    assert [(e.job_id, e.code) for e in events if e.kind == "error"] == [
        (lost, "connection_lost")]
    assert client.pending() == [busy]  # the connection is fine: no reconnect


def test_a_restarted_server_ends_the_job_at_once(fake: FakeServer, client: ZmqClient) -> None:
    """Directly connected, the server that answers is the only one: if it has never heard
    of the job (a new instance: it was restarted), waiting longer cannot help."""
    client.timeout = 30.0
    job = client.submit("tiny", 1, 1, "grey8", b"\0", strength=0.5)
    identity, _, _ = fake.receive()
    fake.reply(identity, progress(job, instance="A"))
    started = time.monotonic()
    events = answer_pings(fake, client, 10.0, {"instance": "B", "direct": True})
    assert [(e.job_id, e.code) for e in events] == [(job, "connection_lost")]
    assert "no longer has this job (it was restarted)" in events[0].message
    assert time.monotonic() - started < 3 * P.ALIVE_INTERVAL_S + 2  # not the 30 s


def test_behind_a_broker_only_the_jobs_own_worker_can_disown_it(fake: FakeServer,
                                                                client: ZmqClient) -> None:
    client.timeout = 2.0
    job = client.submit("tiny", 1, 1, "grey8", b"\0", strength=0.5)
    identity, _, _ = fake.receive()
    fake.reply(identity, progress(job, instance="A"))
    events = answer_pings(fake, client, 10.0, {"instance": "A", "direct": False})
    assert [(e.job_id, e.code) for e in events] == [(job, "connection_lost")]
    assert "no longer has this job" in events[0].message
    assert "restarted" not in events[0].message


def test_a_server_without_liveness_keeps_the_old_rule(fake: FakeServer,
                                                      client: ZmqClient) -> None:
    """An older `dni serve` sends no signs of life and its pong lists no jobs: there a
    pong still keeps the jobs alive, as it did."""
    client.timeout = 0.4
    job = client.submit("tiny", 1, 1, "grey8", b"\0", strength=0.5)
    fake.receive()
    deadline = time.monotonic() + 1.3
    while time.monotonic() < deadline:
        assert client.poll(50) == []
        if fake.sock.poll(0):
            ident, header, _ = fake.receive()
            assert header["op"] == "ping" and header["jobs"] == [job]
            fake.reply(ident, {"kind": "pong", "id": header["id"]})
    assert client.pending() == [job]


def test_a_duplicate_id_is_refused_and_ends_nothing(fake: FakeServer, client: ZmqClient) -> None:
    job = client.submit("tiny", 1, 1, "grey8", b"\0", strength=0.5, job_id="mine")
    identity, _, _ = fake.receive()
    with pytest.raises(ClientError, match="pending"):
        client.submit("tiny", 1, 1, "grey8", b"\0", strength=0.5, job_id="mine")
    with pytest.raises(ClientError, match="valid"):
        client.submit("tiny", 1, 1, "grey8", b"\0", strength=0.5, job_id="bad\n")
    assert fake.nothing_waiting()  # neither went out
    # A server's refusal of a second run with this id is not the end of the first.
    fake.reply(identity, {"kind": "error", "id": job, "code": "duplicate_id", "message": "x"})
    fake.reply(identity, {"kind": "result", "id": job, "width": 1, "height": 1,
                          "layout": "grey8"}, b"\1")
    events = poll_until(client, 1)
    assert [(e.kind, e.pixels) for e in events] == [("result", b"\1")]


def test_ipv6_loopback(client: ZmqClient) -> None:
    server = zmq.Context.instance().socket(zmq.ROUTER)
    server.setsockopt(zmq.LINGER, 0)
    server.setsockopt(zmq.IPV6, 1)
    try:
        port = server.bind_to_random_port("tcp://[::1]")
    except zmq.ZMQError:
        server.close()
        pytest.skip("this machine has no IPv6 loopback")
    try:
        with ZmqClient(f"tcp://[::1]:{port}", timeout=5.0) as c:
            job = c.submit("tiny", 1, 1, "grey8", b"\0", strength=0.5)
            assert server.poll(5000), "nothing arrived over ::1"
            assert P.decode_header(server.recv_multipart()[2])["id"] == job
    finally:
        server.close()


def test_cancel_is_resent_until_the_right_worker_has_it(fake: FakeServer,
                                                        client: ZmqClient) -> None:
    job = client.submit("tiny", 1, 1, "grey8", b"\0", strength=0.5)
    identity, _, _ = fake.receive()
    client.cancel(job)
    _, first, _ = fake.receive()
    assert first == {"v": 1, "op": "cancel", "id": job}
    fake.reply(identity, {"kind": "cancel_ack", "id": job, "found": False})  # other worker
    client.poll(100)
    _, second, _ = fake.receive()
    assert second["op"] == "cancel"
    fake.reply(identity, {"kind": "cancel_ack", "id": job, "found": True})
    fake.reply(identity, {"kind": "error", "id": job, "code": "cancelled", "message": ""})
    events = poll_until(client, 1)
    assert events[0].header["code"] == "cancelled"
    assert fake.nothing_waiting()


def test_foreign_messages_are_ignored(fake: FakeServer, client: ZmqClient) -> None:
    job = client.submit("tiny", 1, 1, "grey8", b"\0", strength=0.5)
    identity, _, _ = fake.receive()
    fake.sock.send_multipart([identity, b"no delimiter"])
    fake.sock.send_multipart([identity, b"", b"not json"])
    fake.sock.send_multipart([identity, b"x", b"", P.encode_header({"kind": "result"})])
    fake.reply(identity, {"kind": "result", "id": "someone-else", "width": 1, "height": 1})
    fake.reply(identity, {"kind": "error", "id": job, "code": "cancelled", "message": ""})
    events = poll_until(client, 1)
    assert [(e.kind, e.job_id) for e in events] == [("error", job)]


def test_submit_checks_byte_counts(client: ZmqClient) -> None:
    with pytest.raises(ClientError, match="needs 24"):
        client.submit("tiny", 3, 2, "rgba8", bytes(23), strength=0.5)
    with pytest.raises(ClientError, match="mask"):
        client.submit("tiny", 3, 2, "rgba8", bytes(24), strength=0.5, mask=bytes(5))
    with pytest.raises(P.ProtocolError):
        client.submit("tiny", 3, 2, "cmyk", bytes(24), strength=0.5)
    assert client.pending() == []


def test_closed_client_refuses_work(fake: FakeServer) -> None:
    c = ZmqClient(fake.endpoint, timeout=1.0)
    c.close()
    with pytest.raises(ClientError):
        c.submit("tiny", 1, 1, "grey8", b"\0", strength=0.5)


def test_server_key_forms(tmp_path: Path) -> None:
    public_file, _ = zmq.auth.create_certificates(tmp_path, "server")
    public, _ = zmq.auth.load_certificate(public_file)
    for form in (public, public.decode(), str(public_file), Path(public_file)):
        with ZmqClient("tcp://127.0.0.1:9", server_public_key=form, timeout=0.5) as c:
            assert c._server_key == public
    with pytest.raises(ClientError):
        ZmqClient("tcp://127.0.0.1:9", client_keys_dir=str(tmp_path))


# -- what Krita's and GIMP's Python can run -------------------------------------------------

@pytest.mark.parametrize("name", MY_MODULES)
def test_client_modules_parse_as_python_3_8(name: str) -> None:
    source = (CLIENT_DIR / name).read_text(encoding="utf-8")
    tree = ast.parse(source, feature_version=(3, 8))
    first = tree.body[1] if isinstance(tree.body[0], ast.Expr) else tree.body[0]
    assert isinstance(first, ast.ImportFrom) and first.module == "__future__"
    # 3.9+ APIs that parse fine on 3.8 but fail when called there.
    for banned in ("removeprefix", "removesuffix", "zip(strict", "functools.cache(",
                   "math.lcm"):
        assert banned not in source, banned


def test_client_needs_neither_numpy_nor_torch() -> None:
    code = ("import sys, dni_client.client, dni_client.protocol; "
            "bad = [m for m in sys.modules if m.split('.')[0] in "
            "('numpy', 'torch', 'PyQt5', 'dni')]; print(bad)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, timeout=60)
    assert done.stdout.strip() == "[]"
