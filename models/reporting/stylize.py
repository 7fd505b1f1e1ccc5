"""The stylize section: sweeps between the styles and N-way mixes, the stroke-size
family's sweep, how evenly the output moves along α, and filter correlation."""

from __future__ import annotations

import statistics

import torch
import torch.nn.functional as F

from dni.correlation import correlation_report
from models.recipes.data import to_image

from .common import Paths, Section, met, table, val_images
from .engine import ReportFamily
from .figures import Cell, plot_lines, sheet
from .training import training_summary

ALPHAS = (0, 0.25, 0.5, 0.75, 1)  # the sheets' columns
PAIRS = [(0, 1), (1, 2), (2, 0)]  # members swept between, in the sheet's row order
MIXES = ([0.6, 0.2, 0.2], [0.2, 0.6, 0.2], [0.2, 0.2, 0.6], [0.5, 0.0, 0.5])
STEPS = 20  # α steps in the smoothness measurement
MAX_OVER_MEAN = 2  # the largest step may be at most this many times the mean: no jumps


def content_image() -> torch.Tensor:
    """A held-out photo (coffee) scaled to 256 px high, its width a multiple of 4."""
    imgs = val_images()
    content = imgs.get("coffee", next(iter(imgs.values())))
    width = round(256 * content.shape[-1] / content.shape[-2]) // 4 * 4
    return F.interpolate(content, size=(256, width), mode="bilinear", antialias=True,
                         align_corners=False)


def pair_weights(count: int, a: int, b: int, t: float) -> list[float]:
    """Member weights a fraction t of the way from member a to member b."""
    w = [0.0] * count
    w[a] += 1 - t
    w[b] += t
    return w


def mean_steps(outs: list[torch.Tensor]) -> list[float]:
    """Mean absolute change (0-255) between consecutive outputs."""
    return [(outs[i + 1] - outs[i]).abs().mean().item() * 255 for i in range(len(outs) - 1)]


def sweep_sheet(paths: Paths, fam: ReportFamily, content: torch.Tensor) -> None:
    """A row per pair of styles, and a row of N-way mixes (paper eq. 2)."""
    labels, n = fam.labels, len(fam.labels)
    rows: list[list[Cell]] = []
    for a, b in PAIRS:
        row = [("content", to_image(content))]
        row += [(f"{labels[a]} > {labels[b]} {t:.2f}",
                 to_image(fam.run(content, weights=pair_weights(n, a, b, t)))) for t in ALPHAS]
        rows.append(row)
    mix = [("1/3 each", to_image(fam.run(content, weights=[0.3334, 0.3333, 0.3333])))]
    mix += [(" ".join(f"{v:.1f}" for v in w), to_image(fam.run(content, weights=w)))
            for w in MIXES]
    rows.append(mix)
    sheet(rows, paths.figures / "stylize-sweep.png", cell=176)


def stroke(paths: Paths, content: torch.Tensor, section: Section) -> list[float] | None:
    """The stroke-size family's sweep sheet; returns its steps along α (None if absent)."""
    if not (paths.models / "stylize-stroke" / "family.toml").exists():
        return None
    fam = ReportFamily(paths.models / "stylize-stroke")
    row = [("content", to_image(content))]
    row += [(f"stroke s={s:.2f}", to_image(fam.run(content, strength=s))) for s in ALPHAS]
    sheet([row], paths.figures / "stylize-stroke-sweep.png", cell=176)
    section.lines += ["### Stroke size (stylize-stroke family, fine → broad)", "",
                      training_summary(paths.models, "stylize-stroke"), "",
                      "![stroke sweep](report/stylize-stroke-sweep.png)", ""]
    return mean_steps([fam.run(content, strength=i / STEPS) for i in range(STEPS + 1)])


def smoothness(paths: Paths, smooth: dict[str, list[float]], section: Section) -> None:
    plot_lines(smooth, "step along α (0.05 each)", "mean |Δ output| (0-255)",
               paths.figures / "stylize-smoothness.png",
               "change per α step (no jumps = flat curve)",
               x=[(i + 0.5) / STEPS for i in range(STEPS)])
    rows = [(k, statistics.mean(v), max(v), f"{max(v) / max(statistics.mean(v), 1e-9):.2f}")
            for k, v in smooth.items()]
    section.lines += ["### Smoothness along α", "",
                      "Mean absolute change of the output (0-255 scale) per α step of 0.05; "
                      "max/mean near 1 means the output moves evenly, without jumps.", "",
                      table(["sweep", "mean step", "largest step", "largest / mean"], rows), "",
                      "![smoothness](report/stylize-smoothness.png)", ""]
    ratio = max(float(r[3]) for r in rows)  # as the table shows it
    section.targets.append(f"- stylize smoothness: largest step / mean step along α = "
                           f"{ratio:.2f} (criterion: ≤ {MAX_OVER_MEAN}, no jumps) — "
                           f"{met(ratio <= MAX_OVER_MEAN)}")


def section(paths: Paths) -> Section:
    fam = ReportFamily(paths.models / "stylize")
    labels, n = fam.labels, len(fam.labels)
    content = content_image()
    out = Section(["## stylize", "", training_summary(paths.models, "stylize"), ""])
    sweep_sheet(paths, fam, content)
    out.lines += ["### Sweeps between styles (network interpolation), and N-way mixes (eq. 2)",
                  "", "Content: a held-out image. Last row: weights (starry night, elephants, "
                  "graffiti).", "", "![stylize sweeps](report/stylize-sweep.png)", ""]
    smooth: dict[str, list[float]] = {}
    stroke_steps = stroke(paths, content, out)
    if stroke_steps is not None:
        smooth["stroke fine→broad"] = stroke_steps
    for a, b in PAIRS:
        outs = [fam.run(content, weights=pair_weights(n, a, b, i / STEPS))
                for i in range(STEPS + 1)]
        smooth[f"{labels[a]}→{labels[b]}"] = mean_steps(outs)
    smoothness(paths, smooth, out)
    states = fam.member_states()
    corr = [(f"{labels[a]} ↔ {labels[b]}",
             f"{correlation_report(states[a], states[b]).median:.3f}") for a, b in PAIRS]
    out.lines += [table(["pair", "median filter correlation"], corr), ""]
    return out
