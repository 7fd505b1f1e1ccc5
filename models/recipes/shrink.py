"""Start a smaller `dni-denoise-unet` from a trained larger one instead of from scratch.

A net with fewer features per scale and fewer residual blocks keeps, at every scale,
the channels the larger net uses most (mean |activation| over real photo crops) and the
first residual blocks of each stage; inside a residual block it keeps the hidden channels
that carry the most signal. The result is a rough copy of the larger net that a short
fine-tune brings back, which costs far less CPU time than learning edges and flat areas
again from random weights.
"""

from __future__ import annotations

import torch
from torch import nn

from dni.archs.denoise import DenoiseUNet, ResBlock


def _top(scores: torch.Tensor, keep: int) -> torch.Tensor:
    return torch.sort(torch.topk(scores, keep).indices).values


class _MeanAbs:
    """Mean |x| per channel of a module's output, summed over calls."""

    def __init__(self, module: nn.Module) -> None:
        self.total: torch.Tensor | None = None
        self.handle = module.register_forward_hook(self._hook)

    def _hook(self, _m: nn.Module, _i: object, out: torch.Tensor) -> None:
        score = out.detach().abs().mean(dim=(0, 2, 3))
        self.total = score if self.total is None else self.total + score


def _scores(big: DenoiseUNet, samples: torch.Tensor
            ) -> tuple[list[torch.Tensor], dict[int, torch.Tensor]]:
    """How much each channel of the three residual streams carries on these samples, and
    each residual block's hidden channels (keyed by the block's id)."""
    stages = [big.enc1, big.enc2, big.middle]
    meters = [_MeanAbs(s) for s in stages]
    hidden = {id(b): _MeanAbs(b.conv1) for s in (big.enc1, big.enc2, big.middle, big.dec2,
                                                    big.dec1) for b in s}
    with torch.no_grad():
        big(samples)
    for m in [*meters, *hidden.values()]:
        m.handle.remove()
    return ([m.total for m in meters],  # type: ignore[misc]
            {k: v.total for k, v in hidden.items()})  # type: ignore[misc]


def _copy_block(src: ResBlock, dst: ResBlock, stream: torch.Tensor, hidden: torch.Tensor) -> None:
    dst.conv1.weight.copy_(src.conv1.weight[hidden][:, stream])
    dst.conv1.bias.copy_(src.conv1.bias[hidden])
    dst.conv2.weight.copy_(src.conv2.weight[stream][:, hidden])
    dst.conv2.bias.copy_(src.conv2.bias[stream])


def shrink(big: DenoiseUNet, small: DenoiseUNet, samples: torch.Tensor) -> None:
    """Fill `small` from `big` (both built; `small` narrower and/or shallower).

    `samples` (Bx3xHxW in [0, 1], sides a multiple of 8) decide which channels are kept.
    """
    big.eval()
    (s1, s2, s3), hidden_scores = _scores(big, samples)
    k1 = small.head.out_channels
    k2, k3 = 2 * k1, 4 * k1
    c1, c2, c3 = _top(s1, k1), _top(s2, k2), _top(s3, k3)
    with torch.no_grad():
        small.head.weight.copy_(big.head.weight[c1])
        small.head.bias.copy_(big.head.bias[c1])
        small.down1.weight.copy_(big.down1.weight[c2][:, c1])
        small.down1.bias.copy_(big.down1.bias[c2])
        small.down2.weight.copy_(big.down2.weight[c3][:, c2])
        small.down2.bias.copy_(big.down2.bias[c3])
        # Transposed convs store (in, out, kh, kw).
        small.up2.weight.copy_(big.up2.weight[c3][:, c2])
        small.up2.bias.copy_(big.up2.bias[c2])
        small.up1.weight.copy_(big.up1.weight[c2][:, c1])
        small.up1.bias.copy_(big.up1.bias[c1])
        small.tail.weight.copy_(big.tail.weight[:, c1])
        small.tail.bias.copy_(big.tail.bias)
        pairs = [(big.enc1, small.enc1, c1), (big.enc2, small.enc2, c2),
                 (big.middle, small.middle, c3), (big.dec2, small.dec2, c2),
                 (big.dec1, small.dec1, c1)]
        for src_stage, dst_stage, stream in pairs:
            if len(dst_stage) > len(src_stage):
                raise ValueError("shrink only removes residual blocks; the small net has more")
            for src, dst in zip(src_stage, dst_stage, strict=False):
                keep = _top(hidden_scores[id(src)], dst.conv1.out_channels)
                _copy_block(src, dst, stream, keep)
