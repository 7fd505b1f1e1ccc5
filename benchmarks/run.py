"""All of DNI's speed and memory figures in one run, each beside its baseline.

    python benchmarks/run.py [--quick] [--device D] [--output FILE] [--skip SECTION ...]

Sections: engine (interpolation, tiling), server (transport), preview (slider latency),
big (peak memory on big images), peer (Real-ESRGAN's tiling; needs .bench-peer, see
bench_peer.py). Tables are printed as Markdown; --output also writes them to FILE.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_big  # noqa: E402
import bench_engine  # noqa: E402
import bench_peer  # noqa: E402
import bench_preview  # noqa: E402
import bench_server  # noqa: E402
from report import Row, print_rows  # noqa: E402


def machine() -> str:
    import torch

    cpu = platform.processor() or "unknown CPU"
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="ascii") as info:
        cpu = next((line.split(":", 1)[1].strip() for line in info
                    if line.startswith("model name")), cpu)
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (f"{cpu}, {os.cpu_count()} cores, {memory:.0f} GiB RAM, {gpu}; "
            f"Python {platform.python_version()}, torch {torch.__version__} "
            f"({torch.get_num_threads()} threads), {platform.system()} {platform.release()}")


def sections(quick: bool, device: str) -> dict[str, tuple[str, Callable[[], list[Row]]]]:
    compute = device if device != "auto" else "auto"
    return {
        "engine": ("Interpolation and tiling", lambda: (
            bench_engine.bench_interpolation(compute, 5 if quick else 20)
            + bench_engine.bench_tiling(compute, 1024 if quick else 2048, None))),
        "server": ("Server transport", lambda: bench_server.measure(
            "cpu", 1024 if quick else 4096, 3 if quick else 5, 256, 10 if quick else 40)),
        "preview": ("Preview latency", lambda: bench_preview.rows(
            ["denoise"] if quick else ["denoise", "stylize", "super-resolve"], 256,
            20 if quick else 40, 40.0, "cpu" if device == "auto" else device)),
        "big": ("Big images", lambda: bench_big.rows(
            [("denoise", 2048), ("super-resolve", 512)] if quick
            else [("denoise", 8192), ("super-resolve", 2048)], compute)),
        "peer": ("Against Real-ESRGAN's tiling", lambda: bench_peer.compare(
            256 if quick else 512, 128 if quick else 256, 2 if quick else 3)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller images, fewer repeats")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--output", type=Path, help="also write the tables to this file")
    parser.add_argument("--skip", nargs="*", default=[], help="sections to leave out")
    args = parser.parse_args()
    buffer = io.StringIO()

    def emit(text: str) -> None:
        print(text, flush=True)
        buffer.write(text + "\n")

    emit(f"Machine: {machine()}")
    emit(f"Run: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
         f"{'quick' if args.quick else 'full'} mode, device {args.device}")
    for key, (title, run) in sections(args.quick, args.device).items():
        if key in args.skip:
            continue
        started = time.perf_counter()
        try:
            rows = run()
        except Exception as exc:  # noqa: BLE001 - one broken section must not hide the rest
            emit(f"\n## {title}\n\nnot measured: {type(exc).__name__}: {exc}")
            continue
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            print_rows(title, rows)
        emit(out.getvalue().rstrip() + f"\n\n({time.perf_counter() - started:.0f} s)")
    if args.output:
        args.output.write_text(buffer.getvalue())


if __name__ == "__main__":
    main()
