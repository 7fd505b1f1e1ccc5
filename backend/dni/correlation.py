"""The paper's filter correlation index (eq. 3) and a compatibility verdict.

rho_ij = <F_i - mean(F_i), F_j - mean(F_j)> / (||F_i - mean(F_i)|| * ||F_j - mean(F_j)||)

A filter is one output channel of a convolution or linear weight (all its input
channels and taps). Correlated members (one fine-tuned from the other) gave indexes in
[0.689, 1) in the paper; unrelated networks that failed to interpolate gave < 0.1.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

import torch

from .checkpoints import StateDict, check_compatible

GOOD_THRESHOLD = 0.689
FAIL_THRESHOLD = 0.1


def correlation(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-filter correlation index between two weight tensors of one shape.

    Returns one value per output channel (dim 0). A filter that is constant in both
    models counts as perfectly correlated when equal, uncorrelated otherwise.
    """
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {tuple(a.shape)} vs {tuple(b.shape)}")
    fa = a.detach().reshape(a.shape[0], -1).to(torch.float64)
    fb = b.detach().reshape(b.shape[0], -1).to(torch.float64)
    fa = fa - fa.mean(dim=1, keepdim=True)
    fb = fb - fb.mean(dim=1, keepdim=True)
    denominator = fa.norm(dim=1) * fb.norm(dim=1)
    numerator = (fa * fb).sum(dim=1)
    rho = numerator / denominator.clamp_min(torch.finfo(torch.float64).tiny)
    degenerate = denominator == 0
    if degenerate.any():
        same = (a.reshape(a.shape[0], -1) == b.reshape(b.shape[0], -1)).all(dim=1)
        rho = torch.where(degenerate, same.to(torch.float64), rho)
    return rho


@dataclass(frozen=True)
class LayerCorrelation:
    name: str
    filters: int
    median: float
    minimum: float


@dataclass(frozen=True)
class CorrelationReport:
    layers: list[LayerCorrelation]
    median: float
    minimum: float

    @property
    def verdict(self) -> str:
        if self.median >= GOOD_THRESHOLD:
            return "correlated"
        if self.median < FAIL_THRESHOLD:
            return "uncorrelated"
        return "weak"


def filter_layers(state: StateDict) -> list[str]:
    """Keys of tensors made of filters: conv and linear weights (2-D or more)."""
    return [k for k, t in state.items() if t.is_floating_point() and t.dim() >= 2]


def correlation_report(a: StateDict, b: StateDict, labels: tuple[str, str] = ("A", "B"),
                       ) -> CorrelationReport:
    check_compatible([a, b], list(labels))
    layers, everything = [], []
    for key in filter_layers(a):
        rho = correlation(a[key], b[key]).tolist()
        everything += rho
        layers.append(LayerCorrelation(key, len(rho), statistics.median(rho), min(rho)))
    if not everything:
        raise ValueError("these models have no convolution or linear weights to compare")
    return CorrelationReport(layers, statistics.median(everything), min(everything))
