"""Slider-to-preview latency through a real server (issue 8).

A simulated drag sends a preview request every `--interval` ms with a new strength,
as the plugins do (`preview=True`: the server drops a client's older queued preview).
The latency of one slider position is the time from its request to the arrival of a
preview for that position or a later one; positions a later preview overtook are
served by that later preview, which is what the artist sees.

    python benchmarks/bench_preview.py [--family denoise] [--crop 256] [--moves 40]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
from PIL import Image
from report import Row, print_rows
from server_process import running_server

from dni_client import ZmqClient

SAMPLE = Path(__file__).resolve().parents[1] / "samples" / "astronaut-noisy-sigma25.png"


def crop_bytes(side: int) -> bytes:
    img = np.asarray(Image.open(SAMPLE).convert("RGB"))
    reps = -(-side // img.shape[0])
    img = np.tile(img, (reps, reps, 1))[:side, :side]
    rgba = np.dstack([img, np.full(img.shape[:2], 255, np.uint8)])
    return np.ascontiguousarray(rgba).tobytes()


def drag_latencies(client: ZmqClient, family: str, side: int, moves: int,
                   interval: float) -> list[float]:
    pixels = crop_bytes(side)
    sent: list[tuple[str, float]] = []  # (job id, time sent) in slider order
    answered: dict[str, float] = {}
    positions = np.linspace(0.05, 0.95, moves)
    next_send = time.perf_counter()
    i = 0
    while i < moves or len(answered) < 1 or not _last_served(sent, answered):
        now = time.perf_counter()
        if i < moves and now >= next_send:
            job = client.submit(family, side, side, "rgba8", pixels,
                                strength=float(positions[i]), preview=True)
            sent.append((job, now))
            i += 1
            next_send += interval
        for event in client.poll(timeout_ms=2):
            # A superseded position gets an error at once; it is served by a later result.
            if event.kind == "result":
                answered[event.job_id] = time.perf_counter()
            elif event.kind == "error" and event.header.get("code") != "superseded":
                raise RuntimeError(event.header)
    return _latencies(sent, answered)


def _last_served(sent: list[tuple[str, float]], answered: dict[str, float]) -> bool:
    return bool(sent) and sent[-1][0] in answered


def _latencies(sent: list[tuple[str, float]], answered: dict[str, float]) -> list[float]:
    """Each position waits for the first *result* at or after it in slider order."""
    out = []
    for index, (_, start) in enumerate(sent):
        served = [answered[job] for job, _ in sent[index:] if job in answered]
        out.append(min(served) - start)
    return out


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def measure(family: str, side: int, moves: int, interval: float, device: str) -> dict:
    with running_server(device=device) as endpoint, ZmqClient(endpoint, timeout=120) as client:
        pixels = crop_bytes(side)
        for s in (0.0, 0.5, 1.0):  # load the family, warm the (reduced-precision) kernels
            client.run(family, side, side, "rgba8", pixels, strength=s, preview=True)
        single = []
        for s in np.linspace(0.1, 0.9, 5):
            start = time.perf_counter()
            client.run(family, side, side, "rgba8", pixels, strength=float(s), preview=True)
            single.append(time.perf_counter() - start)
        lat = drag_latencies(client, family, side, moves, interval)
    return {"family": family, "crop": side, "single": statistics.median(single),
            "p50": percentile(lat, 50), "p95": percentile(lat, 95), "moves": moves}


def rows(families: list[str], side: int = 256, moves: int = 40, interval_ms: float = 40.0,
         device: str = "cpu") -> list[Row]:
    out = []
    for family in families:
        r = measure(family, side, moves, interval_ms / 1000, device)
        goal = family == "denoise" and side == 256
        met = r["p50"] <= 0.250 and r["p95"] <= 0.400 if goal else None
        out.append(Row(f"slider to preview, {family} {side}x{side}, drag at "
                       f"{1000 / interval_ms:.0f} Hz through dni serve",
                       f"p50 {r['p50'] * 1e3:.0f} ms, p95 {r['p95'] * 1e3:.0f} ms",
                       f"one preview alone {r['single'] * 1e3:.0f} ms", "",
                       "p50 <= 250, p95 <= 400 ms" if goal else "", met))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--family", action="append")
    parser.add_argument("--crop", type=int, default=256)
    parser.add_argument("--moves", type=int, default=40)
    parser.add_argument("--interval", type=float, default=40.0, help="ms between moves")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    print_rows("Preview latency", rows(args.family or ["denoise"], args.crop, args.moves,
                                       args.interval, args.device))


if __name__ == "__main__":
    main()
