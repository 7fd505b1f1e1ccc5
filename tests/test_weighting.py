from __future__ import annotations

import pytest

from dni.errors import WeightsError
from dni.weighting import strength_to_weights


def test_two_members_follow_the_documented_direction() -> None:
    assert strength_to_weights(0.0, [0, 1]) == (1.0, 0.0)
    assert strength_to_weights(1.0, [0, 1]) == (0.0, 1.0)
    assert strength_to_weights(0.25, [0, 1]) == pytest.approx((0.75, 0.25))


def test_piecewise_linear_over_uneven_positions() -> None:
    positions = [15, 25, 50]  # stops at 0, 0.2857, 1
    assert strength_to_weights(0.0, positions) == (1.0, 0.0, 0.0)
    mid = (25 - 15) / 35
    assert strength_to_weights(mid, positions) == pytest.approx((0.0, 1.0, 0.0))
    w = strength_to_weights((35 - 15) / 35, positions)  # sigma 35: between 25 and 50
    assert w == pytest.approx((0.0, 0.6, 0.4))
    assert strength_to_weights(1.0, positions) == (0.0, 0.0, 1.0)


@pytest.mark.parametrize("bad", [-0.01, 1.01, float("nan"), float("inf")])
def test_strength_outside_the_axis_is_refused(bad: float) -> None:
    with pytest.raises(WeightsError, match="between 0 and 1"):
        strength_to_weights(bad, [0, 1])
