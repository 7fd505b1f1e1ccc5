"""Soak: clients of every kind against one real `dni serve` for a bounded time (issue 22).

    python benchmarks/bench_soak.py [--seconds 60] [--device cpu]

A probe client (the reference ZmqClient) first runs alone, then for `--seconds` while
other processes' clients abuse the server: well-behaved ones dragging sliders (previews
superseding previews) and sending full jobs, one that never reads its replies, one that
floods malformed and oversized multi-frame messages, and ones that vanish mid-job.
Printed: the server's peak memory, the probe's latency (p50/p95/max) under abuse beside
the same probe alone, and the jobs lost: well-behaved jobs without exactly one final
reply, counted on raw sockets (must be 0). The abusers run in a child process so that
they do not compete with the probe for this process's GIL.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from report import Row, print_rows
from safetensors.torch import save_file

from dni.archs.plain import PlainConvNet
from dni_client import ZmqClient
from dni_client import protocol as P

FAMILY = "soak"
MAX_PIXELS = 2048 * 2048  # the server's limit: oversized messages of ~100 MiB suffice
GRACE_S = 30.0            # after the abuse, for the well-behaved jobs still running


def write_tiny_family(root: Path) -> None:
    """Two correlated members of a small plain convolutional network (8 features)."""
    folder = root / FAMILY
    folder.mkdir(parents=True)
    torch.manual_seed(0)
    base = PlainConvNet(features=8, layers=3).state_dict()
    tuned = {k: v + 0.2 * v.std() * torch.randn_like(v) for k, v in base.items()}
    lines = [f'name = "{FAMILY}"', 'architecture = "plain-conv"', "scale = 1",
             "[architecture_options]", "features = 8", "layers = 3"]
    for index, state in enumerate((base, tuned)):
        save_file(state, str(folder / f"m{index}.safetensors"))
        lines += ["[[members]]", f'label = "m{index}"', f'file = "m{index}.safetensors"',
                  f"position = {index}"]
    (folder / "family.toml").write_text("\n".join(lines) + "\n")


def run_frames(job_id: str, side: int, strength: float, preview: bool = False,
               tile: int | None = None) -> list[Any]:
    header: dict[str, Any] = {"v": 1, "op": "run", "id": job_id, "family": FAMILY,
                              "width": side, "height": side, "layout": "rgba8",
                              "strength": strength, "preview": preview}
    if tile:
        header["tile"] = tile
    return [b"", P.encode_header(header), bytes(side * side * 4)]


def dealer(endpoint: str, reads: bool = True) -> Any:
    import zmq

    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    if not reads:  # buffer as little as possible of what it never reads
        sock.setsockopt(zmq.RCVHWM, 1)
        sock.setsockopt(zmq.RCVBUF, 4096)
    sock.connect(endpoint)
    return sock


# -- the abusers (child process) ---------------------------------------------------------

class Ledger:
    """Final replies per job of the well-behaved clients: exactly one each."""

    def __init__(self) -> None:
        self.submitted: set[str] = set()
        self.finals: Counter[str] = Counter()

    def read(self, sock: Any, timeout_ms: int) -> None:
        while sock.poll(timeout_ms):
            header = P.decode_header(sock.recv_multipart()[1])
            if header["kind"] in (P.KIND_RESULT, P.KIND_ERROR):
                self.finals[header.get("id", "?")] += 1
            timeout_ms = 0

    def open(self) -> int:
        return sum(1 for job in self.submitted if not self.finals[job])

    def lost(self) -> int:
        wrong = sum(1 for job in self.submitted if self.finals[job] != 1)
        return wrong + sum(1 for job in self.finals if job not in self.submitted)


def well_behaved(endpoint: str, stop: threading.Event, name: str) -> dict[str, int]:
    """A slider drag (a preview every 40 ms) with a full job every second; reads all."""
    sock, ledger, rng = dealer(endpoint), Ledger(), random.Random(name)
    next_preview = next_full = time.monotonic()
    while not stop.is_set():
        now = time.monotonic()
        full = now >= next_full
        if full or now >= next_preview:
            job_id = f"{name}-{len(ledger.submitted)}"
            sock.send_multipart(run_frames(job_id, 256 if full else 96, rng.random(),
                                           preview=not full))
            ledger.submitted.add(job_id)
            if full:
                next_full += 1.0
            else:
                next_preview += 0.04
        wait = min(next_preview, next_full) - time.monotonic()
        ledger.read(sock, max(0, int(wait * 1000)))
    deadline = time.monotonic() + GRACE_S
    while ledger.open() and time.monotonic() < deadline:
        ledger.read(sock, 100)
    sock.close()
    return {"jobs": len(ledger.submitted), "lost": ledger.lost()}


def non_reader(endpoint: str, stop: threading.Event, _name: str) -> dict[str, int]:
    """Requests as fast as it likes; never reads a reply."""
    sock, sent = dealer(endpoint, reads=False), 0
    while not stop.is_set():
        for index in range(50):
            if index % 5:
                sock.send_multipart([b"", P.encode_header({"v": 1, "op": "hello",
                                                           "id": f"h{sent}"})])
            else:
                sock.send_multipart(run_frames(f"r{sent}", 32, 0.5))
            sent += 1
        stop.wait(0.02)
    sock.close()
    return {"requests": sent}


def _oversized(index: int) -> list[Any]:
    import zmq

    header = P.encode_header({"v": 1, "op": "run", "id": f"big{index}", "family": FAMILY,
                              "width": 2048, "height": 2048, "layout": "rgba8",
                              "strength": 0.5, "frames": ["pixels", "mask"]})
    if index % 2:  # too many frames
        return [b"", header, *[zmq.Frame(bytes(2**20))] * 24]
    return [b"", header, *[zmq.Frame(bytes(32 * 2**20))] * 3]  # too many bytes


def flooder(endpoint: str, stop: threading.Event, _name: str) -> dict[str, int]:
    """Malformed messages in bursts and an oversized multi-frame message each time."""
    sock, rng = dealer(endpoint), random.Random(22)
    malformed = oversized = 0
    while not stop.is_set():
        for _ in range(20):
            junk = [rng.randbytes(rng.randint(0, 40)) for _ in range(rng.randint(1, 9))]
            sock.send_multipart([b"", *junk])
            malformed += 1
        sock.send_multipart(_oversized(oversized), copy=False)
        oversized += 1
        while sock.poll(0):
            sock.recv_multipart()
        stop.wait(0.3)
    sock.close()
    return {"malformed": malformed, "oversized": oversized}


def vanisher(endpoint: str, stop: threading.Event, _name: str) -> dict[str, int]:
    """Submits a long job and closes its socket once the job runs."""
    vanished = 0
    while not stop.is_set():
        sock = dealer(endpoint)
        sock.send_multipart(run_frames(f"v{vanished}", 512, 0.5, tile=32))
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and sock.poll(100):
            if P.decode_header(sock.recv_multipart()[1]).get("stage") == "inference":
                break
        sock.close()
        vanished += 1
        stop.wait(0.5)
    return {"vanished": vanished}


ABUSERS: dict[str, Callable[[str, threading.Event, str], dict[str, int]]] = {
    "well-behaved-1": well_behaved, "well-behaved-2": well_behaved,
    "non-reader": non_reader, "flooder": flooder, "vanisher": vanisher}


def abuse(endpoint: str, seconds: float, results: Any) -> None:
    """The child process: every abuser in its own thread for `seconds`."""
    stop = threading.Event()
    out: dict[str, dict[str, int]] = {}
    threads = [threading.Thread(target=lambda n=name, f=fn: out.update({n: f(endpoint, stop,
                                                                              n)}))
               for name, fn in ABUSERS.items()]
    for thread in threads:
        thread.start()
    stop.wait(seconds)
    stop.set()
    for thread in threads:
        thread.join(GRACE_S + 30)
    results.put(out)


# -- the probe and the measurement (this process) -----------------------------------------

def vm_mib(pid: int, field: str) -> float:
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} for {pid}")


def probe(client: ZmqClient, seconds: float, pid: int) -> tuple[list[float], list[float],
                                                                 float]:
    """stats() round trips, and a 64x64 preview every tenth turn; the highest RSS seen."""
    trips: list[float] = []
    previews: list[float] = []
    rss = 0.0
    pixels = bytes(64 * 64 * 4)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        started = time.perf_counter()
        client.stats()
        trips.append(time.perf_counter() - started)
        if len(trips) % 10 == 0:
            started = time.perf_counter()
            client.run(FAMILY, 64, 64, "rgba8", pixels, strength=0.5, preview=True)
            previews.append(time.perf_counter() - started)
        rss = max(rss, vm_mib(pid, "VmRSS"))
        time.sleep(0.02)
    return trips, previews, rss


def spread(values: list[float]) -> str:
    ordered = sorted(values)
    p95 = ordered[int(0.95 * (len(ordered) - 1))]
    return (f"p50 {statistics.median(ordered) * 1e3:.1f} ms, p95 {p95 * 1e3:.1f} ms, "
            f"max {ordered[-1] * 1e3:.0f} ms")


def p95(values: list[float]) -> float:
    return sorted(values)[int(0.95 * (len(values) - 1))]


def start_server(device: str, family_dir: Path) -> tuple[subprocess.Popen[str], str]:
    """A real `dni serve` on a free loopback port: the process and its endpoint."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-m", "dni.server", "serve", "--endpoint",
                             "tcp://127.0.0.1:0", "--device", device, "--family-path",
                             str(family_dir), "--max-pixels", str(MAX_PIXELS)],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            env=env)  # its warnings about the abusers would drown the table
    assert proc.stdout is not None
    for line in proc.stdout:  # until the ready line (or the child's exit)
        if line.startswith("listening on "):
            return proc, line.split()[2]
    raise SystemExit(f"the server exited with {proc.wait()}")


def measure(seconds: float = 60.0, device: str = "cpu") -> list[Row]:
    with tempfile.TemporaryDirectory() as tmp:
        write_tiny_family(Path(tmp))
        proc, endpoint = start_server(device, Path(tmp))
        try:
            return _soak(proc.pid, endpoint, seconds)
        finally:
            proc.terminate()
            proc.wait(timeout=30)


def _soak(pid: int, endpoint: str, seconds: float) -> list[Row]:
    with ZmqClient(endpoint, timeout=60.0) as client:
        client.hello()
        alone = probe(client, max(5.0, seconds / 4), pid)
        start_rss = vm_mib(pid, "VmRSS")
        spawn = multiprocessing.get_context("spawn")
        results = spawn.Queue()
        child = spawn.Process(target=abuse, args=(endpoint, seconds, results))
        child.start()
        loaded = probe(client, seconds, pid)
        out = results.get(timeout=GRACE_S + 120)
        child.join(30)
        counters = client.stats()["counters"]
    return _rows(seconds, alone, loaded, out, counters, start_rss, vm_mib(pid, "VmHWM"),
                 vm_mib(pid, "VmRSS"))


def _rows(seconds: float, alone: tuple[list[float], list[float], float],
          loaded: tuple[list[float], list[float], float], out: dict[str, dict[str, int]],
          counters: dict[str, int], start_rss: float, peak: float, end_rss: float
          ) -> list[Row]:
    good = [v for k, v in out.items() if k.startswith("well-behaved")]
    jobs = sum(v["jobs"] for v in good) + len(alone[1]) + len(loaded[1])
    lost = sum(v["lost"] for v in good)
    ratio = p95(loaded[0]) / p95(alone[0])
    return [
        Row(f"stats() round trip of a well-behaved client under {seconds:.0f} s of abuse",
            spread(loaded[0]), "alone: " + spread(alone[0]), f"{ratio:.1f} (p95)",
            "p95 <= 500 ms", p95(loaded[0]) <= 0.5),
        Row("64x64 preview of the same client, under abuse", spread(loaded[1]),
            "alone: " + spread(alone[1]), f"{p95(loaded[1]) / p95(alone[1]):.1f} (p95)", "",
            None),
        Row("jobs lost: well-behaved jobs without exactly one final reply",
            f"{lost} of {jobs}", "", "", "0", lost == 0),
        Row("server memory during the abuse",
            f"peak {peak:.0f} MiB (VmHWM), {max(loaded[2], end_rss):.0f} MiB highest RSS "
            f"sampled, {end_rss:.0f} MiB at the end", f"RSS before the abuse {start_rss:.0f} "
            "MiB", "", "", None),
        Row("abuse sent (server's counters)",
            f"non-reader {out['non-reader']['requests']} requests (cut off "
            f"{counters.get('slow_clients', 0)}x, {counters.get('slow_dropped', 0)} jobs "
            f"dropped); flooder {out['flooder']['malformed']} malformed + "
            f"{out['flooder']['oversized']} oversized; {out['vanisher']['vanished']} "
            f"vanished mid-job ({counters.get('vanished_dropped', 0)} jobs dropped)",
            "", "", "", None),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    rows = measure(args.seconds, args.device)
    print_rows("Soak: clients of every kind at once", rows)
    return 0 if all(row.met is not False for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
