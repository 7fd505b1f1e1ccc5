"""The denoise section: members against classical denoisers, DNI between the trained noise
levels against pixel blending and against models fine-tuned there, filter correlation,
speed and a strength sweep."""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from dni.checkpoints import build_model, read_state_dict
from dni.correlation import correlation_report
from dni_client.mixing import position_to_strength
from models.recipes.data import to_image

from .baselines import classical
from .common import Paths, Section, centre_crop, met, ms_per_crop, noisy, psnr, table, val_images
from .engine import ReportFamily
from .figures import plot_lines, plot_xy, sheet
from .training import training_summary

CROP = 256  # BM3D is slow: the comparison runs on centre crops of this side
DENOISE_SIGMAS = (15, 25, 50)
BETWEEN_SIGMAS = (20, 35, 45)
GRID = [round(i / 50, 2) for i in range(51)]
BASELINES = {"blur": "blur", "NLM": "nlm", "BM3D": "bm3d"}  # table column: denoiser
NEAR_REF_DB = 0.3  # how close to a model fine-tuned at that sigma DNI must come

Crops = dict[str, torch.Tensor]
Denoise = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class Between:
    """One noise level no member was trained at."""

    sigma: int
    strength: float  # the best on the grid
    dni: float
    nominal: float
    at_nominal: float
    pixel_alpha: float
    pixel: float
    ref: float | None  # a model fine-tuned at this sigma, when there is one

    def row(self) -> tuple[object, ...]:
        ref = "n/a" if self.ref is None else f"{self.ref:.2f}"
        gap = "n/a" if self.ref is None else f"{self.ref - self.dni:.2f}"
        return (self.sigma, f"{self.strength:.2f}", self.dni, f"{self.nominal:.3f}",
                self.at_nominal, f"{self.pixel_alpha:.2f}", self.pixel, ref, gap)

    def target(self) -> str:
        near = "no reference" if self.ref is None else met(self.ref - self.dni <= NEAR_REF_DB)
        return (f"- denoise sigma {self.sigma}: best DNI beats pixel interpolation — "
                f"{met(self.dni > self.pixel)}; within {NEAR_REF_DB} dB of the fine-tuned "
                f"reference — {near}")


def onehot(i: int, n: int) -> list[float]:
    return [float(i == j) for j in range(n)]


def mean_psnr(crops: Crops, sigma: int, denoise: Denoise) -> float:
    return statistics.mean(psnr(denoise(noisy(c, sigma, k)), c) for k, c in crops.items())


# -- trained levels ----------------------------------------------------------------------
def level_means(fam: ReportFamily, crops: Crops, sigma: int) -> dict[str, float]:
    """Mean PSNR of the noisy input, each baseline and the family at one noise level."""
    s = position_to_strength(sigma, fam.manifest.positions)
    scores: dict[str, list[float]] = {name: [] for name in ("noisy", *BASELINES, "DNI family")}
    for key, clean in crops.items():
        x = noisy(clean, sigma, key)
        scores["noisy"].append(psnr(x, clean))
        for name, kind in BASELINES.items():
            scores[name].append(psnr(classical(kind, clean, x, sigma, key), clean))
        scores["DNI family"].append(psnr(fam.run(x, strength=s), clean))
    return {k: statistics.mean(v) for k, v in scores.items()}


def trained_levels(fam: ReportFamily, crops: Crops, section: Section) -> None:
    rows = []
    for sigma in DENOISE_SIGMAS:
        m = level_means(fam, crops, sigma)
        won = m["DNI family"] > max(m["NLM"], m["BM3D"])
        rows.append((sigma, m["noisy"], m["blur"], m["NLM"], m["BM3D"], m["DNI family"],
                     m["DNI family"] - m["BM3D"], "yes" if won else "**no**"))
        section.targets.append(f"- denoise sigma {sigma}: beats NLM and BM3D — {met(won)}")
    section.lines += [
        f"### PSNR (dB, RGB) at the trained noise levels: {len(crops)} held-out images "
        f"({', '.join(crops)}), {CROP}x{CROP} centre crops",
        "",
        "Noise is unclipped AWGN with a fixed seed per image. BM3D: `bm3d.bm3d_rgb` with "
        "the true sigma. NLM: OpenCV `fastNlMeansDenoisingColored` on the 8-bit (clipped) "
        "noisy image, h = hColor tuned per image from {0.6, 0.8, 1.0, 1.2}·sigma against the "
        "clean image (an oracle choice that flatters it). Blur: a Gaussian blur whose width "
        "is tuned per image the same way, the floor a learnt denoiser should clear. The "
        "family is evaluated at the member's own strength.", "",
        table(["sigma", "noisy", "blur (best width)", "NLM (best h)", "BM3D", "DNI family",
               "family − BM3D", "beats both"], rows), ""]


# -- levels in between -------------------------------------------------------------------
def reference_score(paths: Paths, fam: ReportFamily, crops: Crops, sigma: int) -> float | None:
    """Mean PSNR of the report-only model fine-tuned at `sigma`, if it was trained."""
    path = paths.refs / f"denoise-ref{sigma}.safetensors"
    if not path.exists():
        return None
    model = build_model(fam.manifest.architecture, fam.manifest.architecture_options,
                        read_state_dict(path)).float()
    with torch.inference_mode():
        return mean_psnr(crops, sigma, lambda x: model(x).clamp(0, 1))


def between_level(paths: Paths, fam: ReportFamily, crops: Crops,
                  sigma: int) -> tuple[Between, list[float], list[float]]:
    """The level's outcome, and DNI's PSNR curve over the strengths (grid, PSNR)."""
    pos = fam.manifest.positions
    i_lo = max(i for i, p in enumerate(pos) if p < sigma)
    i_hi = min(i for i, p in enumerate(pos) if p > sigma)
    # Strengths between the two neighbouring members (where the optimum must lie).
    s_lo, s_hi = position_to_strength(pos[i_lo], pos), position_to_strength(pos[i_hi], pos)
    grid = [g for g in GRID if s_lo - 1e-9 <= g <= s_hi + 1e-9]
    curve = [mean_psnr(crops, sigma, lambda x, s=s: fam.run(x, strength=s)) for s in grid]
    # The paper's baseline: blend the two neighbouring members' outputs, best alpha.
    outs = {k: (fam.run(noisy(c, sigma, k), weights=onehot(i_lo, len(pos))),
                fam.run(noisy(c, sigma, k), weights=onehot(i_hi, len(pos))))
            for k, c in crops.items()}
    pixel = [statistics.mean(psnr((1 - a) * lo + a * hi, crops[k]) for k, (lo, hi) in outs.items())
             for a in GRID]
    ref = reference_score(paths, fam, crops, sigma)
    nominal = position_to_strength(sigma, pos)
    at_nominal = mean_psnr(crops, sigma, lambda x: fam.run(x, strength=nominal))
    best, best_pixel = int(np.argmax(curve)), int(np.argmax(pixel))
    result = Between(sigma, grid[best], curve[best], nominal, at_nominal, GRID[best_pixel],
                     pixel[best_pixel], ref)
    return result, grid, curve


def reference_length(paths: Paths) -> str:
    """The fine-tuned references' step counts, as the text quotes them."""
    record = paths.refs / "training.json"
    steps = sorted({r["steps"] for r in json.loads(record.read_text())["members"].values()}
                   ) if record.exists() else []
    return " or ".join(f"{n:,}" for n in steps) or "an unrecorded number of"


Curves = dict[str, tuple[list[float], list[float]]]


def between_levels(paths: Paths, fam: ReportFamily, crops: Crops, section: Section) -> Curves:
    """The table of in-between levels; returns DNI's PSNR-vs-strength curve per level."""
    rows, curves = [], {}
    for sigma in BETWEEN_SIGMAS:
        result, grid, curve = between_level(paths, fam, crops, sigma)
        rows.append(result.row())
        curves[f"DNI, sigma {sigma}"] = (grid, curve)
        section.targets.append(result.target())
    section.lines += [
        "### Noise levels no member was trained at", "",
        "Best DNI strength (grid of 0.02, chosen on these same crops) vs the best pixel blend "
        "of the two neighbouring members' outputs (same grid), the nominal strength "
        "(sigma − 15)/35, and a reference model fine-tuned from sigma 25 at that sigma for "
        f"{reference_length(paths)} steps (report only, models/report/refs/; the members' "
        "steps are in the table above).", "",
        table(["sigma", "best strength", "DNI PSNR", "nominal strength", "DNI @ nominal",
               "best pixel alpha", "pixel interp PSNR", "fine-tuned ref", "ref − DNI"], rows),
        ""]
    return curves


def strength_curves(paths: Paths, curves: Curves, section: Section) -> None:
    plot_xy(curves, "strength", "PSNR (dB)", paths.figures / "denoise-strength-curves.png",
            "denoise: PSNR vs strength")
    section.lines += ["![psnr vs strength](report/denoise-strength-curves.png)", ""]


# -- correlation, speed, sweep -----------------------------------------------------------
def correlation(paths: Paths, fam: ReportFamily, section: Section) -> None:
    """Filter correlation (paper eq. 3) between each pair of members, per layer."""
    states, labels = fam.member_states(), fam.labels
    rows, per_layer = [], {}
    for a, b in ((0, 1), (1, 2), (0, 2)):
        rep = correlation_report(states[a], states[b], (labels[a], labels[b]))
        per_layer[f"{labels[a]} vs {labels[b]}"] = [layer.median for layer in rep.layers]
        rows.append((f"{labels[a]} ↔ {labels[b]}", f"{rep.median:.3f}", f"{rep.minimum:.3f}",
                     " ".join(f"{x.median:.2f}" for x in rep.layers), rep.verdict))
    plot_lines(per_layer, "layer", "median filter correlation",
               paths.figures / "denoise-correlation.png",
               "denoise: filter correlation per layer (eq. 3)")
    section.lines += ["### Filter correlation (paper eq. 3)", "",
                      table(["pair", "median", "min", "per-layer medians (input → output)",
                             "verdict"], rows), "",
                      "![correlation](report/denoise-correlation.png)", ""]


def speed_and_sweep(paths: Paths, fam: ReportFamily, crops: Crops, section: Section) -> None:
    ms, ms_best = ms_per_crop(fam.model_at(strength=0.5))
    key = next(iter(crops))
    clean = centre_crop(crops[key], 160)
    x = noisy(clean, 35, key)
    row = [("noisy sigma 35", to_image(x.clamp(0, 1)))]
    row += [(f"s={s:.2f}", to_image(fam.run(x, strength=s))) for s in (0, 0.25, 0.5, 0.75, 1)]
    row += [("clean", to_image(clean))]
    sheet([row], paths.figures / "denoise-sweep.png", cell=160)
    section.lines += [
        f"Speed: **{ms:.0f} ms** per 256x256 crop (median of 15; fastest {ms_best:.0f} "
        "ms; 2 threads, on a 2-core CPU shared with other jobs; target ≤ 250 ms).", "",
        "![denoise sweep](report/denoise-sweep.png)", ""]
    section.targets.append(f"- denoise speed ≤ 250 ms per 256x256: median {ms:.0f} ms, fastest "
                           f"{ms_best:.0f} ms — {met(ms <= 250)} (median)")


def section(paths: Paths) -> Section:
    fam = ReportFamily(paths.models / "denoise")
    crops = {k: centre_crop(v, CROP) for k, v in val_images().items()}
    out = Section(["## denoise", "", training_summary(paths.models, "denoise"), ""])
    trained_levels(fam, crops, out)
    curves = between_levels(paths, fam, crops, out)
    correlation(paths, fam, out)
    strength_curves(paths, curves, out)
    speed_and_sweep(paths, fam, crops, out)
    return out
