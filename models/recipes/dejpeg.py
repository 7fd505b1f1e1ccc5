"""Train the `dejpeg` family: JPEG quality 30 first, then 10 and 60 fine-tuned from it.

    python -m models.recipes.dejpeg                  # every member, in order
    python -m models.recipes.dejpeg --member q10 --minutes 20
    python -m models.recipes.dejpeg --smoke --out /tmp/x   # seconds, synthetic data

Self-supervised: each clean training crop is compressed with Pillow's JPEG encoder (the
member's quality, 4:2:0 chroma subsampling, as most cameras and web images) and the net
learns to undo it (MSE). Half the crops keep the JPEG grid where the engine's tiles put
it (block corners on the net's 8 px grid, chroma blocks at either 16 px phase); the other
half are cut at any offset, as a JPEG that was cropped after it was saved.

The network is the denoise family's U-Net (`dni-denoise-unet`) made smaller (32 features,
one residual block per stage instead of 48 and two) so that a 256 px preview takes under
100 ms on two CPU cores. The q30 base starts from the shipped denoise sigma 25 weights cut
down to that size (models/recipes/shrink.py) instead of from scratch: the task differs but
the layers that see edges and flat areas carry over, which saves CPU time (the training
record says so). q10 and q60 are fine-tuned from q30 (paper Sec. 3.2), which
keeps their filters correlated so that blending their weights gives in-between qualities.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from dni import archs
from dni.archs.denoise import DenoiseUNet

from . import common, data, shrink
from .denoise import ARCH as DENOISE_ARCH
from .denoise import ARCH_NAME, SMOKE_ARCH

FAMILY = "dejpeg"
# A quarter of the denoise net's multiply-adds per pixel: 79 against 181 ms per 256 px crop
# here (2 threads).
ARCH = {"features": 32, "blocks": 1, "middle": 2}
# member -> (JPEG quality, parent member or None, default minutes, default lr)
MEMBERS: dict[str, tuple[int, str | None, float, float]] = {
    "q30": (30, None, 45, 3e-4),
    "q10": (10, "q30", 20, 2e-4),
    "q60": (60, "q30", 20, 2e-4),
}
# What the base starts from (not in --smoke, whose net is smaller).
BASE_INIT = common.ROOT / "denoise" / "sigma25.safetensors"
CHROMA_BLOCK = 16  # a 4:2:0 MCU: the largest period of the JPEG grid


def jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    """An HxWx3 uint8 image through Pillow's JPEG encoder (4:2:0) and back."""
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG", quality=quality, subsampling=2)
    buf.seek(0)
    return np.asarray(Image.open(buf).convert("RGB"))


def grid_offsets(batch: int, gen: torch.Generator) -> list[tuple[int, int]]:
    """Where each crop starts inside its compressed, one-MCU-larger region: half on the
    8 px grid (0 or 8 each way), half anywhere."""
    offsets = []
    for _ in range(batch):
        if torch.rand(1, generator=gen).item() < 0.5:
            dy, dx = (8 * torch.randint(0, 2, (2,), generator=gen)).tolist()
        else:
            dy, dx = torch.randint(0, CHROMA_BLOCK, (2,), generator=gen).tolist()
        offsets.append((dy, dx))
    return offsets


def compressed_pairs(regions: torch.Tensor, quality: int, patch: int,
                     offsets: list[tuple[int, int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """(JPEG, clean) crops of side `patch` in [0, 1] from Bx3xSxS regions in [0, 1]."""
    pixels = regions.mul(255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    bad, good = [], []
    for arr, (dy, dx) in zip(pixels, offsets, strict=True):
        squashed = jpeg(np.ascontiguousarray(arr), quality)
        bad.append(squashed[dy:dy + patch, dx:dx + patch])
        good.append(arr[dy:dy + patch, dx:dx + patch])

    def stack(crops: list[np.ndarray]) -> torch.Tensor:
        return torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float().div_(255.0)

    return stack(bad), stack(good)


def train_step(model: nn.Module, opt: torch.optim.Optimizer, bad: torch.Tensor,
               clean: torch.Tensor, precision: str) -> float:
    return common.mse_step(model, opt, bad, clean, precision)


def member_path(out: Path, member: str) -> Path:
    return out / FAMILY / f"{member}.safetensors"


def _init_weights(member: str, out: Path, smoke: bool, start: Path | None
                  ) -> tuple[Path | None, dict[str, str]]:
    """The weights a member starts from, and what the training record says about it."""
    parent = MEMBERS[member][1]
    if start:
        return start, {}
    if parent:
        return member_path(out, parent), {}
    if smoke:
        return None, {}
    if not BASE_INIT.exists():
        raise SystemExit(f"{BASE_INIT} is missing: the q30 base starts from the denoise "
                         "family's sigma 25 member (train it with models.recipes.denoise)")
    return BASE_INIT, {"initialised_from": "denoise sigma25 (48 features, two blocks per "
                                          "stage) cut down to this net's size by keeping its "
                                          "busiest channels and first blocks, to save CPU "
                                          "time; the JPEG task is learnt from there"}


def _load_start(model: nn.Module, init: Path, samples: torch.Tensor) -> None:
    """Load `init` into `model`; the denoise base is larger and is cut down first."""
    if init != BASE_INIT:
        common.load_member_into(model, init)
        return
    big = archs.build(ARCH_NAME, DENOISE_ARCH)
    common.load_member_into(big, init)
    shrink.shrink(big, model, samples)  # type: ignore[arg-type]


def _shown(path: Path) -> str:
    """A path as the training record keeps it: relative to the repository when inside."""
    try:
        return str(path.resolve().relative_to(common.ROOT.parent))
    except ValueError:
        return str(path)


def train_member(member: str, out: Path, runs: Path, minutes: float | None, steps: int | None,
                 smoke: bool, start: Path | None = None, lr: float | None = None,
                 precision: str = "fp32", patch: int = 64, batch: int = 16) -> None:
    quality, _, default_minutes, default_lr = MEMBERS[member]
    init, notes = _init_weights(member, out, smoke, start)
    arch = SMOKE_ARCH if smoke else ARCH
    images = data.smoke_images() if smoke else data.load_folder(data.IMAGES / "train")
    cfg = common.RunConfig(
        family=FAMILY, member=member, steps=steps or (4 if smoke else 200_000),
        minutes=minutes if minutes is not None else (0.5 if smoke else default_minutes),
        lr=lr or default_lr, batch=4 if smoke else batch, patch=32 if smoke else patch,
        init_from=_shown(init) if init else None, warmup=0 if (init or smoke) else 200,
        seed={"q30": 0}.get(member, 1),
        extra={"quality": quality, "subsampling": "4:2:0", "encoder": "Pillow",
               "arch": arch, "loss": "MSE", "precision": precision,
               "grid": "half on the 8 px grid, half at any offset",
               "train_images": len(images)})
    torch.manual_seed(cfg.seed)
    model = archs.build(ARCH_NAME, arch)
    sampler = common.CropSampler(images, cfg.patch + CHROMA_BLOCK, seed=cfg.seed)
    offsets_gen = torch.Generator().manual_seed(cfg.seed + 100)
    if init:
        # Channels are kept by what they do on compressed crops like the training ones.
        probe, _ = compressed_pairs(sampler(32), quality, cfg.patch, [(0, 0)] * 32)
        _load_start(model, init, probe)
    model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)

    def step(_: int, __: float) -> dict[str, float]:
        bad, clean = compressed_pairs(sampler(cfg.batch), quality, cfg.patch,
                                      grid_offsets(cfg.batch, offsets_gen))
        bad = bad.contiguous(memory_format=torch.channels_last)
        return {"mse": train_step(model, opt, bad, clean, precision)}

    target = member_path(out, member)
    trainer = common.Trainer(cfg, model, {"adam": opt}, runs / FAMILY / member)
    result = trainer.run(step, on_save=lambda: common.export_member(model, target))
    common.write_training_record(out / FAMILY / "training.json", cfg, result, notes,
                                 continues=start is not None)


def main(argv: list[str] | None = None) -> None:
    p = common.recipe_parser(__doc__, ["all", *MEMBERS])
    common.add_continue_options(p)
    common.add_precision_option(p)
    common.add_crop_options(p)
    args, runs = common.parse_recipe_args(p, argv)
    common.check_crop_options(p, args, DenoiseUNet.size_multiple)
    precision = common.resolve_precision(args.precision)
    order = list(MEMBERS) if args.member == "all" else [args.member]
    for member in order:
        train_member(member, args.out, runs, args.minutes, args.steps, args.smoke,
                     args.continue_from, args.lr, precision, args.patch, args.batch)


if __name__ == "__main__":
    main()
