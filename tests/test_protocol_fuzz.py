"""Malformed traffic against a live server: it must answer every message, never die, keep
its memory flat, and still serve a valid request afterwards.

The main fuzzer mutates valid messages with a seeded random generator (reproducible, and
fast enough for 10,000 messages in a few seconds); a hypothesis test adds arbitrary JSON
headers; a structure-aware fuzzer mutates the requests the reference client really sends
(recorded from it) field by field, size by size, frame by frame; and floods of oversized
multi-frame messages from several sockets check that the server's memory stays flat.
Every request gets exactly one terminal reply, so each message is checked.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import suppress
from pathlib import Path
from typing import Any

import pytest
import zmq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_server_util import Process, serve

from dni_client import ServerError, ZmqClient
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
    return read_reply(sock, frames)


def read_reply(sock: zmq.Socket, frames: object = "") -> dict[str, Any]:
    """Read replies up to the terminal one, which is returned."""
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


# -- structure-aware mutations of the reference client's own requests --------------------

def answered(call: Callable[[], object]) -> None:
    with suppress(ServerError):  # the recorder's answer
        call()


def recorded_requests() -> list[list[bytes]]:
    """Every kind of request, byte for byte as the reference client sends it: its DEALER
    talks to a recording ROUTER (inproc), which answers the blocking calls with an error
    so that they return."""
    ctx = zmq.Context()
    recorder = ctx.socket(zmq.ROUTER)
    recorder.bind("inproc://recorder")
    client = ZmqClient("inproc://recorder", timeout=0.6, context=ctx)
    recorded: list[list[bytes]] = []

    def take() -> list[bytes]:
        assert recorder.poll(5000)
        frames = recorder.recv_multipart()
        recorded.append(frames[1:])  # without the identity the ROUTER put first
        return frames

    for call in (client.hello, client.families, client.stats):
        thread = threading.Thread(target=answered, args=(call,))
        thread.start()
        frames = take()
        recorder.send_multipart([frames[0], *P.encode(
            {"v": 1, "kind": "error", "id": P.decode_header(frames[2])["id"],
             "code": "internal", "message": "recorded"})])
        thread.join(5)
    w, h = 6, 5
    plane = bytes(range(30))
    job = client.submit("tiny", w, h, "rgba8", bytes(range(120)), strength=0.3)
    take()
    client.submit("tiny3", w, h, "krita:U8", bytes(120), weights=[0.2, 0.3, 0.5], mask=plane,
                  preview=True)
    take()
    client.submit("tiny", w, h, "rgb8", bytes(90), strength_map=plane, tile=32)
    take()
    client.submit("tiny-x2", w, h, "rgba32f", bytes(480), strength=1.0, mode="pixel")
    take()
    client.submit("identity", w, h, "grey16", bytes(60), strength=0.5)
    take()
    client.cancel(job)
    take()
    # A ping goes out once the jobs have been quiet for a while (liveness).
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline and not recorder.poll(0):
        client.poll(50)
    if recorder.poll(0):
        take()
    client.close()
    recorder.close()
    ctx.term()
    return recorded


class RealMutator:
    """Mutates the recorded requests where their structure is: field values and types,
    sizes with consistent or inconsistent data, frame counts and order, the envelope."""

    def __init__(self, requests: list[list[bytes]], seed: int) -> None:
        self.rng = random.Random(seed)
        self.requests = requests
        self.count = 0

    def values(self, value: Any) -> list[Any]:
        """Type confusions and boundaries around one real value."""
        return [None, True, False, 0, -1, 1, 16384, 16385, 2**31, 2**64, 0.5, -0.0, 1e308,
                "", "x" * 65, str(value), [value], {"v": value}, [value] * 70, "nope",
                "\u00e9\ud7ff", [0.5, "a"], [[1]], 2, 3.0]

    def message(self) -> tuple[list[bytes], str | None]:
        """A mutated request and the id its reply must carry (None: not checked)."""
        r = self.rng
        self.count += 1
        frames = list(r.choice(self.requests))
        header = json.loads(frames[1])
        header["id"] = f"m{self.count}"
        data = frames[2:]
        roll = r.random()
        if roll < 0.4:
            return self.mutate_fields(header, data), header["id"]
        if roll < 0.6:
            return self.resize(header, data), header["id"]
        if roll < 0.85:
            return self.mutate_frames(header, data), None
        return self.mutate_envelope(header, data)

    def mutate_fields(self, header: dict[str, Any], data: list[bytes]) -> list[bytes]:
        r = self.rng
        keys = [k for k in header if k != "id"] + ["width", "height", "frames", "tile",
                                                    "weights", "strength", "extra"]
        for _ in range(r.randint(1, 3)):
            key = r.choice(keys)
            action = r.random()
            if action < 0.7:
                header[key] = r.choice(self.values(header.get(key)))
            elif action < 0.85:
                header.pop(key, None)
            else:
                header[key.upper()] = header.get(key)  # keys are case-sensitive
        return [b"", json.dumps(header).encode(), *data]

    def resize(self, header: dict[str, Any], data: list[bytes]) -> list[bytes]:
        """New size and layout; the data frames follow them (or, now and then, not)."""
        r = self.rng
        width, height = r.randint(1, 40), r.randint(1, 40)
        layout = r.choice(sorted(P.LAYOUTS))
        header.update(width=width, height=height, layout=layout,
                      family=r.choice(["tiny", "tiny3", "tiny-x2", "identity"]))
        header.pop("weights", None)
        header["strength"] = r.random()
        names = header.get("frames") if isinstance(header.get("frames"), list) else ["pixels"]
        size = {"pixels": P.expected_bytes(layout, width, height)}
        frames = [bytes(size.get(name, width * height)) for name in names]
        if r.random() < 0.3 and frames:
            i = r.randrange(len(frames))
            frames[i] = frames[i][:-1] if r.random() < 0.5 else frames[i] + b"\0"
        return [b"", json.dumps(header).encode(), *frames]

    def mutate_frames(self, header: dict[str, Any], data: list[bytes]) -> list[bytes]:
        r = self.rng
        raw = json.dumps(header).encode()
        frames = [raw, *data]
        action = r.randrange(7)
        if action == 0 and len(frames) > 1:
            frames.pop(r.randrange(len(frames)))
        elif action == 1:
            frames.insert(r.randrange(len(frames) + 1), r.choice(frames))
        elif action == 2:
            r.shuffle(frames)
        elif action == 3:
            frames += [bytes(r.randint(0, 64)) for _ in range(r.randint(1, 12))]
        elif action == 4:
            cut = r.randint(0, len(raw))
            frames[0:1] = [raw[:cut], raw[cut:]]  # the header split in two frames
        elif action == 5:
            frames.insert(r.randrange(len(frames) + 1), b"")
        else:
            frames = [raw]  # a run without its data, other ops as they are
        return [b"", *frames]

    def mutate_envelope(self, header: dict[str, Any], data: list[bytes]
                        ) -> tuple[list[bytes], str | None]:
        r = self.rng
        body = [json.dumps(header).encode(), *data]
        routing = [r.randbytes(r.randint(1, 8)) for _ in range(r.randint(1, 10))]
        action = r.randrange(3)
        if action == 0:  # routing frames the client made up: replies come back through them
            return [*routing, b"", *body], header["id"] if len(routing) <= P.MAX_ENVELOPE \
                else None
        if action == 1:
            return [*routing, *body], None  # no delimiter
        return [b"", b"", *body], None


def test_structure_aware_mutations_of_real_requests(server: Process,
                                                    dealer: zmq.Socket) -> None:
    requests = recorded_requests()
    ops = {json.loads(frames[1])["op"] for frames in requests}
    assert ops >= {"hello", "families", "stats", "run", "cancel"}
    mutator = RealMutator(requests, seed=22)
    kinds: dict[str, int] = {}
    for _ in range(3000):
        frames, expect_id = mutator.message()
        reply = exchange(dealer, frames)
        key = reply["kind"] if reply["kind"] != "error" else reply["code"]
        kinds[key] = kinds.get(key, 0) + 1
        if expect_id is not None:
            assert reply.get("id") == expect_id, (frames[:3], reply)
    print(f"\n3000 mutations of {len(requests)} recorded requests ({sorted(ops)}): "
          f"{sorted(kinds.items())}")
    assert sum(kinds.values()) == 3000 and server.alive()
    assert kinds.get("result", 0) > 30 and len(kinds) >= 10
    assert "internal" not in kinds, "a malformed request was reported as a server bug"


# -- multi-frame floods: memory stays flat -----------------------------------------------

FLOOD_PIXELS = 1 << 20  # a server whose largest frame is 16 MiB and request ~18 MiB


def vm_kib(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field}")


def flood_round(socks: list[zmq.Socket], round_index: int) -> None:
    """Each socket sends one message over the per-request budget and reads its reply:
    too many frames (64 of 1 MiB), or few frames of too many bytes (3 x 16 MiB)."""
    many = zmq.Frame(bytes(1 << 20))
    big = zmq.Frame(bytes(16 << 20))
    for index, sock in enumerate(socks):
        job_id = f"flood{round_index}.{index}"
        header = P.encode_header({"v": 1, "op": "run", "id": job_id, "family": "identity",
                                  "width": 1024, "height": 1024, "layout": "rgba32f",
                                  "strength": 0.5, "frames": ["pixels", "mask"]})
        frames = [many] * 64 if (round_index + index) % 2 else [big] * 3
        sock.send_multipart([b"", header, *frames], copy=False)
    for index, sock in enumerate(socks):
        reply = read_reply(sock)
        assert (reply["code"], reply.get("id")) == ("too_large", f"flood{round_index}.{index}")


def test_multi_frame_floods_keep_memory_flat(tiny_family_dir: Path) -> None:
    with serve(tiny_family_dir, "--max-pixels", str(FLOOD_PIXELS)) as small:
        ctx = zmq.Context.instance()
        socks = [ctx.socket(zmq.DEALER) for _ in range(4)]
        for sock in socks:
            sock.setsockopt(zmq.LINGER, 0)
            sock.connect(small.endpoint)
        with ZmqClient(small.endpoint, timeout=30.0) as client:
            client.hello()
            before = vm_kib(small.pid, "VmRSS")
            for index in range(2):
                flood_round(socks, index)
            first_peak = vm_kib(small.pid, "VmHWM")
            for index in range(2, 8):
                flood_round(socks, index)
            client.stats()  # one more round trip: the memory has been handed back by now
            after, peak = vm_kib(small.pid, "VmRSS"), vm_kib(small.pid, "VmHWM")
            data = bytes(range(192))
            assert client.run("identity", 8, 8, "rgb8", data, strength=0.5).pixels == data
        for sock in socks:
            sock.close()
    mib = 1024
    print(f"\n8 rounds of 4 sockets x 64 MiB: RSS {before // mib} -> {after // mib} MiB, "
          f"peak {first_peak // mib} MiB after 2 rounds, {peak // mib} MiB after 8")
    # The peak is what libzmq holds while messages arrive (it hands a multipart message
    # over only whole): at most the four in flight at once, and no more after 8 rounds
    # than after 2. Between floods the memory goes back.
    assert peak - before < 4 * 64 * mib * 2
    assert peak - first_peak < 64 * mib
    assert after - before < 32 * mib
