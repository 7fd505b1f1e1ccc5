"""The super-resolve section: PSNR/SSIM and fine detail against bicubic, an α-sweep sheet,
DNI against pixel blending, filter correlation and speed."""

from __future__ import annotations

import statistics

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from dni.correlation import correlation_report
from models.recipes.data import to_image

from .common import Paths, Section, luma, met, ms_per_crop, table, val_images
from .engine import ReportFamily
from .figures import Cell, sheet
from .training import training_summary

SCALE = 4
SHAVE = 4  # border pixels left out of PSNR/SSIM, as SR papers do
WINDOW = 96  # side of the crops in the sheets
SHARPER = 1.2  # the GAN member must carry this much more fine detail than the L1 member
LAPLACIAN = torch.tensor([[0, 1, 0], [1, -4, 1], [0, 1, 0]], dtype=torch.float32)[None, None]

Outputs = dict[str, torch.Tensor]  # name in the table -> output image
Case = tuple[torch.Tensor, torch.Tensor, Outputs]  # HR, LR, outputs


def laplacian(x: torch.Tensor) -> torch.Tensor:
    """|Laplacian| of the luma: where the fine detail is."""
    y = torch.from_numpy(luma(x))[None, None].float()
    return F.conv2d(y, LAPLACIAN).abs()


def hf_energy(x: torch.Tensor) -> float:
    """Mean |Laplacian| of luma: how much fine detail an image carries."""
    return laplacian(x).mean().item()


def detailed_window(x: torch.Tensor, side: int) -> tuple[int, int]:
    """Top-left corner (multiple of 4) of the side x side window with the most fine detail."""
    energy = F.avg_pool2d(laplacian(x), side, stride=side // 4)
    row, col = divmod(int(energy.flatten().argmax()), energy.shape[-1])
    return row * (side // 4) // 4 * 4, col * (side // 4) // 4 * 4


def outputs(fam: ReportFamily, lr: torch.Tensor) -> Outputs:
    return {"bicubic": F.interpolate(lr, scale_factor=SCALE, mode="bicubic",
                                     align_corners=False).clamp(0, 1),
            "faithful (s=0)": fam.run(lr, strength=0.0),
            "balanced (s=0.5)": fam.run(lr, strength=0.5),
            "detailed (s=1)": fam.run(lr, strength=1.0)}


def score(outs: Outputs, hr: torch.Tensor, scores: dict[str, dict[str, list[float]]]) -> None:
    """Adds each output's PSNR and SSIM (luma, border shaved) and relative detail."""
    from skimage.metrics import structural_similarity

    yb = luma(hr)[SHAVE:-SHAVE, SHAVE:-SHAVE]
    for name, out in outs.items():
        ya = luma(out)[SHAVE:-SHAVE, SHAVE:-SHAVE]
        d = scores.setdefault(name, {"psnr": [], "ssim": [], "hf": []})
        d["psnr"].append(10 * np.log10(1 / float(np.mean((ya - yb) ** 2))))
        d["ssim"].append(structural_similarity(ya, yb, data_range=1.0))
        d["hf"].append(hf_energy(out) / hf_energy(hr))


def measure(fam: ReportFamily, section: Section) -> tuple[dict[str, Case], dict[str, float]]:
    """The PSNR/SSIM table over the full held-out images; returns the cases for the
    sheets and each output's mean relative detail."""
    from models.recipes.super_resolve import downscale

    cases: dict[str, Case] = {}
    scores: dict[str, dict[str, list[float]]] = {}
    for key, img in val_images().items():
        h, w = (img.shape[-2] // SCALE) * SCALE, (img.shape[-1] // SCALE) * SCALE
        hr = img[..., :h, :w]
        lr = downscale(hr)
        cases[key] = (hr, lr, outputs(fam, lr))
        score(cases[key][2], hr, scores)
    mean = {name: {k: statistics.mean(v) for k, v in d.items()} for name, d in scores.items()}
    rows = [(name, m["psnr"], f"{m['ssim']:.4f}", f"{m['hf']:.2f}") for name, m in mean.items()]
    gain = mean["faithful (s=0)"]["psnr"] - mean["bicubic"]["psnr"]
    section.lines += [
        "### PSNR/SSIM on the held-out images (Y channel, 4 px border shaved)", "",
        "LR = antialiased bicubic ×4 downscale of each full held-out image. 'detail' = mean "
        "|Laplacian| of the output relative to the ground truth's (1.0 = as much fine detail "
        "as the original; a sharper member moves towards or past 1).", "",
        table(["output", "PSNR (dB)", "SSIM", "detail vs HR"], rows), "",
        f"L1 member − bicubic: **{gain:+.2f} dB** (target ≥ +1.0 dB: {met(gain >= 1.0)}).", ""]
    section.targets.append(f"- super-resolve L1 member ≥ bicubic + 1.0 dB: {gain:+.2f} dB — "
                           f"{met(gain >= 1.0)}")
    return cases, {name: m["hf"] for name, m in mean.items()}


def sheet_rows(fam: ReportFamily, case: Case) -> tuple[list[Cell], list[Cell]]:
    """One row of the α-sweep sheet and one of DNI against a pixel blend, on the most
    detailed window of the image."""
    hr, lr, outs = case
    cy, cx = detailed_window(hr, WINDOW)

    def crop(t: torch.Tensor) -> Image.Image:
        return to_image(t[..., cy:cy + WINDOW, cx:cx + WINDOW])

    side = WINDOW // SCALE
    lr_crop = lr[..., cy // SCALE:cy // SCALE + side, cx // SCALE:cx // SCALE + side]
    sweep = [("bicubic", crop(outs["bicubic"]))]
    sweep += [(f"s={s:.2f}", crop(fam.run(lr, strength=s))) for s in (0, 0.25, 0.5, 0.75, 1)]
    sweep += [("ground truth", crop(hr))]
    pixel = 0.5 * fam.run(lr_crop, strength=0.0) + 0.5 * fam.run(lr_crop, strength=1.0)
    versus = [("DNI s=0.5", to_image(fam.run(lr_crop, strength=0.5))),
              ("pixel blend 0.5", to_image(pixel)), ("ground truth", crop(hr))]
    return sweep, versus


def sheets(paths: Paths, fam: ReportFamily, cases: dict[str, Case]) -> None:
    # Textured images show the difference between members best.
    textured = [k for k in ("baboon", "butterfly", "coffee") if k in cases]
    rows = [sheet_rows(fam, cases[key]) for key in (textured or list(cases))[:3]]
    sheet([sweep for sweep, _ in rows], paths.figures / "sr-sweep.png", cell=192)
    sheet([versus for _, versus in rows], paths.figures / "sr-dni-vs-pixel.png", cell=192)


def section(paths: Paths) -> Section:
    fam = ReportFamily(paths.models / "super-resolve")
    out = Section(["## super-resolve ×4", "", training_summary(paths.models, "super-resolve"),
                   ""])
    cases, detail = measure(fam, out)
    sheets(paths, fam, cases)
    states = fam.member_states()
    rep = correlation_report(states[0], states[1], (fam.labels[0], fam.labels[1]))
    ms = ms_per_crop(fam.model_at(strength=0.5), side=64)[0]
    out.lines += ["### α-sweep (faithful → detailed), 96 px crops shown at 2×", "",
                  "![sr sweep](report/sr-sweep.png)", "",
                  "### DNI vs pixel interpolation at 0.5", "",
                  "![sr dni vs pixel](report/sr-dni-vs-pixel.png)", "",
                  f"Filter correlation faithful ↔ detailed: median {rep.median:.3f}, minimum "
                  f"{rep.minimum:.3f} ({rep.verdict}).", "",
                  f"Speed: {ms:.0f} ms (median) for a 64x64 → 256x256 upscale (2 threads).", ""]
    faithful, detailed = detail["faithful (s=0)"], detail["detailed (s=1)"]
    out.targets.append(
        f"- super-resolve GAN member sharper (fine detail {detailed:.2f} vs {faithful:.2f} of "
        f"the original's; criterion: ≥ {SHARPER}× the L1 member's) — "
        f"{met(detailed > SHARPER * faithful)}; judge the sheets too")
    return out
