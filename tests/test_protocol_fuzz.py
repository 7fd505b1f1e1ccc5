"""Malformed traffic against a live server: it must answer every message, never die, keep
its memory flat, and still serve a valid request afterwards.

The main fuzzer mutates valid messages with a seeded random generator (reproducible, and
fast enough for 10,000 messages in a few seconds); a hypothesis test adds arbitrary JSON
headers. Every request gets exactly one terminal reply, so each message is checked.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import zmq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_server_util import Process, serve

from dni_client import ZmqClient
from dni_client import protocol as P

MESSAGES = 10_000
REPLY_TIMEOUT_MS = 15_000
CODES = set(P.ERROR_CODES)


@pytest.fixture(scope="module")
def server(tiny_family_dir: Path) -> Iterator[Process]:
    with serve(tiny_family_dir) as process:
        yield process


@pytest.fixture
def dealer(server: Process) -> Iterator[zmq.Socket]:
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(server.endpoint)
    yield sock
    sock.close()


def exchange(sock: zmq.Socket, frames: list[bytes]) -> dict[str, Any]:
    """Send one message; read replies up to the terminal one, which is returned."""
    sock.send_multipart(frames)
    while True:
        if not sock.poll(REPLY_TIMEOUT_MS):
            raise AssertionError(f"no reply within {REPLY_TIMEOUT_MS} ms to {frames!r:.300}")
        reply = sock.recv_multipart()
        body = reply[reply.index(b"") + 1:]  # fuzzed envelopes come back before b""
        header = P.decode_header(body[0])
        assert header["v"] == P.PROTOCOL_VERSION
        kind = header["kind"]
        if kind == P.KIND_ERROR:
            assert header["code"] in CODES, header
            assert isinstance(header["message"], str) and header["message"]
        if kind in P.TERMINAL_KINDS:
            return header
        assert kind == P.KIND_PROGRESS, header


# -- the mutational fuzzer ---------------------------------------------------------------

class Fuzzer:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.count = 0

    def valid(self) -> tuple[dict[str, Any], list[bytes]]:
        r = self.rng
        self.count += 1
        op = r.choice(["run"] * 6 + ["hello", "families", "ping", "stats", "cancel"])
        header: dict[str, Any] = {"v": 1, "op": op, "id": f"f{self.count}"}
        if op != "run":
            return header, []
        layout = r.choice(sorted(P.LAYOUTS))
        width, height = r.randint(1, 12), r.randint(1, 12)
        header.update(family=r.choice(["tiny", "tiny-x2", "identity", "tiny3"]),
                      width=width, height=height, layout=layout,
                      preview=r.random() < 0.3, mode=r.choice(P.MODES))
        if r.random() < 0.5:
            header["strength"] = r.random()
        else:
            header["weights"] = [0.5, 0.5]
        frames = [r.randbytes(P.expected_bytes(layout, width, height))]
        names = ["pixels"]
        for name in ("mask", "strength_map"):
            if r.random() < 0.2:
                frames.append(r.randbytes(width * height))
                names.append(name)
        header["frames"] = names
        if any(s in layout for s in ("f",)):  # floats must be finite and in range
            frames[0] = bytes(len(frames[0]))
        return header, frames

    def junk_value(self) -> Any:
        r = self.rng
        return r.choice([
            None, True, False, 0, -1, 2**63, -2**70, 1e308, -0.0, 0.5, "", "x" * 300,
            "tiny", "../../etc/passwd", "\u00e9\u0000", [], [1, 2, 3], [0.5] * 100, {},
            {"a": {"b": [1]}}, "NaN", "Infinity", r.random() * 1e6, r.randint(-99, 99),
        ])

    def mutate_header(self, header: dict[str, Any]) -> dict[str, Any]:
        r = self.rng
        header = dict(header)
        for _ in range(r.randint(1, 3)):
            action = r.random()
            keys = list(header) or ["v"]
            if action < 0.35:
                header[r.choice(keys)] = self.junk_value()
            elif action < 0.5:
                header.pop(r.choice(keys), None)
            elif action < 0.6:
                header[r.choice(["width", "height"])] = r.choice([0, -3, 17, 16385, 10**9])
            elif action < 0.7:
                header["op"] = r.choice(["", "RUN", "run ", "shutdown", "kill", "hello\x00"])
            elif action < 0.8:
                header["layout"] = r.choice(["cmyk", "RGBA", "krita:U32", "rgba8 ", ""])
            elif action < 0.9:
                header["frames"] = r.choice([["mask"], ["pixels", "pixels"], "pixels",
                                             ["pixels", "mask", "strength_map", "x"]])
            else:
                header["id"] = r.choice(["", "a" * 65, "a/b", "a b", "\u00e9", 7])
        return header

    def encode_header(self, header: dict[str, Any]) -> bytes:
        r = self.rng
        raw = json.dumps(header).encode()
        roll = r.random()
        if roll < 0.1:
            return raw[: r.randint(0, max(0, len(raw) - 1))]  # truncated
        if roll < 0.2 and raw:
            data = bytearray(raw)
            for _ in range(r.randint(1, 4)):
                data[r.randrange(len(data))] = r.randrange(256)  # bit rot
            return bytes(data)
        if roll < 0.23:
            return b"[" * 5000 + b"]" * 5000  # deep nesting
        if roll < 0.25:
            return b" " * (P.MAX_HEADER_BYTES + r.randint(1, 100)) + raw  # oversized
        if roll < 0.28:
            return json.dumps(r.choice([[header], "header", 42, None])).encode()
        return raw

    def mutate_frames(self, frames: list[bytes]) -> list[bytes]:
        r = self.rng
        frames = list(frames)
        roll = r.random()
        if roll < 0.3 and frames:
            i = r.randrange(len(frames))
            delta = r.choice([-1, 1, -7, 64])
            frames[i] = frames[i][:delta] if delta < 0 else frames[i] + bytes(delta)
        elif roll < 0.45:
            frames += [r.randbytes(r.randint(0, 32)) for _ in range(r.randint(1, 4))]
        elif roll < 0.55 and frames:
            frames.pop(r.randrange(len(frames)))
        elif roll < 0.6:
            r.shuffle(frames)
        return frames

    def message(self) -> list[bytes]:
        r = self.rng
        header, frames = self.valid()
        roll = r.random()
        if roll < 0.05:
            return [b""] + [r.randbytes(r.randint(0, 20)) for _ in range(r.randint(0, 6))]
        if roll < 0.1:  # no delimiter at all
            return [r.randbytes(r.randint(1, 20)) for _ in range(r.randint(1, 5))]
        if roll < 0.15:  # routing junk before the delimiter
            prefix = [r.randbytes(r.randint(1, 8)) for _ in range(r.randint(1, 3))]
            return prefix + [b"", self.encode_header(header), *frames]
        if roll < 0.2:
            header["v"] = self.junk_value()
        elif roll < 0.75:
            header = self.mutate_header(header)
        elif roll < 0.95:
            frames = self.mutate_frames(frames)
        # else: a valid message now and then, so that the happy path stays exercised
        return [b"", self.encode_header(header), *frames]


def test_ten_thousand_malformed_messages(server: Process, dealer: zmq.Socket) -> None:
    fuzzer = Fuzzer(seed=20261125)
    kinds: dict[str, int] = {}
    rss: dict[int, int] = {}
    started = time.perf_counter()
    for index in range(1, MESSAGES + 1):
        reply = exchange(dealer, fuzzer.message())
        key = reply["kind"] if reply["kind"] != "error" else reply["code"]
        kinds[key] = kinds.get(key, 0) + 1
        if index % 2000 == 0:
            assert server.alive()
            rss[index] = server.rss_kib()
    elapsed = time.perf_counter() - started
    print(f"\n{MESSAGES} messages in {elapsed:.1f} s; replies: {sorted(kinds.items())}; "
          f"RSS KiB: {rss}")
    assert sum(kinds.values()) == MESSAGES
    # Mostly errors of many kinds, some valid runs among them.
    assert kinds.get("result", 0) > 50 and len(kinds) >= 10
    # Memory flat: after warm-up (families loaded, allocator pools filled) it stops growing.
    assert rss[MESSAGES] - rss[4000] < 24 * 1024, rss
    # And it still serves a real client.
    with ZmqClient(server.endpoint, timeout=20.0) as client:
        data = bytes(range(256)) * 3
        assert client.run("identity", 16, 16, "rgb8", data, strength=0.5).pixels == data
        assert client.stats()["queued"] == 0


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12)

headers = st.fixed_dictionaries(
    {"v": st.sampled_from([1, 1, 1, 0, 2, "1", None])},
    optional={
        "op": st.sampled_from(list(P.OPS) + ["", "nope"]) | st.text(max_size=8),
        "id": st.from_regex(r"[A-Za-z0-9_.:-]{1,64}", fullmatch=True) | json_values,
        "family": st.sampled_from(["tiny", "identity", "nope", "../x"]) | json_values,
        "width": st.integers(-2, 20) | json_values,
        "height": st.integers(-2, 20) | json_values,
        "layout": st.sampled_from(sorted(P.LAYOUTS)) | json_values,
        "strength": st.floats(-1, 2) | json_values,
        "weights": st.lists(st.floats(-1, 2), max_size=4) | json_values,
        "frames": st.lists(st.sampled_from(P.RUN_FRAMES), max_size=4) | json_values,
        "preview": st.booleans() | json_values,
        "tile": st.integers(-1, 100) | json_values,
        "mode": st.sampled_from(P.MODES) | json_values,
    }).flatmap(lambda h: st.tuples(st.just(h), st.lists(st.binary(max_size=64), max_size=4)))


@settings(max_examples=400, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(message=headers)
def test_arbitrary_json_headers(dealer: zmq.Socket, message: tuple[dict[str, Any],
                                                                   list[bytes]]) -> None:
    header, data = message
    reply = exchange(dealer, [b"", json.dumps(header).encode(), *data])
    assert reply["kind"] in P.TERMINAL_KINDS


def test_message_over_maxmsgsize_drops_only_that_connection(tiny_family_dir: Path,
                                                            tmp_path: Path) -> None:
    # 4096 pixels: the largest layout needs 64 KiB, so ZMQ_MAXMSGSIZE is about that.
    # (This server listens on a Unix socket: ipc:// endpoints work as well as tcp://.)
    with serve(tiny_family_dir, "--max-pixels", "4096",
               endpoint=f"ipc://{tmp_path}/dni.sock") as small:
        assert small.endpoint == f"ipc://{tmp_path}/dni.sock"
        ctx = zmq.Context.instance()
        sock = ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(small.endpoint)
        hello = P.encode_header({"v": 1, "op": "hello", "id": "h"})
        assert exchange(sock, [b"", hello])["limits"]["max_pixels"] == 4096
        sock.send_multipart([b"", run_header_for(512, 512), bytes(512 * 512 * 4)])
        # libzmq drops the connection instead of reading 1 MiB; no reply comes.
        assert not sock.poll(500)
        sock.close()
        with ZmqClient(small.endpoint, timeout=20.0) as client:
            assert client.hello()["limits"]["max_pixels"] == 4096
            too_big = client.submit("identity", 128, 64, "grey8", bytes(128 * 64),
                                    strength=0.5)
            events = []
            while not events or events[-1].kind == "progress":
                events += client.poll(100)
            assert events[-1].job_id == too_big and events[-1].header["code"] == "too_large"
        assert small.alive()
        assert small.stop() == 0  # SIGTERM: a clean exit


def run_header_for(width: int, height: int) -> bytes:
    return P.encode_header({"v": 1, "op": "run", "id": "big", "family": "identity",
                            "width": width, "height": height, "layout": "rgba8",
                            "strength": 0.5, "frames": ["pixels"]})
