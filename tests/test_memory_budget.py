"""Clients cannot push the server past its memory design: the output of a job is limited
like its input, a caller's tile never exceeds what the memory budget allows, and the
bytes held for jobs count until their replies have gone out, not only while they queue.

(Multi-frame floods against a live server, with its memory measured, are in
test_protocol_fuzz.py.)
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from test_server_util import Process, serve, serving

from dni.engine import Engine
from dni.errors import Cancelled
from dni.server import Limits, Server
from dni.tiling import plan_tiles
from dni_client import Event, ServerError, ZmqClient

MAX_PIXELS = 128 * 128


@pytest.fixture(scope="module")
def small_server(tiny_family_dir: Path) -> Iterator[Process]:
    with serve(tiny_family_dir, "--max-pixels", str(MAX_PIXELS)) as process:
        yield process


def test_super_resolution_output_over_max_pixels_is_too_large(small_server: Process) -> None:
    with ZmqClient(small_server.endpoint, timeout=30.0) as client:
        # 128x128 is within the limit as an input, but tiny-x2 makes 256x256 of it.
        with pytest.raises(ServerError) as info:
            client.run("tiny-x2", 128, 128, "grey8", bytes(128 * 128), strength=0.5)
        assert info.value.code == "too_large"
        assert "256x256" in info.value.message and str(MAX_PIXELS) in info.value.message
        assert client.hello()["limits"]["max_output_pixels"] == MAX_PIXELS
        # Its output fitting, the same family runs; a scale-1 family takes the full size.
        assert client.run("tiny-x2", 64, 64, "grey8", bytes(64 * 64),
                          strength=0.5).width == 128
        assert client.run("tiny", 128, 128, "grey8", bytes(128 * 128),
                          strength=0.5).width == 128


def test_a_callers_tile_never_exceeds_the_memory_budget(tiny_family_dir: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    import dni.family

    engine = Engine("cpu", [tiny_family_dir])
    family = engine.family("tiny")
    monkeypatch.setattr(dni.family, "memory_budget", lambda _device: 2**20)  # a small device
    budget_tile = family.auto_tile()
    image = np.zeros((256, 256, 3), dtype=np.uint8)
    expected = len(plan_tiles(256, 256, budget_tile, family.manifest.tile_pad, 1,
                              family.size_multiple))
    assert expected > 1
    computed: list[int] = []  # one entry per tile the network ran on
    real = dni.family.Family._add_tile

    def counting(self: dni.family.Family, *args: object) -> None:
        computed.append(1)
        real(self, *args)

    monkeypatch.setattr(dni.family.Family, "_add_tile", counting)
    for asked, tiles in ((65536, expected), (32, len(plan_tiles(256, 256, 32, 16)))):
        computed.clear()
        engine.run("tiny", image, strength=0.5, tile=asked)
        assert len(computed) == tiles, asked  # 65536 is cut to the budget; 32 is kept


# -- the in-flight budget, with the server in this process -------------------------------

class HeldEngine:
    """Holds every job inside its first tile until `gate` opens."""

    device = "cpu"

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.inside = threading.Event()

    def families(self) -> list[dict[str, Any]]:
        return [{"name": "fake", "scale": 1}]

    def run(self, family: str, image: np.ndarray, *, progress: Callable[[float, str], None],
            cancelled: Callable[[], bool], **_: Any) -> np.ndarray:
        self.inside.set()
        self.gate.wait(10)
        if cancelled():
            raise Cancelled("cancelled")
        progress(1.0, "inference")
        return image


def test_running_jobs_bytes_count_against_the_in_flight_budget() -> None:
    engine = HeldEngine()
    srv = Server("tcp://127.0.0.1:0", devices=["cpu"], engine_factory=lambda _: engine,
                 limits=Limits(max_queue_bytes=100))
    with serving(srv, engine.gate), ZmqClient(srv.endpoints[0], timeout=10.0) as client:
        running = client.submit("fake", 8, 8, "grey8", bytes(64), strength=0.5)
        assert engine.inside.wait(10)  # 64 bytes running: no longer queued, still held
        refused = client.submit("fake", 8, 8, "grey8", bytes(64), strength=0.5)
        ends: dict[str, Event] = {}
        while refused not in ends:
            ends.update({e.job_id: e for e in client.poll(100) if e.kind != "progress"})
        assert (ends[refused].kind, ends[refused].header.get("code")) == ("error", "busy")
        engine.gate.set()
        while running not in ends:
            ends.update({e.job_id: e for e in client.poll(100) if e.kind != "progress"})
        assert ends[running].kind == "result"
        # Its reply has gone out: the bytes are free again.
        assert client.run("fake", 8, 8, "grey8", bytes(64), strength=0.5).pixels == \
            bytes(64)


# -- the per-message budget, piece by piece ----------------------------------------------

def test_a_message_over_the_budget_is_cut_as_it_is_read() -> None:
    import zmq

    from dni.server.parsing import refuse_oversized
    from dni.server.router import Router
    from dni_client import protocol as P

    limits = Limits(max_pixels=4096)  # frames up to 64 KiB, a request up to ~138 KiB
    ctx = zmq.Context()
    router = Router(ctx, limits)
    router.attach("inproc://budget", (), None)
    sock = ctx.socket(zmq.DEALER)
    sock.connect("inproc://budget")
    header = P.encode_header({"v": 1, "op": "run", "id": "big", "family": "tiny",
                              "width": 64, "height": 64, "layout": "rgba32f"})
    try:
        for data, count in (([bytes(64 * 1024)] * 3, 6), ([b"x"] * 40, 43)):
            sock.send_multipart([b"", header, *data])
            assert router.socket.poll(5000)
            incoming = router.receive()
            assert incoming is not None and incoming.cut and incoming.count == count
            assert len(incoming.frames) <= limits.max_message_frames
            assert sum(len(f) for f in incoming.frames) <= limits.max_request_bytes
            error = refuse_oversized(incoming.frames, incoming.count, incoming.nbytes, limits)
            assert (error.code, error.request_id) == ("too_large", "big")
            assert error.client == (bytes(incoming.frames[0]),)
        sock.send_multipart([b"", header, bytes(64 * 64 * 16)])  # the largest valid one
        assert router.socket.poll(5000)
        whole = router.receive()
        assert whole is not None and not whole.cut and len(whole.frames) == 4
    finally:
        sock.close()
        router.close()
        ctx.term()
