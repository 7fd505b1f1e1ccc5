"""A small half-resolution U-Net colour denoiser for CPU previews.

The image is pixel-unshuffled to half resolution (3 -> 12 channels, as FFDNet does),
a three-scale U-Net (residual blocks, strided-conv downsampling, transposed-conv
upsampling, additive skips, as DRUNet) predicts the noise there, and the prediction is
shuffled back and subtracted (residual learning). Doubling the features at each halving
keeps every scale equally cheap per pixel while the receptive field grows to about
125 px with one residual block per scale, 180 px with the two the bundled family uses
(a plain stack of ten 3x3 layers at half resolution sees about 40 px); trained
side by side for the same minutes, this net denoised 1.7 dB better than such a stack
(models/recipes/README.md). Members at different noise levels share this layout, so they
interpolate (DNI).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from . import register


class ResBlock(nn.Module):
    def __init__(self, features: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(features, features, 3, padding=1)
        self.conv2 = nn.Conv2d(features, features, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.relu(self.conv1(x)))


class DenoiseUNet(nn.Module):
    """Three scales with features f, 2f, 4f; `blocks` residual blocks per encoder and
    decoder scale, `middle` at the coarsest."""

    # Unshuffle and two strided convs: outputs shift with the input only in steps of 8 px,
    # so the engine starts every tile on that grid (dni/checkpoints.py).
    size_multiple = 8

    def __init__(self, features: int = 48, blocks: int = 1, middle: int = 2,
                 channels: int = 3) -> None:
        super().__init__()
        inner = channels * 4
        f1, f2, f3 = features, 2 * features, 4 * features
        self.head = nn.Conv2d(inner, f1, 3, padding=1)
        self.enc1 = nn.Sequential(*[ResBlock(f1) for _ in range(blocks)])
        self.down1 = nn.Conv2d(f1, f2, 2, stride=2)
        self.enc2 = nn.Sequential(*[ResBlock(f2) for _ in range(blocks)])
        self.down2 = nn.Conv2d(f2, f3, 2, stride=2)
        self.middle = nn.Sequential(*[ResBlock(f3) for _ in range(middle)])
        self.up2 = nn.ConvTranspose2d(f3, f2, 2, stride=2)
        self.dec2 = nn.Sequential(*[ResBlock(f2) for _ in range(blocks)])
        self.up1 = nn.ConvTranspose2d(f2, f1, 2, stride=2)
        self.dec1 = nn.Sequential(*[ResBlock(f1) for _ in range(blocks)])
        self.tail = nn.Conv2d(f1, inner, 3, padding=1)
        with torch.no_grad():
            self.tail.weight.mul_(0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        # Any size: pad to the grid of the coarsest scale, crop afterwards.
        pad_h, pad_w = -h % self.size_multiple, -w % self.size_multiple
        y = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate") if pad_h or pad_w else x
        s1 = self.enc1(self.head(F.pixel_unshuffle(y, 2)))
        s2 = self.enc2(self.down1(s1))
        z = self.middle(self.down2(s2))
        z = self.dec2(self.up2(z) + s2)
        z = self.dec1(self.up1(z) + s1)
        noise = F.pixel_shuffle(self.tail(z), 2)
        return (y - noise)[..., :h, :w]


@register("dni-denoise-unet", {"features": (1, 512), "blocks": (0, 64), "middle": (0, 64),
                                "channels": (1, 4)})
def build_denoise_unet(**options: object) -> nn.Module:
    return DenoiseUNet(**options)  # type: ignore[arg-type]
