"""Interpolation weights: validation and the strength axis (paper eq. 1-2).

Convention: members are ordered by position; weights w_i >= 0 with sum 1 are given in
that order. A strength s in [0, 1] is a point on the family's axis (0 = first member,
1 = last member) and maps piecewise-linearly onto the two neighbouring members, so with
two members theta = (1 - s) * theta_first + s * theta_last (as ESRGAN's net_interp.py; the
paper writes the same with alpha = 1 - s).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from .errors import WeightsError

SUM_TOLERANCE = 1e-4


def validate_weights(weights: Sequence[float], count: int) -> tuple[float, ...]:
    values = tuple(float(w) for w in weights)
    if len(values) != count:
        raise WeightsError(f"expected {count} weights (one per member), got {len(values)}")
    for w in values:
        if not math.isfinite(w):
            raise WeightsError(f"weights must be finite numbers, got {w}")
        if w < 0:
            raise WeightsError(f"weights must not be negative, got {w:g}")
    total = math.fsum(values)
    if abs(total - 1.0) > SUM_TOLERANCE:
        raise WeightsError(f"weights must sum to 1, they sum to {total:g} "
                           "(DNI does not rescale them for you)")
    return values


def validate_strength(strength: float) -> float:
    s = float(strength)
    if not math.isfinite(s) or s < 0.0 or s > 1.0:
        raise WeightsError(f"strength must be between 0 and 1, got {strength}")
    return s


def normalised_positions(positions: Sequence[float]) -> list[float]:
    lo, hi = min(positions), max(positions)
    return [(p - lo) / (hi - lo) for p in positions]


def strength_to_weights(strength: float, positions: Sequence[float]) -> tuple[float, ...]:
    """Weights for a strength on the axis through sorted member positions."""
    s = validate_strength(strength)
    stops = normalised_positions(positions)
    weights = [0.0] * len(stops)
    for i in range(len(stops) - 1):
        left, right = stops[i], stops[i + 1]
        if s <= right or i == len(stops) - 2:
            t = (s - left) / (right - left)
            weights[i], weights[i + 1] = 1.0 - t, t
            if t == 0.0:
                weights[i + 1] = 0.0
            if t == 1.0:
                weights[i] = 0.0
            break
    return tuple(weights)

