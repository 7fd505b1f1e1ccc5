"""Big images (issue 8): peak memory and throughput of one job in a fresh process.

    python benchmarks/bench_big.py --family denoise --size 8192
    python benchmarks/bench_big.py --family super-resolve --size 2048   # -> 8192x8192

The child process builds the input (the sample photo tiled to size, plus noise), runs
the family through the engine (tiles streamed, finished strips written at once) and
reports its wall time and peak resident memory (VmHWM), input array included.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

from report import Row, print_rows

SAMPLE = Path(__file__).resolve().parents[1] / "samples" / "astronaut.png"


def peak_rss_kib() -> int:
    """This process's peak resident memory. On Linux, VmHWM: ru_maxrss survives exec and
    would report the launching benchmark's own peak when that was higher."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def child(family_name: str, size: int, device: str, strength: float) -> dict:
    import numpy as np
    from PIL import Image

    import dni

    family = dni.load_family(family_name, device=device)
    img = np.asarray(Image.open(SAMPLE).convert("RGB"))
    reps = -(-size // img.shape[0])
    image = np.tile(img, (reps, reps, 1))[:size, :size]
    rng = np.random.default_rng(0)
    for row in range(0, size, 512):  # noise in strips: no full-size float temporary
        strip = image[row:row + 512].astype(np.int16)
        strip += rng.normal(0, 25, strip.shape).astype(np.int16)
        image[row:row + 512] = np.clip(strip, 0, 255)
    before = peak_rss_kib()
    start = time.perf_counter()
    out = family.apply(image, strength=strength)
    seconds = time.perf_counter() - start
    peak = peak_rss_kib()
    return {"family": family_name, "input": f"{size}x{size}",
            "output": f"{out.shape[1]}x{out.shape[0]}", "seconds": seconds,
            "megapixels_per_s": out.shape[0] * out.shape[1] / seconds / 1e6,
            "peak_rss_gib": peak / 2**20, "rss_before_gib": before / 2**20,
            "tile": family.auto_tile()}


def measure(family: str, size: int, device: str = "auto", strength: float = 0.5) -> dict:
    """Run one job in a fresh interpreter so that its peak memory is its own."""
    result = subprocess.run([sys.executable, __file__, "--child", "--family", family,
                             "--size", str(size), "--device", device,
                             "--strength", str(strength)],
                            capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(result.stderr.strip().splitlines()[-1])
    return json.loads(result.stdout.strip().splitlines()[-1])


def rows(jobs: list[tuple[str, int]], device: str = "auto") -> list[Row]:
    out = []
    for family, size in jobs:
        r = measure(family, size, device)
        scale = int(r["output"].split("x")[0]) // size
        arrays = (size * size * 3 * (1 + scale * scale)) / 2**30
        out.append(Row(f"{family} {r['input']} -> {r['output']} RGB u8 (tile {r['tile']})",
                       f"peak {r['peak_rss_gib']:.2f} GiB, {r['seconds']:.0f} s, "
                       f"{r['megapixels_per_s']:.2f} MP/s",
                       f"input + output arrays alone {arrays:.2f} GiB",
                       f"{r['peak_rss_gib'] / 4:.2f} of the goal", "peak <= 4 GiB",
                       r["peak_rss_gib"] <= 4.0))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--family", default="denoise")
    parser.add_argument("--size", type=int, default=8192)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--strength", type=float, default=0.5)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.family, args.size, args.device, args.strength)))
        return
    print_rows("Big images", rows([(args.family, args.size)], args.device))


if __name__ == "__main__":
    main()
