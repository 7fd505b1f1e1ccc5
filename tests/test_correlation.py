"""The paper's correlation index (eq. 3) against a hand computation."""

from __future__ import annotations

import math

import pytest
import torch

from dni.correlation import correlation, correlation_report


def hand_rho(a: list[float], b: list[float]) -> float:
    ma, mb = sum(a) / len(a), sum(b) / len(b)
    num = sum((x - ma) * (y - mb) for x, y in zip(a, b, strict=True))
    den = math.sqrt(sum((x - ma) ** 2 for x in a)) * math.sqrt(sum((y - mb) ** 2 for y in b))
    return num / den


def test_matches_hand_computation_per_filter() -> None:
    torch.manual_seed(0)
    a = torch.randn(5, 2, 3, 3)
    b = a + 0.7 * torch.randn(5, 2, 3, 3)
    rho = correlation(a, b)
    assert rho.shape == (5,)
    for i in range(5):
        assert rho[i].item() == pytest.approx(hand_rho(a[i].flatten().tolist(),
                                                       b[i].flatten().tolist()), abs=1e-9)


def test_ignores_scale_and_shift_and_sees_inversion() -> None:
    a = torch.randn(3, 4, 3, 3)
    assert torch.allclose(correlation(a, 2.5 * a + 7.0), torch.ones(3, dtype=torch.float64))
    assert torch.allclose(correlation(a, -a), -torch.ones(3, dtype=torch.float64))


def test_constant_filters_do_not_divide_by_zero() -> None:
    a = torch.ones(2, 1, 3, 3)
    b = a.clone()
    b[1] = 2.0
    assert correlation(a, b).tolist() == [1.0, 0.0]


def test_report_verdicts() -> None:
    torch.manual_seed(1)
    base = {"c1.weight": torch.randn(16, 3, 3, 3), "c1.bias": torch.randn(16),
            "c2.weight": torch.randn(3, 16, 3, 3)}
    tuned = {k: v + 0.1 * torch.randn_like(v) for k, v in base.items()}
    fresh = {k: torch.randn_like(v) for k, v in base.items()}
    good = correlation_report(base, tuned)
    assert good.verdict == "correlated" and good.median > 0.9
    assert [layer.name for layer in good.layers] == ["c1.weight", "c2.weight"]
    assert correlation_report(base, fresh).verdict == "uncorrelated"
