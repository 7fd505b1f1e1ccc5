"""models/recipes/shrink.py: a smaller U-Net started from a trained larger one."""

from __future__ import annotations

import pytest
import torch

from dni.archs.denoise import DenoiseUNet
from models.recipes.shrink import shrink


def _trained_like(features: int, blocks: int, middle: int, seed: int) -> DenoiseUNet:
    torch.manual_seed(seed)
    net = DenoiseUNet(features, blocks, middle)
    with torch.no_grad():  # the tail starts near zero; make the net do something
        net.tail.weight.normal_(0, 0.05)
    return net.eval()


def test_shrinking_to_the_same_size_keeps_the_net_exactly() -> None:
    big = _trained_like(8, 2, 2, seed=1)
    same = DenoiseUNet(8, 2, 2)
    samples = torch.rand(2, 3, 32, 32)
    shrink(big, same, samples)
    x = torch.rand(1, 3, 40, 48)
    with torch.no_grad():
        assert torch.equal(same.eval()(x), big(x))


def test_a_smaller_net_starts_closer_to_the_big_one_than_from_scratch() -> None:
    big = _trained_like(16, 2, 2, seed=2)
    samples = torch.rand(4, 3, 32, 32)
    small = DenoiseUNet(8, 1, 1)
    shrink(big, small, samples)
    scratch = DenoiseUNet(8, 1, 1)
    x = torch.rand(2, 3, 48, 48)
    with torch.no_grad():
        target = big(x)
        shrunk_error = (small.eval()(x) - target).abs().mean()
        scratch_error = (scratch.eval()(x) - target).abs().mean()
    assert shrunk_error < scratch_error


def test_shrink_refuses_a_deeper_net() -> None:
    with pytest.raises(ValueError, match="only removes"):
        shrink(_trained_like(8, 1, 1, seed=3), DenoiseUNet(8, 2, 1), torch.rand(1, 3, 32, 32))
