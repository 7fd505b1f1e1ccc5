"""Train the `super-resolve` ×4 family in Real-ESRGAN's Compact (SRVGG) layout.

    python -m models.recipes.super_resolve                    # faithful, then detailed
    python -m models.recipes.super_resolve --member detailed --minutes 20
    python -m models.recipes.super_resolve --smoke --out /tmp/x

The generator is spandrel's own SRVGGNetCompact class, so the shipped state dicts are
exactly what spandrel detects (`architecture = "auto"`). `faithful` is trained with
L1 + a little MSE; `detailed` is fine-tuned from it with a small L1 term, a relativistic
average GAN and discriminator feature matching (no pretrained VGG exists here).
Degradation: bicubic ×4 downscaling with antialiasing.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from spandrel.architectures.Compact import Compact
from torch import nn

from . import common, data, losses

ARCH = {"num_feat": 32, "num_conv": 12}
SMOKE_ARCH = {"num_feat": 8, "num_conv": 2}
SCALE = 4
MEMBERS: dict[str, tuple[str | None, float, float]] = {
    "faithful": (None, 35, 5e-4),
    "detailed": ("faithful", 20, 1e-4),
}
GAN_WEIGHTS = {"l1": 0.1, "feature_matching": 1.0, "gan": 0.01}


def build_generator(arch: dict[str, int]) -> nn.Module:
    return Compact(num_in_ch=3, num_out_ch=3, upscale=SCALE, act_type="prelu", **arch)


def downscale(hr: torch.Tensor) -> torch.Tensor:
    return F.interpolate(hr, scale_factor=1 / SCALE, mode="bicubic", antialias=True,
                         align_corners=False).clamp(0, 1)


def member_path(out: Path, member: str) -> Path:
    return out / "super-resolve" / f"{member}.safetensors"


def train_member(member: str, out: Path, runs: Path, minutes: float | None, steps: int | None,
                 smoke: bool, start: Path | None = None, lr: float | None = None) -> None:
    parent, default_minutes, default_lr = MEMBERS[member]
    lr = lr or default_lr
    arch = SMOKE_ARCH if smoke else ARCH
    cfg = common.RunConfig(
        family="super-resolve", member=member, steps=steps or (4 if smoke else 200_000),
        minutes=minutes if minutes is not None else (0.5 if smoke else default_minutes),
        lr=lr, batch=4 if smoke else 16, patch=32 if smoke else 128,
        init_from=str(start or member_path(out, parent)) if (start or parent) else None,
        warmup=0 if (parent or smoke or start) else 200, seed=0 if parent is None else 1,
        extra={"arch": arch, "scale": SCALE, "degradation": "bicubic antialias",
               "loss": "L1 + 0.1 MSE" if parent is None else f"weights {GAN_WEIGHTS}, RaGAN"})
    torch.manual_seed(cfg.seed)
    gen = build_generator(arch)
    if start or parent:
        common.load_member_into(gen, start or member_path(out, parent))
    opts: dict[str, torch.optim.Optimizer] = {
        "g": torch.optim.Adam(gen.parameters(), lr=cfg.lr, betas=(0.9, 0.99))}
    disc: losses.PatchDiscriminator | None = None
    if parent:
        disc = losses.PatchDiscriminator(features=8 if smoke else 16)
        opts["d"] = torch.optim.Adam(disc.parameters(), lr=cfg.lr, betas=(0.9, 0.99))
    images = data.smoke_images() if smoke else data.load_folder(data.IMAGES / "train")
    sampler = common.CropSampler(images, cfg.patch, seed=cfg.seed)
    target = member_path(out, member)

    def step_l1(_: int, __: float) -> dict[str, float]:
        hr = sampler(cfg.batch)
        sr = gen(downscale(hr))
        l1 = F.l1_loss(sr, hr)
        loss = l1 + 0.1 * F.mse_loss(sr, hr)
        opts["g"].zero_grad(set_to_none=True)
        loss.backward()
        opts["g"].step()
        return {"l1": l1.item()}

    def step_gan(_: int, __: float) -> dict[str, float]:
        assert disc is not None
        hr = sampler(cfg.batch)
        sr = gen(downscale(hr))
        # Generator: discriminator frozen for this half-step.
        disc.requires_grad_(False)
        real_logit, real_feats = disc(hr)
        fake_logit, fake_feats = disc(sr)
        l1 = F.l1_loss(sr, hr)
        fm = losses.feature_matching(real_feats, fake_feats)
        adv = losses.ragan_g_loss(real_logit.detach(), fake_logit)
        g_loss = GAN_WEIGHTS["l1"] * l1 + GAN_WEIGHTS["feature_matching"] * fm \
            + GAN_WEIGHTS["gan"] * adv
        opts["g"].zero_grad(set_to_none=True)
        g_loss.backward()
        opts["g"].step()
        disc.requires_grad_(True)
        real_logit, _ = disc(hr)
        fake_logit, _ = disc(sr.detach())
        d_loss = losses.ragan_d_loss(real_logit, fake_logit)
        opts["d"].zero_grad(set_to_none=True)
        d_loss.backward()
        opts["d"].step()
        return {"l1": l1.item(), "fm": fm.item(), "g_adv": adv.item(), "d": d_loss.item()}

    # The discriminator's state rides along in the checkpoint under its own prefix.
    both = nn.ModuleDict({"g": gen, **({"d": disc} if disc is not None else {})})
    trainer = common.Trainer(cfg, both, opts, runs / "super-resolve" / member)
    result = trainer.run(step_gan if parent else step_l1,
                         on_save=lambda: common.export_member(gen, target))
    common.write_training_record(out / "super-resolve" / "training.json", cfg, result,
                                 continues=start is not None)


def main(argv: list[str] | None = None) -> None:
    p = common.recipe_parser(__doc__, ["all", *MEMBERS])
    common.add_continue_options(p)
    args, runs = common.parse_recipe_args(p, argv)
    for member in (list(MEMBERS) if args.member == "all" else [args.member]):
        train_member(member, args.out, runs, args.minutes, args.steps, args.smoke,
                     args.continue_from, args.lr)


if __name__ == "__main__":
    main()
