"""The dejpeg section: the family against the JPEG input and a tuned classical smoothing
baseline at four qualities, the strength `auto` picks, DNI against pixel blending between
members at qualities no member was trained at, blockiness, speed and a strength sweep.

Every JPEG is written by Pillow (4:2:0, as the family was trained) from the whole held-out
photo, and the comparison runs on a 256x256 crop near its centre whose corner lies on the
16 px grid, so the crop's blocks are the file's blocks, as when a whole image is filtered.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from dni import jpeg_quality
from dni.weighting import position_to_strength
from models.recipes import data
from models.recipes.data import to_image
from models.recipes.dejpeg import CHROMA_BLOCK, jpeg

from .common import Paths, Section, met, ms_per_crop, psnr, table, val_images
from .engine import ReportFamily
from .figures import plot_xy, sheet
from .training import training_summary

CROP = 256
QUALITIES = (10, 20, 30, 50)
# Issue 20's bars: dB over the JPEG input at the strength `auto` picks.
GAIN_DB = {10: 1.5, 20: 1.5, 30: 1.5, 50: 1.0}
BETWEEN = (20, 50)  # qualities between two members: DNI against pixel blending
GRID = [round(i / 20, 2) for i in range(21)]  # along one segment between two members
STRENGTHS = [round(i / 10, 1) for i in range(11)]  # the oracle's choices over the whole axis
TUNING_PHOTOS = 8  # training photos the baseline's settings are chosen on
MAX_MS = 100.0
SWEEP_PHOTO = "butterfly"  # wings: edges and fine texture, where artefacts show

Pairs = dict[str, tuple[torch.Tensor, torch.Tensor]]  # name -> (JPEG crop, clean crop)
Restore = Callable[[torch.Tensor], torch.Tensor]


# -- data --------------------------------------------------------------------------------
def compressed(x: torch.Tensor, quality: int) -> torch.Tensor:
    """A 1x3xHxW image in [0, 1] through Pillow's JPEG encoder at `quality` (4:2:0)."""
    pixels = x[0].mul(255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    out = jpeg(np.ascontiguousarray(pixels), quality)
    return torch.from_numpy(out.copy()).permute(2, 0, 1)[None].float().div_(255.0)


def grid_crop(x: torch.Tensor, side: int = CROP) -> torch.Tensor:
    """A centre crop whose corner is on the JPEG MCU grid."""
    h, w = x.shape[-2:]
    top = (h - side) // 2 // CHROMA_BLOCK * CHROMA_BLOCK
    left = (w - side) // 2 // CHROMA_BLOCK * CHROMA_BLOCK
    return x[..., top:top + side, left:left + side].contiguous()


def pairs_at(images: dict[str, torch.Tensor], quality: int) -> Pairs:
    return {k: (grid_crop(compressed(v, quality)), grid_crop(v)) for k, v in images.items()}


def tuning_images() -> dict[str, torch.Tensor]:
    """Every seventh training photo (never a held-out one), for the baseline's settings."""
    paths = sorted((data.IMAGES / "train").glob("*.png"))[::7][:TUNING_PHOTOS]
    return {p.stem: data.to_tensor(Image.open(p)) for p in paths}


def mean_psnr(pairs: Pairs, restore: Restore) -> float:
    return statistics.mean(psnr(restore(bad), clean) for bad, clean in pairs.values())


# -- the classical baseline ---------------------------------------------------------------
def gaussian(x: torch.Tensor, width: float) -> torch.Tensor:
    from torchvision.transforms.functional import gaussian_blur

    return gaussian_blur(x, 2 * int(3 * width + 0.5) + 1, width)


def bilateral(x: torch.Tensor, space: float, tone: float) -> torch.Tensor:
    """Edge-preserving smoothing: neighbours weighted by distance and by colour difference
    (Tomasi and Manduchi 1998), the usual quick cure for blocking."""
    radius = int(2 * space + 0.5)
    size = 2 * radius + 1
    padded = F.pad(x, (radius,) * 4, mode="reflect")
    patches = F.unfold(padded, size).view(1, 3, size * size, *x.shape[-2:])
    offsets = torch.arange(size, dtype=torch.float32) - radius
    spatial = torch.exp(-(offsets[:, None] ** 2 + offsets[None, :] ** 2) / (2 * space ** 2))
    diff = ((patches - x[:, :, None]) ** 2).sum(dim=1, keepdim=True)
    weights = spatial.reshape(1, 1, -1, 1, 1) * torch.exp(-diff / (2 * tone ** 2))
    return (patches * weights).sum(dim=2) / weights.sum(dim=2)


BASELINES: dict[str, Restore] = {
    **{f"Gaussian blur, sigma {w}": (lambda x, w=w: gaussian(x, w)) for w in (0.5, 0.7, 1.0, 1.4)},
    **{f"bilateral, space {s}, tone {t}": (lambda x, s=s, t=t: bilateral(x, s, t))
       for s in (1.0, 2.0) for t in (0.04, 0.08, 0.15)},
}


def tuned_baseline(tuning: dict[str, torch.Tensor], quality: int) -> str:
    """The baseline setting with the best mean PSNR on the training photos at `quality`."""
    pairs = pairs_at(tuning, quality)
    return max(BASELINES, key=lambda name: mean_psnr(pairs, BASELINES[name]))


# -- the sections' parts ------------------------------------------------------------------
@dataclass(frozen=True)
class Level:
    quality: int
    jpeg: float
    baseline: float
    baseline_name: str
    read: list[int | None]  # the quality `auto` read off each JPEG's pixels
    auto: float  # PSNR at the strength `auto` picks from the pixels
    best_strength: float
    best: float
    blockiness_in: float
    blockiness_out: float

    def row(self) -> tuple[object, ...]:
        read = ", ".join("none" if q is None else str(q) for q in self.read)
        return (self.quality, self.jpeg, self.baseline, self.baseline_name, read, self.auto,
                self.auto - self.jpeg, f"{self.best_strength:.2f}", self.best,
                f"{self.blockiness_in:.2f} → {self.blockiness_out:.2f}")

    def target(self) -> str:
        need = GAIN_DB[self.quality]
        return (f"- dejpeg quality {self.quality}: ≥ {need} dB over the JPEG input at the "
                f"`auto` strength ({self.auto - self.jpeg:+.2f} dB) — "
                f"{met(self.auto - self.jpeg >= need)}; beats the tuned baseline — "
                f"{met(self.auto > self.baseline)}")


def auto_output(fam: ReportFamily, bad: torch.Tensor) -> tuple[int | None, torch.Tensor]:
    """What `--strength auto` makes of these pixels: (quality read, result). Where no
    quality can be read, `auto` refuses and the user keeps the JPEG: so does the report."""
    pixels = (bad[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    quality = jpeg_quality.quality_from_pixels(pixels)
    if quality is None:
        return None, bad
    return quality, fam.run(bad, strength=position_to_strength(quality, fam.manifest.positions))


def blockiness_of(x: torch.Tensor) -> float:
    return jpeg_quality.blockiness((x[0].permute(1, 2, 0).numpy() * 255).round()
                                   .astype(np.uint8)).ratio


def level(fam: ReportFamily, images: dict[str, torch.Tensor],
          tuning: dict[str, torch.Tensor], quality: int) -> Level:
    pairs = pairs_at(images, quality)
    name = tuned_baseline(tuning, quality)
    read, auto_scores, blocky_in, blocky_out = [], [], [], []
    for bad, clean in pairs.values():
        found, out = auto_output(fam, bad)
        read.append(found)
        auto_scores.append(psnr(out, clean))
        blocky_in.append(blockiness_of(bad))
        blocky_out.append(blockiness_of(out))
    curve = [mean_psnr(pairs, lambda x, s=s: fam.run(x, strength=s)) for s in STRENGTHS]
    best = int(np.argmax(curve))
    return Level(quality, mean_psnr(pairs, lambda x: x), mean_psnr(pairs, BASELINES[name]),
                 name, read, statistics.mean(auto_scores), STRENGTHS[best], curve[best],
                 statistics.mean(blocky_in), statistics.mean(blocky_out))


def levels(fam: ReportFamily, images: dict[str, torch.Tensor], section: Section) -> None:
    tuning = tuning_images()
    rows = []
    for quality in QUALITIES:
        result = level(fam, images, tuning, quality)
        rows.append(result.row())
        section.targets.append(result.target())
    section.lines += [
        f"### PSNR (dB, RGB) by JPEG quality: {len(images)} held-out photos "
        f"({', '.join(images)}), {CROP}x{CROP} crops on the block grid", "",
        "JPEG: the decoded input. Baseline: the best of a Gaussian blur and a bilateral "
        f"filter over {len(BASELINES)} settings, chosen per quality on {TUNING_PHOTOS} "
        "training photos (never on the held-out ones). `auto`: the strength "
        "`dni apply --strength auto` picks, from the quality read off each crop's pixels "
        "(dni/jpeg_quality.py; listed per photo); the gain is over the JPEG input. Best: the "
        "best strength on a 0.1 grid chosen on these same crops (an oracle). Blockiness: "
        "luma steps across the 8 px grid over steps elsewhere (1 = no blocks), input → "
        "output at `auto`.", "",
        table(["quality", "JPEG", "baseline", "baseline setting", "quality read (pixels)",
               "DNI @ auto", "auto − JPEG", "best strength", "DNI @ best", "blockiness"],
              rows), ""]


@dataclass(frozen=True)
class Blend:
    quality: int
    dni_strength: float
    dni: float
    pixel_alpha: float
    pixel: float

    def row(self) -> tuple[object, ...]:
        return (self.quality, f"{self.dni_strength:.2f}", self.dni, f"{self.pixel_alpha:.2f}",
                self.pixel, self.dni - self.pixel)


def onehot(i: int, n: int) -> list[float]:
    return [float(i == j) for j in range(n)]


def blend(fam: ReportFamily, images: dict[str, torch.Tensor], quality: int
          ) -> tuple[Blend, list[float], list[float]]:
    """DNI between the two members either side of `quality` against blending their
    outputs; returns the outcome and both curves over the segment's 0-1."""
    pairs = pairs_at(images, quality)
    pos = fam.manifest.positions
    lo = max(i for i, p in enumerate(pos) if p > quality)  # the gentler neighbour
    hi = lo + 1
    s_lo, s_hi = (position_to_strength(pos[i], pos) for i in (lo, hi))
    dni_curve = [mean_psnr(pairs, lambda x, t=t: fam.run(x, strength=s_lo + t * (s_hi - s_lo)))
                 for t in GRID]
    outs = [(fam.run(bad, weights=onehot(lo, len(pos))),
             fam.run(bad, weights=onehot(hi, len(pos))), clean) for bad, clean in pairs.values()]
    pixel_curve = [statistics.mean(psnr((1 - t) * a + t * b, c) for a, b, c in outs)
                   for t in GRID]
    d, p = int(np.argmax(dni_curve)), int(np.argmax(pixel_curve))
    result = Blend(quality, s_lo + GRID[d] * (s_hi - s_lo), dni_curve[d], GRID[p],
                   pixel_curve[p])
    return result, dni_curve, pixel_curve


def blends(paths: Paths, fam: ReportFamily, images: dict[str, torch.Tensor],
           section: Section) -> None:
    rows, curves = [], {}
    for quality in BETWEEN:
        result, dni_curve, pixel_curve = blend(fam, images, quality)
        rows.append(result.row())
        curves[f"DNI, quality {quality}"] = (GRID, dni_curve)
        curves[f"pixel blend, quality {quality}"] = (GRID, pixel_curve)
        section.targets.append(f"- dejpeg quality {quality}: best DNI beats the best pixel "
                               f"blend of the neighbouring members — "
                               f"{met(result.dni > result.pixel)}")
    plot_xy(curves, "position between the two neighbouring members (0 = gentler)",
            "PSNR (dB)", paths.figures / "dejpeg-dni-vs-pixel.png",
            "dejpeg: DNI vs pixel blend between members")
    section.lines += [
        "### Qualities no member was trained at: DNI vs pixel blending", "",
        "Between the two members either side (quality 20: q30 and q10; quality 50: q60 and "
        "q30), DNI blends their weights, the pixel baseline blends their outputs; each at "
        "its best point on a 0.05 grid over the segment.", "",
        table(["quality", "best DNI strength", "DNI PSNR", "best pixel alpha", "pixel PSNR",
               "DNI − pixel"], rows), "",
        "![dni vs pixel](report/dejpeg-dni-vs-pixel.png)", ""]


def speed_and_sweep(paths: Paths, fam: ReportFamily, images: dict[str, torch.Tensor],
                    section: Section) -> None:
    ms, ms_best = ms_per_crop(fam.model_at(strength=0.5))
    # The denoise family's larger network of the same design, timed right after it: the
    # two show what the machine gives at this moment and what the smaller net saves.
    denoise_ms, _ = ms_per_crop(ReportFamily(paths.models / "denoise").model_at(strength=0.5))
    rows = []
    name = SWEEP_PHOTO if SWEEP_PHOTO in images else sorted(images)[0]
    for quality in (10, 30):
        bad = grid_crop(compressed(images[name], quality), 128)
        clean = grid_crop(images[name], 128)
        row = [(f"JPEG q{quality}", to_image(bad))]
        row += [(f"s={s:.2f}", to_image(fam.run(bad, strength=s))) for s in (0, 0.25, 0.5, 0.75, 1)]
        rows.append([*row, ("clean", to_image(clean))])
    sheet(rows, paths.figures / "dejpeg-sweep.png", cell=192)
    section.lines += [
        f"Speed: **{ms:.0f} ms** per 256x256 crop (median of 15; fastest {ms_best:.0f} ms; "
        f"2 threads, on a 2-core CPU shared with other jobs; target ≤ {MAX_MS:.0f} ms). It is "
        "the denoise family's network made smaller (32 features and one residual block per "
        "stage against 48 and two); that larger net, timed at the same moment: "
        f"{denoise_ms:.0f} ms (median).", "",
        "Sweep (strength 0 = light, quality 60; 1 = strong, quality 10), 128 px crops shown "
        "at 1.5×:", "", "![dejpeg sweep](report/dejpeg-sweep.png)", ""]
    section.targets.append(f"- dejpeg speed ≤ {MAX_MS:.0f} ms per 256x256: median {ms:.0f} ms, "
                           f"fastest {ms_best:.0f} ms — {met(ms <= MAX_MS)} (median)")


def section(paths: Paths) -> Section:
    fam = ReportFamily(paths.models / "dejpeg")
    images = val_images()
    out = Section(["## dejpeg", "", training_summary(paths.models, "dejpeg"), ""])
    levels(fam, images, out)
    blends(paths, fam, images, out)
    speed_and_sweep(paths, fam, images, out)
    return out
