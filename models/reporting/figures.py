"""The report's pictures: labelled image sheets and line plots."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageDraw

Cell = tuple[str, Image.Image]  # label, image


def sheet(rows: list[list[Cell]], path: Path, cell: int = 192) -> None:
    """A labelled grid of images; each row a sweep."""
    cols = max(len(r) for r in rows)
    pad, label_h = 4, 16
    out = Image.new("RGB", (cols * (cell + pad) + pad, len(rows) * (cell + label_h + pad) + pad),
                    "white")
    draw = ImageDraw.Draw(out)
    for i, row in enumerate(rows):
        for j, (label, img) in enumerate(row):
            x0, y0 = pad + j * (cell + pad), pad + i * (cell + label_h + pad)
            # Small crops are enlarged with visible pixels, never smoothed.
            resample = Image.NEAREST if img.width < cell else Image.LANCZOS
            out.paste(img.resize((cell, cell), resample), (x0, y0 + label_h))
            draw.text((x0 + 2, y0 + 2), label, fill="black")
    path.parent.mkdir(parents=True, exist_ok=True)
    out.save(path, optimize=True)


def plot_lines(series: dict[str, list[float]], xlabel: str, ylabel: str, path: Path,
               title: str, x: Sequence[float] | None = None) -> None:
    """Every series against the same x (0, 1, 2, ... by default)."""
    plot_xy({k: (list(x) if x is not None else list(range(len(v))), v)
             for k, v in series.items()}, xlabel, ylabel, path, title)


def plot_xy(series: dict[str, tuple[list[float], list[float]]], xlabel: str, ylabel: str,
            path: Path, title: str) -> None:
    import matplotlib  # report-only extra: imported here so the rest loads without it

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.2), dpi=100)
    for name, (xs, ys) in series.items():
        ax.plot(xs, ys, marker=".", label=name)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
