"""A small Johnson-style feed-forward style transformer.

Downsample twice with strided convolutions, a few residual blocks, upsample back with
nearest-neighbour + convolution (no transposed convolutions: fewer checkerboards), with
affine instance norm throughout, as in Johnson et al. 2016 / Ulyanov et al. 2016.
Styles fine-tuned from one another keep correlated filters and can be mixed N-way (DNI).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from . import register


def _conv(cin: int, cout: int, k: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.ReflectionPad2d(k // 2), nn.Conv2d(cin, cout, k, stride))


class _Residual(nn.Module):
    def __init__(self, ch: int) -> None:
        super().__init__()
        self.conv1 = _conv(ch, ch, 3)
        self.in1 = nn.InstanceNorm2d(ch, affine=True)
        self.conv2 = _conv(ch, ch, 3)
        self.in2 = nn.InstanceNorm2d(ch, affine=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.in1(self.conv1(x)))
        return x + self.in2(self.conv2(y))


class StylizeNet(nn.Module):
    def __init__(self, features: int = 16, blocks: int = 4) -> None:
        super().__init__()
        f1, f2, f3 = features, features * 2, features * 4
        self.down = nn.ModuleList([_conv(3, f1, 9), _conv(f1, f2, 3, 2), _conv(f2, f3, 3, 2)])
        self.down_norm = nn.ModuleList([nn.InstanceNorm2d(c, affine=True) for c in (f1, f2, f3)])
        self.res = nn.Sequential(*[_Residual(f3) for _ in range(blocks)])
        self.up = nn.ModuleList([_conv(f3, f2, 3), _conv(f2, f1, 3)])
        self.up_norm = nn.ModuleList([nn.InstanceNorm2d(c, affine=True) for c in (f2, f1)])
        self.out = _conv(f1, 3, 9)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        # Pad to a multiple of 4 so the two stride-2 steps come back to the input size.
        pad_h, pad_w = (-h) % 4, (-w) % 4
        y = F.pad(x, (0, pad_w, 0, pad_h), mode="reflect") if pad_h or pad_w else x
        y = y * 2 - 1
        for conv, norm in zip(self.down, self.down_norm, strict=True):
            y = F.relu(norm(conv(y)))
        y = self.res(y)
        for conv, norm in zip(self.up, self.up_norm, strict=True):
            y = F.relu(norm(conv(F.interpolate(y, scale_factor=2, mode="nearest"))))
        y = torch.sigmoid(self.out(y))
        return y[..., :h, :w]


@register("dni-stylize", {"features": (1, 512), "blocks": (0, 64)})
def build_stylize(**options: object) -> nn.Module:
    return StylizeNet(**options)  # type: ignore[arg-type]
