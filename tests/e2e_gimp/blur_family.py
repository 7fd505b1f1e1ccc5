"""A tiny, deterministic 'denoise' family for the GIMP end-to-end test: a 3x3 box blur.

Member 0 is a light blur (80 % original + 20 % box), member 1 the full box blur, as
residual single-convolution `plain-conv` networks; the two are exactly correlated, so
every strength is a valid DNI blend. On Gaussian noise a 3x3 box blur divides the noise's
standard deviation by about 3: enough to check "denoise lowers noise" without waiting
for a trained network.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import save_file

NAME = "blur-test"


def _state(amount: float) -> dict[str, torch.Tensor]:
    weight = torch.zeros(3, 3, 3, 3)
    for c in range(3):
        weight[c, c] = amount / 9.0
        weight[c, c, 1, 1] -= amount  # residual net: y = x + conv(x)
    return {"body.0.weight": weight, "body.0.bias": torch.zeros(3)}


def write_blur_family(root: Path) -> Path:
    folder = root / NAME
    folder.mkdir(parents=True, exist_ok=True)
    save_file(_state(0.2), str(folder / "light.safetensors"))
    save_file(_state(1.0), str(folder / "box.safetensors"))
    (folder / "family.toml").write_text("\n".join([
        f'name = "{NAME}"', 'task = "denoise"', 'title = "Blur Test"',
        'architecture = "plain-conv"', "scale = 1",
        "[architecture_options]", "features = 3", "layers = 1",
        "[axis]", 'name = "blur"', 'low = "light blur"', 'high = "box blur"',
        "[[members]]", 'label = "light"', 'file = "light.safetensors"', "position = 0",
        "[[members]]", 'label = "box"', 'file = "box.safetensors"', "position = 1",
        "[[presets]]", 'name = "Full"', "strength = 1.0",
    ]) + "\n")
    return folder
