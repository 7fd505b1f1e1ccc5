"""The families shipped in models/: manifests load, members build, the slider does something."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from dni.blend import interpolate
from dni.checkpoints import build_model, read_state_dict
from dni.manifest import load_manifest
from dni.weighting import strength_to_weights

MODELS = Path(__file__).resolve().parents[1] / "models"
FAMILIES = sorted(p.parent.name for p in MODELS.glob("*/family.toml"))
REQUIRED = {"denoise", "super-resolve", "stylize"}
MAX_BYTES = 60 * 1024 * 1024


def test_contract_families_are_bundled() -> None:
    assert REQUIRED <= set(FAMILIES)


def test_bundled_weights_are_small_fp16_safetensors() -> None:
    files = [m.file for name in FAMILIES for m in load_manifest(MODELS / name).members]
    assert sum(f.stat().st_size for f in set(files)) <= MAX_BYTES
    for f in files:
        assert f.suffix == ".safetensors"
        assert all(t.dtype == torch.float16 for t in read_state_dict(f).values()), f


def _image(side: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    ys, xs = torch.meshgrid(torch.linspace(0, 1, side), torch.linspace(0, 1, side), indexing="ij")
    base = torch.stack([xs, ys, (xs + ys) / 2]) * 0.6 + 0.2
    return (base + 0.1 * torch.randn(3, side, side, generator=g)).clamp(0, 1).unsqueeze(0)


@pytest.mark.parametrize("name", FAMILIES)
def test_family_members_build_and_the_ends_differ(name: str) -> None:
    manifest = load_manifest(MODELS / name)
    states = [read_state_dict(m.file) for m in manifest.members]
    x = _image(34)  # even but not a multiple of 4: exercises the padding paths
    outputs = []
    for strength in (0.0, 1.0):
        sd = interpolate(states, strength_to_weights(strength, manifest.positions))
        model = build_model(manifest.architecture, manifest.architecture_options, sd)
        with torch.inference_mode():
            y = model(x.to(next(model.parameters()).dtype)).float()
        assert y.shape == (1, 3, 34 * manifest.scale, 34 * manifest.scale)
        assert torch.isfinite(y).all()
        outputs.append(y)
    assert (outputs[0] - outputs[1]).abs().mean() > 1e-3


@pytest.mark.parametrize("member", range(3))
def test_denoise_members_clean_every_channel_and_subpixel(member: int) -> None:
    """The net works on 2x2 pixel-unshuffled planes, so a dead output channel would leave
    one colour at one sub-pixel position fully noisy: each of the 12 planes must be cleaned."""
    manifest = load_manifest(MODELS / "denoise")
    sigma = manifest.positions[member] / 255
    model = build_model(manifest.architecture, manifest.architecture_options,
                        read_state_dict(manifest.members[member].file)).float()
    g = torch.Generator().manual_seed(1)
    clean = torch.full((1, 3, 96, 96), 0.5)
    with torch.inference_mode():
        residual = model(clean + sigma * torch.randn(clean.shape, generator=g)) - clean
    per_plane = torch.nn.functional.pixel_unshuffle(residual, 2).std(dim=(0, 2, 3)) / sigma
    assert per_plane.max() < 0.35, per_plane


def test_super_resolve_is_spandrel_compact_and_matches_the_training_net() -> None:
    from spandrel import ModelLoader
    from spandrel.architectures.Compact import Compact

    manifest = load_manifest(MODELS / "super-resolve")
    sd = read_state_dict(manifest.members[0].file)
    descriptor = ModelLoader().load_from_state_dict(sd)
    assert descriptor.architecture.id == "Compact" and descriptor.scale == 4
    loaded = build_model("auto", {}, sd)
    num_feat = sd["body.0.weight"].shape[0]
    num_conv = (len({k.split(".")[1] for k in sd}) - 3) // 2
    reference = Compact(num_in_ch=3, num_out_ch=3, num_feat=num_feat, num_conv=num_conv,
                        upscale=4, act_type="prelu")
    reference.load_state_dict({k: v.float() for k, v in sd.items()})
    x = _image(16)
    with torch.inference_mode():
        assert torch.allclose(loaded.float()(x), reference.eval()(x), atol=1e-5)


def test_denoise_tiles_leave_no_visible_seams() -> None:
    """The U-Net sees further than its tiles' 32 px of context (tile_pad), so tiled output
    is not bit-exact; the feathered overlaps must still keep the difference below what
    shows."""
    import numpy as np
    from conftest import photo

    import dni

    family = dni.load_family(MODELS / "denoise")
    rng = np.random.default_rng(0)
    clean = photo().astype(np.float32) / 255.0
    noisy = np.clip(clean + rng.normal(0, 25 / 255, clean.shape), 0, 1).astype(np.float32)
    whole = family.apply(noisy, strength=0.3, tile=4096)
    tiled = family.apply(noisy, strength=0.3, tile=48)
    difference = np.abs(tiled - whole) * 255
    assert difference.mean() < 0.5 and difference.max() < 8, (difference.mean(), difference.max())
