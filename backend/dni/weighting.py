"""The engine's side of the mixing rules: `dni_client.mixing` (shared with the editors)
with its errors raised as `WeightsError`, the engine's error for a bad strength or mix."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import wraps
from typing import Any, TypeVar

from dni_client import mixing
from dni_client.errors import MixError

from .errors import WeightsError

T = TypeVar("T")


def _as_weights_error(rule: Callable[..., T]) -> Callable[..., T]:
    @wraps(rule)
    def checked(*args: Any) -> T:
        try:
            return rule(*args)
        except MixError as exc:
            raise WeightsError(str(exc)) from None

    return checked


validate_weights: Callable[[Sequence[Any], int], tuple[float, ...]] = \
    _as_weights_error(mixing.validate_weights)
validate_strength: Callable[[Any], float] = _as_weights_error(mixing.validate_strength)
normalised_positions: Callable[[Sequence[float]], list[float]] = \
    _as_weights_error(mixing.normalised_positions)
strength_to_weights: Callable[[Any, Sequence[float]], tuple[float, ...]] = \
    _as_weights_error(mixing.strength_to_weights)
find_preset: Callable[..., mixing.Preset] = _as_weights_error(mixing.find_preset)
position_to_strength: Callable[[float, Sequence[float]], float] = \
    _as_weights_error(mixing.position_to_strength)
