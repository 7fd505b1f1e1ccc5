"""What every section shares: where things go, the held-out images, metrics, tables, timing."""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from models.recipes import data

ROOT = Path(__file__).resolve().parents[2]
MODELS = ROOT / "models"
# Classical denoisers are slow on a CPU (BM3D above all): their outputs are kept here.
CACHE = data.DATA / "report-cache"


@dataclass(frozen=True)
class Paths:
    """The families' folder; REPORT.md goes into it and its figures into report/."""

    models: Path = MODELS

    @property
    def figures(self) -> Path:
        return self.models / "report"

    @property
    def refs(self) -> Path:
        return self.figures / "refs"


@dataclass
class Section:
    """A section's markdown lines and its lines for the closing targets list."""

    lines: list[str] = field(default_factory=list)
    targets: list[str] = field(default_factory=list)


# -- images ----------------------------------------------------------------------------
def val_images() -> dict[str, torch.Tensor]:
    """The held-out photos (models/recipes/data.py: VALIDATION), by name, 1x3xHxW."""
    paths = sorted((data.IMAGES / "val").glob("*.png"))
    return {p.stem: data.to_tensor(Image.open(p)) for p in paths}


def centre_crop(x: torch.Tensor, side: int) -> torch.Tensor:
    h, w = x.shape[-2:]
    top, left = (h - side) // 2, (w - side) // 2
    return x[..., top:top + side, left:left + side].contiguous()


def noisy(x: torch.Tensor, sigma: float, key: str) -> torch.Tensor:
    """Unclipped AWGN, seeded by image name and sigma so every run sees the same noise."""
    seed = sum(map(ord, key)) * 1000 + int(sigma)
    g = torch.Generator().manual_seed(seed)
    return x + torch.randn(x.shape, generator=g) * sigma / 255.0


# -- metrics ---------------------------------------------------------------------------
def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """RGB PSNR in dB of `a` (clipped to [0, 1], as a saved image would be) against `b`."""
    mse = F.mse_loss(a.clamp(0, 1).double(), b.double()).item()
    return 10 * np.log10(1.0 / max(mse, 1e-12))


def luma(x: torch.Tensor) -> np.ndarray:
    """ITU-R BT.601 Y in [0, 1] (the usual SR evaluation channel)."""
    r, g, b = x[0].double().numpy()
    return (16 + 65.481 * r + 128.553 * g + 24.966 * b) / 255.0


# -- tables and timing -----------------------------------------------------------------
def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    def fmt(v: object) -> str:
        return f"{v:.2f}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def ms_per_crop(model: torch.nn.Module, side: int = 256, threads: int = 2,
                repeats: int = 15) -> tuple[float, float]:
    """(median, fastest) milliseconds per forward pass; the fastest is the least disturbed
    by other jobs on a shared machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    x = torch.rand(1, 3, side, side)
    times = []
    with torch.inference_mode():
        for _ in range(3):
            model(x)
        for _ in range(repeats):
            t = time.perf_counter()
            model(x)
            times.append((time.perf_counter() - t) * 1000)
    torch.set_num_threads(before)
    return statistics.median(times), min(times)


def met(ok: bool) -> str:
    return "met" if ok else "MISSED"
