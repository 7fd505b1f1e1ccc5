"""Losses that need no pretrained network (none can be downloaded here).

- `RandomFeatures`: a FIXED random-weight multi-scale conv net (only its seed is kept),
  whose Gram matrices carry texture/style statistics (Ustyuzhaninov et al. 2016/17;
  He et al. 2016 "random VGG") and whose activations serve as a content loss.
- `PatchDiscriminator` + relativistic average GAN losses (ESRGAN) with feature matching.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import spectral_norm


class RandomFeatures(nn.Module):
    """Frozen random conv stack: four scales, each conv -> ReLU, average-pool between.

    Several filter sizes per scale (3 and 5) widen the statistics, as in Ustyuzhaninov's
    multi-scale random filters. Weights come from `seed`, so the loss is reproducible
    from the seed alone.
    """

    def __init__(self, seed: int = 1234, widths: tuple[int, ...] = (32, 64, 128, 128)) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.stages = nn.ModuleList()
        cin = 3
        for width in widths:
            convs = nn.ModuleList()
            for k in (3, 5):
                conv = nn.Conv2d(cin, width // 2, k, padding=k // 2, padding_mode="reflect")
                fan_in = cin * k * k
                with torch.no_grad():
                    conv.weight.copy_(torch.randn(conv.weight.shape, generator=g)
                                      * (2.0 / fan_in) ** 0.5)
                    conv.bias.zero_()
                convs.append(conv)
            self.stages.append(convs)
            cin = width
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.requires_grad_(False)
        self.eval()

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = []
        y = x - self.mean
        for i, convs in enumerate(self.stages):
            if i:
                y = F.avg_pool2d(y, 2)
            y = F.relu(torch.cat([c(y) for c in convs], dim=1))
            feats.append(y)
        return feats


def gram(f: torch.Tensor) -> torch.Tensor:
    b, c, h, w = f.shape
    flat = f.reshape(b, c, h * w)
    return flat @ flat.transpose(1, 2) / (c * h * w)


class PatchDiscriminator(nn.Module):
    """Small spectral-normalised VGG-style patch discriminator; returns logits + features."""

    def __init__(self, features: int = 32) -> None:
        super().__init__()
        f = features
        spec = [(3, f, 3, 1), (f, f, 4, 2), (f, 2 * f, 3, 1), (2 * f, 2 * f, 4, 2),
                (2 * f, 4 * f, 3, 1), (4 * f, 4 * f, 4, 2)]
        self.convs = nn.ModuleList(
            spectral_norm(nn.Conv2d(cin, cout, k, s, padding=1)) for cin, cout, k, s in spec)
        self.head = spectral_norm(nn.Conv2d(4 * f, 1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        feats = []
        y = x * 2 - 1
        for conv in self.convs:
            y = F.leaky_relu(conv(y), 0.2)
            feats.append(y)
        return self.head(y), feats


def ragan_d_loss(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    ones, zeros = torch.ones_like(real), torch.zeros_like(fake)
    return 0.5 * (F.binary_cross_entropy_with_logits(real - fake.mean(), ones)
                  + F.binary_cross_entropy_with_logits(fake - real.mean(), zeros))


def ragan_g_loss(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    ones, zeros = torch.ones_like(fake), torch.zeros_like(real)
    return 0.5 * (F.binary_cross_entropy_with_logits(real - fake.mean(), zeros)
                  + F.binary_cross_entropy_with_logits(fake - real.mean(), ones))


def feature_matching(real: list[torch.Tensor], fake: list[torch.Tensor]) -> torch.Tensor:
    """L1 between discriminator activations, each layer normalised by the real ones' scale."""
    total = fake[0].new_zeros(())
    for r, f in zip(real, fake, strict=True):
        r = r.detach()
        total = total + F.l1_loss(f, r) / (r.abs().mean() + 1e-6)
    return total / len(real)
