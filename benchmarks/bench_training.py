"""Training step time of the denoise recipe: bf16 autocast + channels-last against fp32.

    python benchmarks/bench_training.py [--rounds 9] [--threads 2]

The recipe picks bf16 on CPUs with bf16 units (models/recipes/common.py: cpu_has_bf16);
this measures what that buys, one step of each kind back to back per round so that a
busy machine slows both alike. Same net, batch and patch as the shipped denoise run.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from report import Row, print_rows  # noqa: E402

from dni import archs  # noqa: E402
from models.recipes import common, denoise  # noqa: E402

BATCH, PATCH = 16, 64


def make_step(precision: str, channels_last: bool):  # noqa: ANN201
    layout = torch.channels_last if channels_last else torch.contiguous_format
    model = archs.build(denoise.ARCH_NAME, denoise.ARCH).to(memory_format=layout)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    clean = torch.rand(BATCH, 3, PATCH, PATCH).contiguous(memory_format=layout)

    def step() -> float:
        started = time.perf_counter()
        denoise.train_step(model, opt, clean, 25, precision)
        return time.perf_counter() - started

    return step


def rows(rounds: int) -> list[Row]:
    kinds = {"fp32": make_step("fp32", False), "fp32 channels-last": make_step("fp32", True)}
    if common.cpu_has_bf16():
        kinds["bf16 channels-last"] = make_step("bf16", True)
    times: dict[str, list[float]] = {k: [] for k in kinds}
    for _ in range(3):  # warm-up: oneDNN picks its kernels on the first calls
        for step in kinds.values():
            step()
    for _ in range(rounds):
        for name, step in kinds.items():
            times[name].append(statistics.median(step() for _ in range(5)))
    base = statistics.median(times["fp32"])
    out = []
    for name, samples in times.items():
        ms = statistics.median(samples) * 1000
        out.append(Row(f"denoise step, batch {BATCH}x{PATCH}², {name}", f"{ms:.0f} ms",
                       f"{base * 1000:.0f} ms (fp32)", f"{base * 1000 / ms:.2f}x faster",
                       "", None))
    if "bf16 channels-last" not in kinds:
        out.append(Row("bf16 channels-last", "not measured: this CPU has no bf16 units",
                       "", "", "", None))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print_rows("Training step (denoise recipe)", rows(args.rounds))


if __name__ == "__main__":
    main()
