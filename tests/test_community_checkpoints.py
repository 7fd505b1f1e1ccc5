"""Community checkpoints: architecture "auto" (spandrel), .pth wrappers, no unpickling."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import photo
from safetensors.torch import save_file
from spandrel import ModelLoader
from spandrel.architectures.Compact import Compact
from spandrel.architectures.DnCNN import DnCNN

import dni

MANIFEST = """name = "{name}"
task = "{task}"
architecture = "auto"
scale = {scale}
[[members]]
label = "A"
file = "{a}"
position = 0
[[members]]
label = "B"
file = "{b}"
position = 1
"""


def perturbed(state: dict[str, torch.Tensor], seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {k: v + 0.05 * torch.randn(v.shape, generator=g) if v.is_floating_point() else v
            for k, v in state.items()}


def write_pair(folder: Path, name: str, task: str, scale: int, a: dict, b: dict,
               suffix: str, wrap: str | None = None) -> Path:
    folder = folder / name
    folder.mkdir()
    for label, state in (("a", a), ("b", b)):
        path = folder / f"{label}{suffix}"
        if suffix == ".safetensors":
            save_file({k: v.contiguous() for k, v in state.items()}, str(path))
        else:
            torch.save({wrap: state} if wrap else state, str(path))
    (folder / "family.toml").write_text(MANIFEST.format(
        name=name, task=task, scale=scale, a=f"a{suffix}", b=f"b{suffix}"))
    return folder


def test_real_esrgan_compact_pair_is_detected_and_blended(tmp_path) -> None:
    torch.manual_seed(0)
    a = Compact(num_feat=16, num_conv=4, upscale=4).state_dict()
    b = perturbed(a, 1)
    folder = write_pair(tmp_path, "compact", "super-resolve", 4, a, b, ".safetensors")
    family = dni.load_family(folder)
    img = photo()[:40, :48]
    out = family.apply(img, strength=0.0)
    assert out.shape == (160, 192, 3)
    # strength 0 is exactly member A as spandrel itself loads it
    reference = ModelLoader().load_from_state_dict(a).model.eval()
    with torch.inference_mode():
        x = torch.from_numpy(img.astype(np.float32) / 255).permute(2, 0, 1)[None]
        expected = reference(x)[0].permute(1, 2, 0).numpy()
    expected = np.clip(expected * 255 + 0.5, 0, 255).astype(np.uint8)
    assert np.abs(out.astype(int) - expected.astype(int)).max() <= 1
    middle = family.apply(img, strength=0.5).astype(int)
    assert np.abs(middle - out.astype(int)).mean() > 0.1


@pytest.mark.parametrize("wrap", [None, "params_ema", "state_dict"])
def test_pth_checkpoints_with_trainer_wrappers(tmp_path, wrap) -> None:
    """KAIR-layout DnCNN (spandrel needs >= 8 blocks) saved as .pth, as trainers do."""
    torch.manual_seed(0)
    a = DnCNN(in_nc=3, out_nc=3, nc=8, nb=8).state_dict()
    folder = write_pair(tmp_path, "dncnn", "denoise", 1, a, perturbed(a, 2), ".pth", wrap)
    family = dni.load_family(folder)
    out = family.apply(photo(), weights=[0.5, 0.5])
    assert out.shape == photo().shape


def test_inspect_community_pair(tmp_path, capsys) -> None:
    from dni.cli import main

    torch.manual_seed(0)
    a = Compact(num_feat=16, num_conv=4, upscale=4).state_dict()
    folder = write_pair(tmp_path, "compact", "super-resolve", 4, a, perturbed(a, 1),
                        ".safetensors")
    assert main(["inspect", str(folder / "a.safetensors"), str(folder / "b.safetensors")]) == 0
    assert "verdict: correlated" in capsys.readouterr().out
