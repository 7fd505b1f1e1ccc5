"""The rule book of a blend: strength <-> weights, what makes weights valid, presets.

Written once, used on both sides of the wire: the engine (`dni.weighting` adapts the
errors) and the editors' dialogs import these functions, so a slider, a preset, a script
and the backend can never disagree about what "40 %" means. Pure Python 3.8+.

Convention: members are ordered by position (rising, or falling where the manifest's axis
says `descending`); weights w_i >= 0 with sum 1 are given in that order. A strength s in
[0, 1] is a point on the family's axis (0 = first member, 1 = last) and maps
piecewise-linearly onto the two neighbouring members, so with two members
theta = (1 - s) * theta_first + s * theta_last (ESRGAN's net_interp.py; the paper writes
the same with alpha = 1 - s).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple

from .errors import MixError

SUM_TOLERANCE = 1e-4


def clamp_unit(value: float) -> float:
    return min(max(float(value), 0.0), 1.0)


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool):
        raise MixError(f"{what} must be a number, not {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        raise MixError(f"{what} must be a number, not {value!r}") from None
    if not math.isfinite(number):
        raise MixError(f"{what} must be a finite number, not {value!r}")
    return number


def validate_strength(strength: Any) -> float:
    try:
        s = _number(strength, "strength")
    except MixError:
        raise MixError(f"strength must be a number between 0 and 1, not {strength!r}") \
            from None
    if not 0.0 <= s <= 1.0:
        raise MixError(f"strength must be between 0 and 1, not {s:g}")
    return s


def validate_weights(weights: Sequence[Any], count: int) -> tuple[float, ...]:
    """Weights exactly as given, or MixError: never rescaled behind the user's back."""
    if isinstance(weights, (str, bytes)) or not isinstance(weights, Sequence):
        raise MixError(f"weights must be a list of numbers, not {weights!r}")
    values = tuple(_number(w, "every weight") for w in weights)
    if len(values) != count:
        raise MixError(f"this family has {count} members: give {count} weights (one per "
                       f"member), not {len(values)}")
    negative = [w for w in values if w < 0]
    if negative:
        raise MixError(f"weights must not be negative, got {negative[0]:g}")
    total = math.fsum(values)
    if abs(total - 1.0) > SUM_TOLERANCE:
        raise MixError(f"weights must sum to 1, these sum to {total:g} (they are not "
                       "rescaled for you)")
    return values


def normalised_positions(positions: Sequence[float]) -> list[float]:
    """Member positions mapped onto [0, 1] (the strength axis): the first member is 0, the
    last 1. Positions may rise or fall along the members (a family whose strongest member
    has the lowest position, as JPEG quality, lists them falling), but monotonically."""
    first, last = positions[0], positions[-1]
    steps = [positions[i + 1] - positions[i] for i in range(len(positions) - 1)]
    if not steps or not (all(d > 0 for d in steps) or all(d < 0 for d in steps)):
        raise MixError("the members' positions must all rise or all fall, in member order")
    return [(p - first) / (last - first) for p in positions]


def position_to_strength(position: float, positions: Sequence[float]) -> float:
    """The strength whose blend sits at `position` on the members' axis (the members are
    at their positions, e.g. the noise sigma each was trained at), clamped to the ends:
    `strength_to_weights` then blends the two members either side of it. Works for
    falling positions too (strength 0 is always the first member)."""
    first, last = positions[0], positions[-1]
    if first == last:
        raise MixError("the members' positions must differ")
    return clamp_unit((_number(position, "an axis position") - first) / (last - first))


def strength_to_weights(strength: Any, positions: Sequence[float]) -> tuple[float, ...]:
    """Weights for a strength on the axis through the member positions, in order."""
    s = validate_strength(strength)
    stops = normalised_positions(positions)
    weights = [0.0] * len(stops)
    for i in range(len(stops) - 1):
        left, right = stops[i], stops[i + 1]
        if s <= right or i == len(stops) - 2:
            t = (s - left) / (right - left)
            # Exact zeros at the stops: a member at weight 0 is not computed at all.
            weights[i] = 0.0 if t == 1.0 else 1.0 - t
            weights[i + 1] = 0.0 if t == 0.0 else t
            break
    return tuple(weights)


def weights_to_strength(weights: Sequence[float], positions: Sequence[float]
                        ) -> float | None:
    """The strength whose weights these are, or None when no single strength gives them
    (more than two members, or two that are not neighbours, carry weight)."""
    stops = normalised_positions(positions)
    carrying = [i for i, w in enumerate(weights) if w > 1e-9]
    if len(carrying) == 1:
        return stops[carrying[0]]
    if len(carrying) == 2 and carrying[1] == carrying[0] + 1:
        i, j = carrying
        total = weights[i] + weights[j]
        return clamp_unit((stops[i] * weights[i] + stops[j] * weights[j]) / total)
    return None


def convex(weights: Sequence[float]) -> tuple[float, ...]:
    """Non-negative weights that sum to 1, from sliders the user moved (equal shares when
    all are zero): a mixer UI keeps its sliders convex, it never sends a bad mix."""
    clean = [max(0.0, float(w)) for w in weights]
    if not clean:
        raise MixError("no weights")
    total = sum(clean)
    if total <= 0:
        return tuple(1.0 / len(clean) for _ in clean)
    return tuple(w / total for w in clean)


def set_weight(weights: Sequence[float], index: int, value: float) -> tuple[float, ...]:
    """Move one weight of a convex mix to `value` and share the rest among the others in
    their current proportions (equally if they are all zero): the linked-sliders rule."""
    count = len(weights)
    value = clamp_unit(value)
    if count == 1:
        return (1.0,)
    others = [max(0.0, w) for i, w in enumerate(weights) if i != index]
    rest, total = 1.0 - value, sum(others)
    shares = iter([rest * w / total for w in others] if total > 0
                  else [rest / (count - 1)] * (count - 1))
    return tuple(value if i == index else next(shares) for i in range(count))


# -- presets ---------------------------------------------------------------------------------

class Preset(NamedTuple):
    """A named strength or mix: the family's own (builtin) or the user's."""

    name: str
    strength: float | None = None
    weights: tuple[float, ...] | None = None
    builtin: bool = False  # from the family's manifest: cannot be renamed or deleted

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name}
        if self.strength is not None:
            out["strength"] = self.strength
        if self.weights is not None:
            out["weights"] = list(self.weights)
        return out


def check_amount(strength: Any, weights: Sequence[Any] | None, count: int
                 ) -> tuple[float | None, tuple[float, ...] | None]:
    """Exactly one of a strength and weights, each valid for a family of `count` members."""
    if (strength is None) == (weights is None):
        raise MixError("give either a strength or weights, not both and not neither")
    if weights is not None:
        return None, validate_weights(weights, count)
    return validate_strength(strength), None


def find_preset(presets: Sequence[Preset], name: str, family: str = "this family") -> Preset:
    """The preset called `name` (exact match first, then ignoring case), or MixError
    listing the names there are."""
    for preset in presets:
        if preset.name == name:
            return preset
    for preset in presets:
        if preset.name.lower() == str(name).lower():
            return preset
    names = ", ".join(p.name for p in presets) or "none"
    raise MixError(f"{family} has no preset named '{name}' (presets: {names})")
