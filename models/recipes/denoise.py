"""Train the `denoise` family: sigma 25 from scratch, then 15 and 50 fine-tuned from it.

    python -m models.recipes.denoise                 # every member, in order
    python -m models.recipes.denoise --member sigma50 --minutes 12
    python -m models.recipes.denoise --member ref35  # report-only reference at sigma 35
    python -m models.recipes.denoise --member sigma25 --lr 3e-4 \
        --continue-from models/denoise/sigma25.safetensors     # train the base longer
    python -m models.recipes.denoise --smoke --out /tmp/x   # seconds, synthetic data
    python -m models.recipes.denoise --precision fp32       # no bf16 autocast

Noise is additive white Gaussian noise on [0, 255] images, not clipped (the usual AWGN
benchmark). Fine-tuning from one parent is what keeps the filters correlated (paper
Sec. 3.2), so that interpolating the members' weights gives in-between noise levels.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from dni import archs
from dni.archs.denoise import DenoiseUNet, ResBlock

from . import common, data

ARCH_NAME = "dni-denoise-unet"
ARCH = {"features": 48, "blocks": 2, "middle": 2}
SMOKE_ARCH = {"features": 8, "blocks": 1, "middle": 1}
# member -> (sigma, parent member or None, default minutes, default lr)
MEMBERS: dict[str, tuple[float, str | None, float, float]] = {
    "sigma25": (25, None, 40, 5e-4),
    "sigma15": (15, "sigma25", 14, 2e-4),
    "sigma50": (50, "sigma25", 14, 2e-4),
}
REFERENCES = {f"ref{s}": (float(s), "sigma25", 14.0, 2e-4) for s in (20, 35, 45)}


def member_path(out: Path, member: str) -> Path:
    if member.startswith("ref"):
        return out / "report" / "refs" / f"denoise-{member}.safetensors"
    return out / "denoise" / f"{member}.safetensors"


def load_grown(model: nn.Module, path: Path) -> list[str]:
    """Load weights trained with fewer residual blocks per scale into `model`.

    The blocks the weights lack start as identities (second conv zeroed, as in zero-init
    residual training), so the grown net computes exactly what the old one did and training
    goes on from there instead of from scratch. Returns the new blocks' names.
    """
    missing, unexpected = common.load_member_into(model, path, strict=False)
    if unexpected:
        raise SystemExit(f"--grow: {path} has weights this net lacks: {sorted(unexpected)[:4]}")
    blocks = sorted({k.rsplit(".", 2)[0] for k in missing})
    named = dict(model.named_modules())
    if any(not isinstance(named.get(b), ResBlock) for b in blocks):
        raise SystemExit(f"--grow: {path} lacks more than whole residual blocks: {blocks}")
    with torch.no_grad():
        for b in blocks:
            named[b].conv2.weight.zero_()
            named[b].conv2.bias.zero_()
    return blocks


def train_step(model: nn.Module, opt: torch.optim.Optimizer, clean: torch.Tensor,
               sigma: float, precision: str, noise_gen: torch.Generator | None = None) -> float:
    """One MSE step on `clean` crops with fresh AWGN at `sigma` (0-255); returns the loss.

    benchmarks/bench_training.py times this same step.
    """
    noisy = clean + torch.randn(clean.shape, generator=noise_gen) * (sigma / 255.0)
    return common.mse_step(model, opt, noisy, clean, precision)


def train_member(member: str, out: Path, runs: Path, minutes: float | None, steps: int | None,
                 smoke: bool, start: Path | None = None, lr: float | None = None,
                 precision: str = "fp32", patch: int = 64, batch: int = 16,
                 large_photos: bool = False, grow: bool = False) -> None:
    sigma, parent, default_minutes, default_lr = {**MEMBERS, **REFERENCES}[member]
    lr = lr or default_lr
    init = start or (member_path(out, parent) if parent else None)
    arch = SMOKE_ARCH if smoke else ARCH
    images = data.smoke_images() if smoke else data.load_folder(data.IMAGES / "train")
    large: list[torch.Tensor] = []
    if large_photos and not smoke:
        large = data.load_folder(data.IMAGES / "train-large")
        if not large:
            raise SystemExit(f"--large-photos: {data.IMAGES / 'train-large'} holds no photos; "
                             "run python -m models.recipes.data")
    cfg = common.RunConfig(
        family="denoise", member=member, steps=steps or (4 if smoke else 200_000),
        minutes=minutes if minutes is not None else (0.5 if smoke else default_minutes),
        lr=lr, batch=4 if smoke else batch, patch=32 if smoke else patch,
        init_from=str(init) if init else None,
        warmup=0 if (init or smoke) else 200, seed={"sigma25": 0}.get(member, 1),
        extra={"sigma": sigma, "arch": arch, "loss": "MSE", "noise": "AWGN unclipped",
               "precision": precision, "train_images": len(images) + len(large),
               "large_photos": len(large), **({"grown": True} if grow else {})})
    torch.manual_seed(cfg.seed)
    # Channels-last is oneDNN's native conv layout (benchmarks/bench_training.py).
    model = archs.build(ARCH_NAME, arch).to(memory_format=torch.channels_last)
    if init and grow:
        print(f"grown from {init}: new identity blocks {', '.join(load_grown(model, init))}")
    elif init:
        common.load_member_into(model, init)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    sampler = common.CropSampler(images + large, cfg.patch, seed=cfg.seed)
    noise_gen = torch.Generator().manual_seed(cfg.seed + 100)
    target = member_path(out, member)

    def step(_: int, __: float) -> dict[str, float]:
        clean = sampler(cfg.batch).contiguous(memory_format=torch.channels_last)
        return {"mse": train_step(model, opt, clean, sigma, precision, noise_gen)}

    trainer = common.Trainer(cfg, model, {"adam": opt}, runs / "denoise" / member)
    result = trainer.run(step, on_save=lambda: common.export_member(model, target))
    record = out / ("report/refs/training.json" if member.startswith("ref")
                    else "denoise/training.json")
    common.write_training_record(record, cfg, result, continues=start is not None)


def main(argv: list[str] | None = None) -> None:
    p = common.recipe_parser(__doc__, ["all", "refs", *MEMBERS, *REFERENCES])
    common.add_continue_options(p)
    common.add_precision_option(p)
    common.add_crop_options(p)
    p.add_argument("--large-photos", action="store_true",
                   help=f"also crop from images/train-large/ (the big photos at up to "
                        f"{data.LARGE_SIDE} px, a second scale)")
    p.add_argument("--grow", action="store_true",
                   help="the --continue-from weights have fewer residual blocks per scale: "
                        "add the missing ones as identities and train on")
    args, runs = common.parse_recipe_args(p, argv)
    if args.grow and not args.continue_from:
        p.error("--grow needs --continue-from")
    common.check_crop_options(p, args, DenoiseUNet.size_multiple)
    precision = common.resolve_precision(args.precision)
    order = {"all": list(MEMBERS), "refs": list(REFERENCES)}.get(args.member, [args.member])
    for member in order:
        train_member(member, args.out, runs, args.minutes, args.steps, args.smoke,
                     args.continue_from, args.lr, precision, args.patch, args.batch,
                     args.large_photos, args.grow)


if __name__ == "__main__":
    main()
