"""A plain stack of 3x3 convolutions: the smallest useful architecture.

Used for tests, benchmarks and the identity family. With `scale > 1` it ends in a
pixel shuffle, like most super-resolution networks.
"""

from __future__ import annotations

import torch
from torch import nn

from . import register


class PlainConvNet(nn.Module):
    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 3,
        features: int = 16,
        layers: int = 3,
        scale: int = 1,
        norm: str = "none",
        residual: bool = True,
    ) -> None:
        super().__init__()
        if layers < 1:
            raise ValueError("layers must be >= 1")
        self.scale = scale
        self.residual = residual
        blocks: list[nn.Module] = []
        channels = in_channels
        for _ in range(layers - 1):
            blocks.append(nn.Conv2d(channels, features, 3, padding=1))
            if norm == "batch":
                blocks.append(nn.BatchNorm2d(features))
            elif norm == "instance":
                blocks.append(nn.InstanceNorm2d(features, affine=True))
            elif norm != "none":
                raise ValueError(f"norm must be none, batch or instance, not {norm!r}")
            blocks.append(nn.ReLU(inplace=True))
            channels = features
        blocks.append(nn.Conv2d(channels, out_channels * scale * scale, 3, padding=1))
        self.body = nn.Sequential(*blocks)
        self.shuffle = nn.PixelShuffle(scale) if scale > 1 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.shuffle(self.body(x))
        if not self.residual:
            return y
        base = x if self.scale == 1 else nn.functional.interpolate(x, scale_factor=self.scale)
        return base + y


@register("plain-conv", {"in_channels": (1, 64), "out_channels": (1, 64),
                          "features": (1, 1024), "layers": (1, 256), "scale": (1, 16)})
def build_plain(**options: object) -> nn.Module:
    return PlainConvNet(**options)  # type: ignore[arg-type]
