"""Slider to preview inside the real Krita (Debian's, under Xvfb), 512² crops at every
depth (8 and 16-bit integer, 16 and 32-bit float): how long from a new slider value to
the first picture in the dialog (from the previews rendered ahead,
dni_client.preview_cache) and how close it is to the exact one, how long to the exact
preview, the longest call of the plugin's own GUI-thread handlers (a freeze of Krita),
and beside it, measured in the same run, the backend's own round trip for the same crop
through the same session (so the ratio is what the plugin adds on top of the network).

    python benchmarks/bench_krita_preview.py [--moves N] [--output docs/PERFORMANCE.md]

Needs krita, xvfb-run and xauth (apt-get install krita xvfb xauth) and the bundled denoise
family. Prints a Markdown table; --output puts it into its own section of that file.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "e2e_krita"), str(ROOT / "plugin"),
                str(Path(__file__).resolve().parent)]


def _machine() -> str:
    import platform

    cpu = platform.processor() or "unknown CPU"
    with open("/proc/cpuinfo", encoding="ascii") as info:
        cpu = next((ln.split(":", 1)[1].strip() for ln in info
                    if ln.startswith("model name")), cpu)
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return f"{cpu}, {os.cpu_count()} cores; load average at the end {load}"


def _table(rows: dict, moves: int) -> str:
    lines = ["## Slider to preview inside Krita", "",
             f"`python benchmarks/bench_krita_preview.py --moves {moves}`: "
             "Debian's Krita under Xvfb, the bundled denoise family, 512² crops at every "
             "layer depth. The dialog first renders the crop at five strengths a quarter "
             "of the slider apart (the artist looking at the first preview; *grid ready* "
             "is how long that takes after the dialog reads its crop); then each slider "
             "move measures the time to the first picture (the two cached neighbours "
             "blended, or a cached picture) and to the exact preview, and the PSNR of that"
             " first picture against the exact one. Beside it, in the same run, the same "
             "crop as a blocking job through the same session (the backend's own round "
             "trip): the ratio is what the plugin adds to the exact preview. Machine: "
             f"{_machine()}.", "",
             "| depth | crop | slider → first picture p50 / p95 | first picture vs exact "
             "(PSNR, worst / median) | slider → exact preview p50 / p95 | backend round "
             "trip p50 | ratio (exact p50) | grid ready | longest plugin handler on "
             "Krita's GUI thread |",
             "|---|---|---|---|---|---|---|---|---|"]
    for depth, row in rows.items():
        ratio = row["exact_preview_p50_ms"] / max(row["backend_round_trip_p50_ms"], 1e-6)
        crop = row["crop"]
        worst = max(row["handlers_ms"], key=row["handlers_ms"].get)
        psnr = (f"{row['stand_in_psnr_min_db']:.1f} / {row['stand_in_psnr_median_db']:.1f} dB"
                f" ({row['stand_ins']} of {row['moves']} moves blended)"
                if row["stand_ins"] else "no blends")
        lines.append(
            f"| {depth} | {crop[2]}×{crop[3]} | {row['first_picture_p50_ms']:.0f} / "
            f"{row['first_picture_p95_ms']:.0f} ms | {psnr} | "
            f"{row['exact_preview_p50_ms']:.0f} / {row['exact_preview_p95_ms']:.0f} ms | "
            f"{row['backend_round_trip_p50_ms']:.0f} ms | {ratio:.2f}× | "
            f"{row['grid_fill_s']:.1f} s | {row['longest_handler_ms']:.1f} ms ({worst}) |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--moves", type=int, default=20, help="slider moves per depth")
    parser.add_argument("--output", type=Path, help="also write the table into this file")
    args = parser.parse_args()
    if any(shutil.which(t) is None for t in ("krita", "xvfb-run", "xauth")):
        print("needs krita, xvfb-run and xauth (apt-get install krita xvfb xauth)")
        return 2
    from test_krita_e2e import run_krita

    with tempfile.TemporaryDirectory(prefix="dni-bench-krita-") as tmp:
        results = run_krita(Path(tmp), {"only": ["bench"], "bench_moves": args.moves})
    if "error" in results or "preview_benchmark" not in results:
        print(results.get("error") or "\n".join(results.get("log", [])))
        return 1
    table = _table(results["preview_benchmark"], args.moves)
    print(table)
    if args.output:
        import performance_file

        performance_file.replace(args.output, "krita-preview", table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
