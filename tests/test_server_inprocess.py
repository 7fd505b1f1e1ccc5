"""The server in this process with scripted engines: failure paths a real network rarely
takes (out of memory at the smallest tile, a crash inside the engine, shutdown with work
queued) and the exact cancel-between-tiles rule."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
import torch
from test_server_util import serving

from dni.errors import Cancelled, FamilyError
from dni.server import Limits, Server
from dni_client import Event, ServerError, ZmqClient


class ScriptedEngine:
    """Runs `tiles` fake tiles; `behaviour(family)` may raise instead."""

    device = "cpu"

    def __init__(self) -> None:
        self.gate = threading.Event()   # tiles after the first wait for it
        self.gate.set()
        self.tile_started = threading.Event()

    def families(self) -> list[dict[str, Any]]:
        return [{"name": "fake", "scale": 1}]

    def run(self, family: str, image: np.ndarray, *, progress: Callable[[float, str], None],
            cancelled: Callable[[], bool], **_: Any) -> np.ndarray:
        if family == "oom":
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
        if family == "crash":
            raise ZeroDivisionError("division by zero")
        if family == "missing":
            raise FamilyError("unknown family 'missing'")
        for index in range(10):
            if cancelled():
                raise Cancelled("cancelled")
            self.tile_started.set()
            if index > 0:
                self.gate.wait(10)
            progress((index + 1) / 10, "inference")
        return np.ascontiguousarray(255 - image)


@pytest.fixture
def engine() -> ScriptedEngine:
    return ScriptedEngine()


@pytest.fixture
def server(engine: ScriptedEngine) -> Iterator[Server]:
    srv = Server("tcp://127.0.0.1:0", devices=["cpu"], engine_factory=lambda _: engine,
                 limits=Limits(max_queue=4, max_queue_per_client=3))
    with serving(srv, engine.gate) as thread:
        yield srv
    assert not thread.is_alive()


@pytest.fixture
def client(server: Server) -> Iterator[ZmqClient]:
    with ZmqClient(server.endpoints[0], timeout=10.0) as c:
        yield c


@pytest.mark.parametrize(("family", "code", "words"), [
    ("oom", "out_of_memory", "smallest tile"),
    ("crash", "internal", "ZeroDivisionError"),
    ("missing", "bad_family", "unknown family"),
])
def test_engine_failures_become_error_replies(client: ZmqClient, family: str, code: str,
                                              words: str) -> None:
    with pytest.raises(ServerError) as info:
        client.run(family, 2, 2, "grey8", b"\1\2\3\4", strength=0.5)
    assert info.value.code == code and words in info.value.message
    # ... and the server goes on serving.
    assert client.run("fake", 2, 2, "grey8", b"\1\2\3\4", strength=0.5).pixels == \
        bytes([254, 253, 252, 251])


def test_cancel_lands_between_tiles(server: Server, client: ZmqClient,
                                    engine: ScriptedEngine) -> None:
    engine.gate.clear()  # hold the engine inside its second tile
    job = client.submit("fake", 2, 2, "grey8", bytes(4), strength=0.5)
    assert engine.tile_started.wait(10)
    client.cancel(job)
    events: list[Event] = []
    while not any(j.cancel.is_set() for j in server.jobs.active()):
        events += client.poll(20)  # until the server has taken the cancel in
    engine.gate.set()  # the tile in flight finishes; no further tile may start
    while not events or events[-1].kind == "progress":
        events += client.poll(100)
    end = events[-1]
    assert end.header["code"] == "cancelled"
    assert end.header["tiles_after_cancel"] == 1
    assert max(e.fraction for e in events if e.kind == "progress") <= 0.2


def test_queue_limits_answer_busy(client: ZmqClient, engine: ScriptedEngine) -> None:
    engine.gate.clear()
    first = client.submit("fake", 1, 1, "grey8", b"\0", strength=0.5)
    assert engine.tile_started.wait(10)
    queued = [client.submit("fake", 1, 1, "grey8", b"\0", strength=0.5) for _ in range(4)]
    events = []
    while not any(e.kind == "error" for e in events):
        events += client.poll(100)
    busy = [e for e in events if e.kind == "error"]
    assert [(e.job_id, e.header["code"]) for e in busy] == [(queued[-1], "busy")]
    engine.gate.set()
    done = {e.job_id for e in busy}
    while len(done) < 5:
        done |= {e.job_id for e in client.poll(100) if e.kind != "progress"}
    assert done == {first, *queued}


def test_stop_tells_queued_jobs(server: Server, client: ZmqClient, engine: ScriptedEngine) -> None:
    engine.gate.clear()
    running = client.submit("fake", 1, 1, "grey8", b"\0", strength=0.5)
    assert engine.tile_started.wait(10)
    waiting = client.submit("fake", 1, 1, "grey8", b"\0", strength=0.5)
    while client.stats()["queued"] != 1:
        pass
    job = next(j for j in server.jobs.active() if j.id == running)
    server.stop()
    assert job.cancel.wait(10)  # stopping cancels the running job ...
    engine.gate.set()  # ... which ends after the tile in flight
    ends = {}
    while len(ends) < 2:
        for e in client.poll(100):
            if e.kind != "progress":
                ends[e.job_id] = e.header["code"]
    assert ends == {waiting: "shutting_down", running: "cancelled"}


def test_one_worker_per_device_shares_the_queue() -> None:
    engines = {"cpu:a": ScriptedEngine(), "cpu:b": ScriptedEngine()}
    for name, engine in engines.items():
        engine.device = name  # type: ignore[misc]
        engine.gate.clear()
    srv = Server("tcp://127.0.0.1:0", devices=list(engines),
                 engine_factory=lambda device: engines[device])
    gates = [engine.gate for engine in engines.values()]
    with serving(srv, *gates), ZmqClient(srv.endpoints[0], timeout=10.0) as client:
        assert client.hello()["devices"] == ["cpu:a", "cpu:b"]
        jobs = [client.submit("fake", 1, 1, "grey8", b"\0", strength=0.5)
                for _ in range(2)]
        # Both engines are inside a job at the same time (each is held at its second
        # tile until both have started): two workers, one queue.
        for engine in engines.values():
            assert engine.tile_started.wait(10)
        for engine in engines.values():
            engine.gate.set()
        devices = {}
        while len(devices) < 2:
            for event in client.poll(100):
                if event.kind == "result":
                    devices[event.job_id] = event.header["device"]
        assert set(devices) == set(jobs) and set(devices.values()) == set(engines)
