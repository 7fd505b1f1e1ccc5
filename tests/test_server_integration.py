"""A real `dni serve` process on loopback, driven by the real client."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zmq
from test_server_util import Process, serve

from dni.engine import Engine
from dni_client import ConnectionLost, Event, ServerError, ZmqClient
from dni_client import protocol as P

BIG = 1024  # a job of many small tiles: long enough to cancel, supersede or abandon
BIG_TILE = 32


@pytest.fixture(scope="module")
def server(tiny_family_dir: Path, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[Process]:
    with serve(tiny_family_dir, "--verbose") as process:
        yield process


@pytest.fixture
def client(server: Process) -> Iterator[ZmqClient]:
    with ZmqClient(server.endpoint, timeout=20.0) as c:
        yield c


def pixels(width: int, height: int, layout: str, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    channels, size, sample, _ = P.LAYOUTS[P.canonical_layout(layout)]
    shape = (height, width, channels)
    if sample == "u8":
        data = rng.integers(0, 256, shape, dtype=np.uint8)
    elif sample == "u16":
        data = rng.integers(0, 65536, shape, dtype=np.uint16).astype("<u2")
    else:
        data = rng.random(shape, dtype=np.float32).astype("<f2" if size == 2 else "<f4")
    return data.tobytes()


class Log:
    """Every event a client received, so that waiting for one job loses no other's."""

    def __init__(self, client: ZmqClient) -> None:
        self.client = client
        self.events: list[Event] = []

    def of(self, job_id: str) -> list[Event]:
        return [e for e in self.events if e.job_id == job_id]

    def wait(self, job_id: str, predicate: Callable[[Event], bool],
             timeout: float = 30.0) -> Event:
        checked = 0
        deadline = time.monotonic() + timeout
        while True:
            for event in self.events[checked:]:
                if event.job_id == job_id and predicate(event):
                    return event
            checked = len(self.events)
            if time.monotonic() > deadline:
                raise AssertionError(f"nothing matched for {job_id} in {timeout} s: "
                                     f"{self.of(job_id)}")
            self.events += self.client.poll(100)


def finished(event: Event) -> bool:
    return event.kind in ("result", "error")


def started(event: Event) -> bool:
    return event.kind == "progress" and event.header.get("stage") == "inference"


# -- hello, families, run ---------------------------------------------------------------

def test_hello(client: ZmqClient) -> None:
    hello = client.hello()
    assert hello["protocol"] == P.PROTOCOL_VERSION
    assert hello["devices"] == ["cpu"]
    names = {f["name"] for f in hello["families"]}
    assert {"tiny", "tiny-x2", "identity"} <= names
    assert hello["limits"]["max_frames"] == P.MAX_FRAMES
    assert "bgra8" in hello["layouts"] and hello["curve"] is False


def test_families_match_the_engine(client: ZmqClient, tiny_family_dir: Path) -> None:
    remote = {f["name"]: f for f in client.families()}
    local = {f["name"]: f for f in Engine("cpu", [tiny_family_dir]).families()}
    assert remote["tiny"] == local["tiny"]
    assert remote["tiny-x2"]["scale"] == 2
    assert remote["tiny"]["presets"] == [{"name": "Half", "strength": 0.5}]


@pytest.mark.parametrize("layout", ["bgra8", "rgba8", "rgb8", "grey8", "bgra16", "rgba16f",
                                    "rgba32f", "krita:U8", "R'G'B'A float", "R'G'B' u8"])
def test_identity_family_returns_the_pixels_unchanged(client: ZmqClient, layout: str) -> None:
    data = pixels(40, 24, layout, seed=len(layout))
    result = client.run("identity", 40, 24, layout, data, strength=0.5)
    assert (result.width, result.height) == (40, 24)
    assert result.layout == P.canonical_layout(layout)
    assert result.pixels == data


def test_result_matches_the_engine_in_process(client: ZmqClient, tiny_family_dir: Path) -> None:
    data = pixels(64, 48, "rgba8", seed=1)
    result = client.run("tiny", 64, 48, "rgba8", data, strength=0.3)
    image = np.frombuffer(data, np.uint8).reshape(48, 64, 4)
    local = Engine("cpu", [tiny_family_dir]).run("tiny", image, strength=0.3)
    remote = np.frombuffer(result.pixels, np.uint8).reshape(48, 64, 4)
    assert np.abs(remote.astype(int) - local.astype(int)).max() <= 1
    assert not np.array_equal(remote, image)  # the family really did something


def test_krita_bgra_is_converted_both_ways(client: ZmqClient, tiny_family_dir: Path) -> None:
    rgba = np.frombuffer(pixels(32, 32, "rgba8", seed=2), np.uint8).reshape(32, 32, 4)
    bgra = np.ascontiguousarray(rgba[..., [2, 1, 0, 3]])
    out_rgba = client.run("tiny", 32, 32, "rgba8", rgba.tobytes(), strength=0.7)
    out_bgra = client.run("tiny", 32, 32, "krita:U8", bgra.tobytes(), strength=0.7)
    a = np.frombuffer(out_rgba.pixels, np.uint8).reshape(32, 32, 4)
    b = np.frombuffer(out_bgra.pixels, np.uint8).reshape(32, 32, 4)
    assert np.array_equal(a[..., [2, 1, 0, 3]], b)


def test_super_resolution_result_size(client: ZmqClient) -> None:
    result = client.run("tiny-x2", 30, 20, "rgba16f", pixels(30, 20, "rgba16f"), strength=0.5)
    assert (result.width, result.height, result.layout) == (60, 40, "rgba16f")
    assert len(result.pixels) == 60 * 40 * 8


def test_weights_mode_mask_and_strength_map(client: ZmqClient) -> None:
    data = pixels(48, 32, "rgb8", seed=3)
    none = bytes(48 * 32)
    full = bytes([255]) * (48 * 32)
    masked_out = client.run("tiny", 48, 32, "rgb8", data, weights=[0.5, 0.5], mask=none)
    assert masked_out.pixels == data  # a zero mask leaves the image alone
    everywhere = client.run("tiny", 48, 32, "rgb8", data, weights=[0.5, 0.5], mask=full)
    plain = client.run("tiny", 48, 32, "rgb8", data, weights=[0.5, 0.5])
    assert everywhere.pixels == plain.pixels != data
    by_map = client.run("tiny", 48, 32, "rgb8", data, strength_map=full)
    at_one = client.run("tiny", 48, 32, "rgb8", data, strength=1.0)
    assert by_map.pixels == at_one.pixels
    pixel_mode = client.run("tiny", 48, 32, "rgb8", data, strength=0.5, mode="pixel")
    assert pixel_mode.pixels != plain.pixels


def test_engine_errors_come_back_as_error_replies(client: ZmqClient) -> None:
    data = pixels(8, 8, "rgb8")
    cases = [
        ({"strength": 1.5}, "bad_weights"),
        ({"weights": [0.2, 0.2]}, "bad_weights"),
        ({"strength": 0.5, "weights": [0.5, 0.5]}, "bad_weights"),
        ({"strength": 0.5, "family": "no-such-family"}, "bad_family"),
        ({"strength": 0.5, "family": "../../etc"}, "bad_family"),
        ({"strength": 0.5, "tile": 8}, "bad_image"),
    ]
    for options, code in cases:
        family = options.pop("family", "tiny")
        with pytest.raises(ServerError) as info:
            client.run(family, 8, 8, "rgb8", data, **options)  # type: ignore[arg-type]
        assert info.value.code == code, options
    assert client.run("tiny", 8, 8, "rgb8", data, strength=0.5).pixels  # still serving


def test_progress_arrives_in_order(client: ZmqClient) -> None:
    seen: list[tuple[float, str]] = []
    client.run("tiny", 160, 160, "rgba8", pixels(160, 160, "rgba8"), strength=0.5, tile=32,
               on_progress=lambda f, s: seen.append((f, s)))
    fractions = [f for f, _ in seen]
    assert seen[0] == (0.0, "queued") and seen[1] == (0.0, "started")
    inference = [f for f, s in seen if s == "inference"]
    assert len(inference) >= 4  # one per tile
    assert fractions == sorted(fractions)
    assert inference == sorted(set(inference)) and inference[-1] == 1.0


# -- cancel, concurrency, superseding, vanishing ----------------------------------------

def big_job(client: ZmqClient, preview: bool = False) -> str:
    return client.submit("tiny", BIG, BIG, "rgba8", bytes(BIG * BIG * 4), strength=0.5,
                         tile=BIG_TILE, preview=preview)


def test_cancel_stops_within_one_tile(client: ZmqClient) -> None:
    log = Log(client)
    job = big_job(client)
    log.wait(job, started)
    client.cancel(job)
    end = log.wait(job, finished)
    assert end.kind == "error" and end.header["code"] == "cancelled"
    assert end.header["tiles_after_cancel"] <= 1
    fractions = [e.fraction for e in log.of(job) if e.kind == "progress"]
    assert max(fractions) < 0.5  # it stopped long before the end
    assert client.run("identity", 4, 4, "grey8", bytes(16), strength=0.0).pixels == bytes(16)


def test_two_clients_at_once(server: Process) -> None:
    results: dict[int, list[bool]] = {}
    errors: list[BaseException] = []

    def work(index: int) -> None:
        try:
            with ZmqClient(server.endpoint, timeout=30.0) as c:
                ok = []
                for round_ in range(3):
                    data = pixels(64, 64, "rgba8", seed=100 * index + round_)
                    ok.append(c.run("identity", 64, 64, "rgba8", data, strength=0.5,
                                    tile=32).pixels == data)
                results[index] = ok
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors
    assert results == {0: [True] * 3, 1: [True] * 3}


def test_newer_preview_supersedes_the_queued_one(server: Process, client: ZmqClient) -> None:
    log = Log(client)
    blocker = big_job(client)
    log.wait(blocker, started)  # the worker is busy; what follows queues up
    with ZmqClient(server.endpoint, timeout=20.0) as other:
        theirs = other.submit("identity", 8, 8, "grey8", bytes(64), strength=0.5, preview=True)
        small = bytes(8 * 8)
        p1 = client.submit("identity", 8, 8, "grey8", small, strength=0.1, preview=True)
        final = client.submit("identity", 8, 8, "grey8", small, strength=0.2)  # not a preview
        p2 = client.submit("identity", 8, 8, "grey8", small, strength=0.3, preview=True)
        p3 = client.submit("identity", 8, 8, "grey8", small, strength=0.4, preview=True)
        # The queue holds them now (each was acknowledged as queued or superseded).
        for job in (p1, p2):
            end = log.wait(job, finished)
            assert end.kind == "error" and end.header["code"] == "superseded"
        client.cancel(blocker)
        ends = {job: log.wait(job, finished) for job in (blocker, final, p3)}
        assert ends[blocker].header["code"] == "cancelled"
        assert ends[final].kind == "result" and ends[p3].kind == "result"
        assert Log(other).wait(theirs, finished).kind == "result"  # other clients' stay


def test_vanished_client_jobs_are_dropped(server: Process, client: ZmqClient) -> None:
    before = client.stats()["counters"]
    leaver = ZmqClient(server.endpoint, timeout=20.0)
    blocker = big_job(leaver)
    queued = [leaver.submit("identity", 8, 8, "grey8", bytes(64), strength=0.5)
              for _ in range(3)]
    Log(leaver).wait(blocker, started)
    leaver.close()  # the editor crashed
    deadline = time.monotonic() + 20
    while True:
        stats = client.stats()
        if stats["queued"] == 0 and stats["running"] == 0:
            break
        assert time.monotonic() < deadline, stats
        time.sleep(0.05)  # polling the server's own state, not waiting for time to pass
    after = stats["counters"]
    assert after["vanished_dropped"] - before["vanished_dropped"] == 1 + len(queued)
    assert after["completed"] == before["completed"]  # none of the leaver's jobs ran on
    assert client.run("identity", 4, 4, "grey8", bytes(16), strength=0.5).pixels == bytes(16)


# -- protocol-level errors through a raw DEALER -------------------------------------------

@pytest.fixture
def raw(server: Process) -> Iterator[zmq.Socket]:
    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RCVTIMEO, 10000)
    sock.connect(server.endpoint)
    yield sock
    sock.close()


def ask(sock: zmq.Socket, frames: list[bytes], kinds: tuple[str, ...] = P.TERMINAL_KINDS
        ) -> dict[str, Any]:
    """Send one request; the first reply of one of `kinds`."""
    sock.send_multipart(frames)
    while True:
        reply = sock.recv_multipart()
        header = P.decode_header(reply[reply.index(b"") + 1])
        if header["kind"] in kinds:
            return header


def run_header(**changes: object) -> bytes:
    header = {"v": 1, "op": "run", "id": "j1", "family": "tiny", "width": 4, "height": 4,
              "layout": "rgb8", "strength": 0.5, "frames": ["pixels"]}
    header.update(changes)
    return P.encode_header({k: v for k, v in header.items() if v is not None})


@pytest.mark.parametrize(("frames", "code"), [
    ([b"", run_header(), bytes(47)], "bad_frames"),
    ([b"", run_header(), bytes(48), bytes(16)], "bad_frames"),
    ([b"", run_header(frames=["pixels", "mask"]), bytes(48), bytes(15)], "bad_frames"),
    ([b"", run_header(width=100000), bytes(48)], "bad_header"),
    ([b"", run_header(width=16384, height=16384), bytes(48)], "too_large"),
    ([b"", run_header(layout="cmyk"), bytes(48)], "bad_layout"),
    ([b"", run_header(v=2), bytes(48)], "unsupported_version"),
    ([b"", run_header(op="explode")], "unknown_op"),
    ([b"", run_header(id="../x")], "bad_header"),
    ([b"", run_header(id="x\n"), bytes(48)], "bad_header"),
    ([b"", run_header(v=True), bytes(48)], "unsupported_version"),
    ([b"", run_header(strength="0.5"), bytes(48)], "bad_header"),
    ([b"", b"{not json"], "bad_message"),
    ([b"", b"[1, 2]"], "bad_message"),
    ([b"", b'{"v": 1, "op": "hello", "id": "x", "n": NaN}'], "bad_message"),
    ([b"", b" " * (P.MAX_HEADER_BYTES + 1)], "too_large"),
    ([b"", run_header(), bytes(48), b"1", b"2", b"3"], "too_large"),
    ([run_header(), bytes(48)], "bad_message"),
])
def test_malformed_requests_get_error_replies(raw: zmq.Socket, frames: list[bytes],
                                              code: str) -> None:
    reply = ask(raw, frames)
    assert reply["kind"] == "error" and reply["code"] == code, reply


def test_duplicate_job_id_is_refused_while_running(raw: zmq.Socket) -> None:
    header = run_header(id="dup", width=BIG, height=BIG, layout="grey8", tile=BIG_TILE)
    raw.send_multipart([b"", header, bytes(BIG * BIG)])
    assert ask(raw, [b"", header, bytes(BIG * BIG)])["code"] == "duplicate_id"
    cancel = P.encode_header({"v": 1, "op": "cancel", "id": "dup"})
    assert ask(raw, [b"", cancel], (P.KIND_CANCEL_ACK,))["found"]


def test_connection_lost_after_the_server_dies(tiny_family_dir: Path) -> None:
    with serve(tiny_family_dir) as doomed:
        c = ZmqClient(doomed.endpoint, timeout=1.0)
        assert c.hello()["protocol"] == 1
        log = Log(c)
        job = big_job(c)
        log.wait(job, started)
        doomed.proc.kill()
        doomed.proc.wait()
        end = log.wait(job, finished, timeout=10)
        assert end.header["code"] == "connection_lost"
        with pytest.raises(ConnectionLost):
            c.hello()
        c.close()
