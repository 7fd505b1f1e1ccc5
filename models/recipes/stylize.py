"""Train the `stylize` family (three styles) and the `stylize-stroke` family.

    python -m models.recipes.stylize                        # every member, in order
    python -m models.recipes.stylize --member elephants --minutes 12
    python -m models.recipes.stylize --smoke --out /tmp/x

A Johnson-style transformer (`dni-stylize`) is trained on starry_night; elephants and
graffiti are fine-tuned from it, so the three members can be mixed N-way (paper eq. 2).
`broad` (stylize-stroke) is fine-tuned from starry_night with the style image enlarged
2×, i.e. bigger strokes: its slider runs from fine to broad strokes.

Losses: style = Gram matrices of a fixed random-weight multi-scale conv net (only the seed
is stored), content = that net's third-scale activations plus a low-passed pixel term,
and a little total variation. No pretrained network is involved.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image

from dni import archs

from . import common, data, losses

ARCH = {"features": 16, "blocks": 4}
SMOKE_ARCH = {"features": 4, "blocks": 1}
LOSS_SEED = 1234
STYLE_SIDE = 384  # longest side of the style image when its Grams are taken
# member -> (style image, style size factor, parent, minutes, lr, output family)
MEMBERS: dict[str, tuple[str, float, str | None, float, float, str]] = {
    "starry_night": ("starry_night", 1.0, None, 25, 1e-3, "stylize"),
    "elephants": ("elephants", 1.0, "starry_night", 12, 5e-4, "stylize"),
    "graffiti": ("graffiti", 1.0, "starry_night", 12, 5e-4, "stylize"),
    "broad": ("starry_night", 2.0, "starry_night", 12, 5e-4, "stylize-stroke"),
}
WEIGHTS = {"content": 1.0, "lowpass": 2.0, "style": 3.0, "tv": 1e-4}


def member_path(out: Path, member: str) -> Path:
    return out / MEMBERS[member][5] / f"{member}.safetensors"


def style_grams(feat: losses.RandomFeatures, style: torch.Tensor) -> list[torch.Tensor]:
    with torch.no_grad():
        return [losses.gram(f) for f in feat(style)]


def stylize_losses(feat: losses.RandomFeatures, out: torch.Tensor, content: torch.Tensor,
                   grams: list[torch.Tensor]) -> dict[str, torch.Tensor]:
    fo = feat(out)
    with torch.no_grad():
        fc = feat(content)
    c = F.mse_loss(fo[2], fc[2]) / fc[2].pow(2).mean().clamp_min(1e-8)
    low = F.mse_loss(F.avg_pool2d(out, 8), F.avg_pool2d(content, 8))
    s = sum(F.mse_loss(losses.gram(f), g.expand(f.shape[0], -1, -1)) / g.pow(2).mean()
            for f, g in zip(fo, grams, strict=True)) / len(grams)
    tv = (out[..., 1:, :] - out[..., :-1, :]).abs().mean() \
        + (out[..., :, 1:] - out[..., :, :-1]).abs().mean()
    return {"content": c, "lowpass": low, "style": s, "tv": tv}


def load_style(name: str, factor: float, smoke: bool) -> torch.Tensor:
    if smoke:
        return data.smoke_images(1, 64, seed=7)[0].float().div(255).unsqueeze(0)
    img = Image.open(data.STYLES / f"{name}.png").convert("RGB")
    scale = STYLE_SIDE * factor / max(img.size)
    img = img.resize((round(img.width * scale), round(img.height * scale)), Image.BICUBIC)
    return data.to_tensor(img)


def train_member(member: str, out: Path, runs: Path, minutes: float | None, steps: int | None,
                 smoke: bool) -> None:
    style_name, factor, parent, default_minutes, lr, family = MEMBERS[member]
    arch = SMOKE_ARCH if smoke else ARCH
    cfg = common.RunConfig(
        family=family, member=member, steps=steps or (4 if smoke else 200_000),
        minutes=minutes if minutes is not None else (0.5 if smoke else default_minutes),
        lr=lr, batch=2 if smoke else 4, patch=32 if smoke else 160,
        init_from=str(member_path(out, parent)) if parent else None,
        warmup=0, seed=0 if parent is None else 1,
        extra={"arch": arch, "style": style_name, "style_side": STYLE_SIDE * factor,
               "loss_net_seed": LOSS_SEED, "loss_weights": WEIGHTS})
    torch.manual_seed(cfg.seed)
    model = archs.build("dni-stylize", arch)
    if parent:
        common.load_member_into(model, member_path(out, parent))
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    feat = losses.RandomFeatures(LOSS_SEED, widths=(8, 8, 8, 8) if smoke else (32, 64, 128, 128))
    grams = style_grams(feat, load_style(style_name, factor, smoke))
    images = data.smoke_images() if smoke else data.load_folder(data.IMAGES / "train")
    sampler = common.CropSampler(images, cfg.patch, seed=cfg.seed)
    # Styles differ a lot in how far photos are from them; dividing the style term by its
    # value for unstylised photos gives every style the same initial style/content balance.
    with torch.no_grad():
        probe = common.CropSampler(images, cfg.patch, seed=999)(8)
        style_norm = stylize_losses(feat, probe, probe, grams)["style"].item()
    cfg.extra["style_norm"] = style_norm
    target = member_path(out, member)

    def step(_: int, __: float) -> dict[str, float]:
        content = sampler(cfg.batch)
        parts = stylize_losses(feat, model(content), content, grams)
        parts["style"] = parts["style"] / style_norm
        loss = sum(WEIGHTS[k] * v for k, v in parts.items())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return {k: v.item() for k, v in parts.items()}

    trainer = common.Trainer(cfg, model, {"adam": opt}, runs / "stylize" / member)
    result = trainer.run(step, on_save=lambda: common.export_member(model, target))
    common.write_training_record(out / family / "training.json", cfg, result)
    if member == "starry_night":
        # The stroke family's fine-stroke end is the base member itself.
        stroke = out / "stylize-stroke"
        stroke.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(target, stroke / "fine.safetensors")


def main(argv: list[str] | None = None) -> None:
    p = common.recipe_parser(__doc__, ["all", *MEMBERS])
    args, runs = common.parse_recipe_args(p, argv)
    for member in (list(MEMBERS) if args.member == "all" else [args.member]):
        train_member(member, args.out, runs, args.minutes, args.steps, args.smoke)


if __name__ == "__main__":
    main()
