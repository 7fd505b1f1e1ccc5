"""Slider to preview inside the real Krita (Debian's, under Xvfb), 512² crops at 8-bit and
32-bit float: how long from a new slider value to the new picture in the dialog, the
longest call of the plugin's own GUI-thread handlers (a freeze of Krita), and beside it,
measured in the same run, the backend's own round trip for the same crop through the
same session (so the ratio is what the plugin adds on top of the network).

    python benchmarks/bench_krita_preview.py [--moves N]

Needs krita, xvfb-run and xauth (apt-get install krita xvfb xauth) and the bundled denoise
family. Prints a Markdown table; the figures in docs/PERFORMANCE.md come from it.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "e2e_krita"), str(ROOT / "plugin")]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--moves", type=int, default=20, help="slider moves per depth")
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
    print("| depth | crop | slider → preview p50 / p95 | backend round trip p50 | ratio "
          "(p50) | longest plugin handler on Krita's GUI thread |")
    print("|---|---|---|---|---|---|")
    for depth, row in results["preview_benchmark"].items():
        ratio = row["slider_to_preview_p50_ms"] / max(row["backend_round_trip_p50_ms"], 1e-6)
        crop = row["crop"]
        worst = max(row["handlers_ms"], key=row["handlers_ms"].get)
        print(f"| {depth} | {crop[2]}×{crop[3]} | {row['slider_to_preview_p50_ms']:.0f} / "
              f"{row['slider_to_preview_p95_ms']:.0f} ms | "
              f"{row['backend_round_trip_p50_ms']:.0f} ms | {ratio:.2f}× | "
              f"{row['longest_handler_ms']:.1f} ms ({worst}) |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
