"""Tables of how each family was trained, read from its training.json (nothing typed in)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from models.recipes import data

from .common import table

Run = dict[str, Any]  # one run as the recipes record it

# Runs recorded before the recipes counted their photos trained on the first set only:
# opencv-doc, mate-backgrounds and scikit-image (the wallpaper photos came later).
FIRST_PHOTO_SET = len(data.OPENCV_TRAIN) + len(data.MATE_TRAIN) + len(data.SKIMAGE_TRAIN)
FAMILIES = ("denoise", "dejpeg", "super-resolve", "stylize", "stylize-stroke")


def read_runs(models: Path, family: str) -> dict[str, Run] | None:
    """member -> its latest run (earlier runs under "earlier"), or None without a record."""
    path = models / family / "training.json"
    return json.loads(path.read_text())["members"] if path.exists() else None


def photo_count(extra: dict[str, Any]) -> str:
    """"55", or "55 + 34 large" for a run that also cropped from images/train-large/."""
    total = int(extra.get("train_images", FIRST_PHOTO_SET))
    large = int(extra.get("large_photos", 0))
    return f"{total - large} + {large} large" if large else str(total)


def _member_row(member: str, run: Run) -> tuple[object, ...]:
    earlier: list[Run] = run.get("earlier", [])
    first = (earlier or [run])[0]  # a continued member: where its first run began
    start = first.get("init_from") and Path(first["init_from"]).stem or "scratch"
    continued = f" (+{len(earlier)} continued run{'s' * (len(earlier) > 1)})" if earlier else ""
    every_run = [*earlier, run]
    # Runs before the recipe had --precision trained in fp32.
    precision = ", ".join(r["extra"].get("precision", "fp32") for r in every_run)
    photos = ", ".join(photo_count(r["extra"]) for r in every_run)
    lrs = ", ".join(f"{r['lr']:g}" for r in every_run)
    # A run can change the net (the denoise base grew blocks between runs).
    nets = "; ".join(" ".join(f"{k}={v}" for k, v in r["extra"].get("arch", {}).items())
                     for r in every_run)
    return (member, start + continued, run["steps"], f"{run['seconds'] / 60:.1f}", run["batch"],
            run["patch"], lrs, precision, photos, nets)


def training_summary(models: Path, family: str) -> str:
    """One row per member: where it started, its runs' settings and photo counts."""
    runs = read_runs(models, family)
    if runs is None:
        return "_no training record_"
    return table(["member", "fine-tuned from", "steps", "minutes", "batch", "patch",
                  "lr (per run)", "precision (per run)", "photos (per run)", "net (per run)"],
                 [_member_row(m, r) for m, r in runs.items()])


def compute_summary(models: Path) -> str:
    """Training images and CPU time per family, read from the training records."""
    train = len(list((data.IMAGES / "train").glob("*.png")))
    parts, threads = [], set()
    for family in FAMILIES:
        runs = read_runs(models, family)
        if runs is not None:
            minutes = sum(r["seconds"] for r in runs.values()) / 60
            steps = sum(r["steps"] for r in runs.values())
            threads |= {r["threads"] for r in runs.values()}
            parts.append(f"{family} {minutes:.0f} min / {steps} steps")
    counts = " or ".join(str(t) for t in sorted(threads))
    return (f"Training: {train} photos in models/recipes/data.py today (runs before the "
            f"wallpaper photos were added used the first {FIRST_PHOTO_SET}; each family's table "
            f"gives each run's count), {counts} CPU thread(s) per "
            "run on a shared 2-core machine, no GPU. Wall time per family (all members): "
            + "; ".join(parts) + ".")
