"""Host-agnostic filter options for the editor plugins: which family, which strength or
weights, which preset, and the small pixel-rectangle helpers a host needs around a job.

Written for the GIMP host, usable by any: pure Python 3.8+, no numpy, GTK or Qt. The rules
are the engine's: members ordered by position, strength 0 = first member (axis.low),
1 = last (axis.high); weights per member >= 0 that sum to 1 and are never rescaled
silently (a mixer UI keeps them convex with `requests.set_weight`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple

from . import requests as rq
from .presets import Preset, PresetStore, family_presets
from .requests import Rect, RequestError

WEIGHT_TOLERANCE = 1e-4


class Choice(NamedTuple):
    """What a job runs with: exactly one of strength and weights is set."""

    strength: float | None
    weights: tuple[float, ...] | None
    preset: str | None = None  # the preset that supplied them, if any


# -- families ------------------------------------------------------------------------------

def family_named(families: Sequence[dict[str, Any]], name: str) -> dict[str, Any]:
    for fam in families:
        if fam.get("name") == name:
            return fam
    known = ", ".join(sorted(str(f.get("name", "?")) for f in families)) or "none"
    raise RequestError(f"The DNI backend has no family named '{name}' (installed: {known}).")


def families_for_task(families: Sequence[dict[str, Any]], task: str) -> list[dict[str, Any]]:
    """The families made for `task` (denoise, super-resolve, stylize), by name."""
    return sorted((f for f in families if f.get("task") == task),
                  key=lambda f: str(f.get("name")))


def default_family(families: Sequence[dict[str, Any]], task: str) -> str | None:
    """The family a menu entry starts with: the one named like the task, else the first
    family of that task, else None."""
    names = [str(f.get("name")) for f in families_for_task(families, task)]
    if task in names:
        return task
    return names[0] if names else None


def member_labels(family: dict[str, Any]) -> list[str]:
    members = family.get("members") or []
    return [str(m.get("label") or f"member {i + 1}") for i, m in enumerate(members)]


def positions(family: dict[str, Any]) -> list[float]:
    members = family.get("members") or []
    return [float(m.get("position", i)) for i, m in enumerate(members)]


def end_labels(family: dict[str, Any]) -> tuple[str, str]:
    """What strength 0 and strength 1 mean, for both ends of a slider: the axis' own
    words when the manifest has them, else the first and last member's labels."""
    labels = member_labels(family) or ["first member", "last member"]
    axis = family.get("axis") or {}
    low = str(axis.get("low") or labels[0])
    high = str(axis.get("high") or labels[-1])
    return low, high


def scale_of(family: dict[str, Any]) -> int:
    try:
        return max(1, int(family.get("scale") or 1))
    except (TypeError, ValueError):
        return 1


# -- strength, weights, presets ------------------------------------------------------------

def parse_weights(text: str | Sequence[float] | None) -> tuple[float, ...] | None:
    """'0.2, 0.5, 0.3' (or spaces, or semicolons) -> (0.2, 0.5, 0.3); '' or None -> None."""
    if text is None:
        return None
    if not isinstance(text, str):
        values = [float(v) for v in text]
        return tuple(values) if values else None
    cleaned = text.replace(";", " ").replace(",", " ").split()
    if not cleaned:
        return None
    try:
        return tuple(float(v) for v in cleaned)
    except ValueError:
        raise RequestError(f"Weights should be numbers separated by commas, like "
                           f"'0.2, 0.5, 0.3'; got {text!r}.") from None


def format_weights(weights: Sequence[float]) -> str:
    return ", ".join(f"{w:.4g}" for w in weights)


def check_choice(family: dict[str, Any], strength: float | None,
                 weights: Sequence[float] | None) -> Choice:
    """Strength or weights as the engine will accept them; RequestError saying what is
    wrong otherwise (weights are not rescaled for the user)."""
    count = len(family.get("members") or [])
    if weights is not None:
        w = tuple(float(v) for v in weights)
        if count and len(w) != count:
            raise RequestError(f"{family.get('name')} has {count} members "
                               f"({', '.join(member_labels(family))}): give {count} weights, "
                               f"not {len(w)}.")
        if any(not math.isfinite(v) or v < 0 for v in w):
            raise RequestError("Weights must be numbers of at least 0.")
        if abs(math.fsum(w) - 1.0) > WEIGHT_TOLERANCE:
            raise RequestError(f"Weights must sum to 1; these sum to {math.fsum(w):g} "
                               "(they are not rescaled for you).")
        return Choice(None, w)
    s = 0.5 if strength is None else float(strength)
    if not math.isfinite(s) or not 0.0 <= s <= 1.0:
        raise RequestError(f"Strength must be between 0 and 1, not {strength}.")
    return Choice(s, None)


def all_presets(family: dict[str, Any], store: PresetStore | None) -> list[Preset]:
    return store.presets(family) if store is not None else family_presets(family)


def resolve(family: dict[str, Any], *, strength: float | None = None,
            weights: Sequence[float] | str | None = None, preset: str | None = None,
            store: PresetStore | None = None) -> Choice:
    """The strength or weights a job runs with. A preset name wins over strength and
    weights (scripts name presets); weights win over strength (a mixer was used)."""
    if preset:
        for p in all_presets(family, store):
            if p.name == preset:
                choice = check_choice(family, p.strength, p.weights)
                return choice._replace(preset=p.name)
        names = ", ".join(p.name for p in all_presets(family, store)) or "none"
        raise RequestError(f"{family.get('name')} has no preset named '{preset}' "
                           f"(presets: {names}).")
    parsed = parse_weights(weights) if isinstance(weights, str) else (
        tuple(weights) if weights is not None else None)
    if parsed is not None:
        return check_choice(family, None, parsed)
    return check_choice(family, strength, None)


class MixState:
    """The state behind a filter dialog: family, preset, strength slider and (for more
    than two members) a linked N-way mixer. No widgets: a host's view reads and sets it."""

    def __init__(self, family: dict[str, Any], store: PresetStore | None = None,
                 strength: float = 0.5, weights: Sequence[float] | None = None) -> None:
        self.store = store
        self.family = family
        self.positions = positions(family)
        self.strength = min(max(float(strength), 0.0), 1.0)
        self.mixing = weights is not None and len(self.positions) > 2
        self.weights = (rq.convex(weights) if weights is not None
                        and len(weights) == len(self.positions)
                        else rq.weights_for_strength(self.strength, self.positions))
        self.preset: str | None = None

    @property
    def can_mix(self) -> bool:
        return len(self.positions) > 2

    def presets(self) -> list[Preset]:
        return all_presets(self.family, self.store)

    def set_family(self, family: dict[str, Any]) -> None:
        self.family = family
        self.positions = positions(family)
        self.mixing = self.mixing and self.can_mix
        self.weights = rq.weights_for_strength(self.strength, self.positions)
        self.preset = None

    def set_strength(self, value: float) -> None:
        self.strength = min(max(float(value), 0.0), 1.0)
        self.weights = rq.weights_for_strength(self.strength, self.positions)
        self.mixing = False
        self.preset = None

    def set_weight(self, index: int, value: float) -> None:
        """Move one member's weight; the others share the rest (linked sliders)."""
        self.weights = rq.set_weight(self.weights, index, value)
        self.mixing = True
        along = rq.strength_for_weights(self.weights, self.positions)
        if along is not None:
            self.strength = min(max(along, 0.0), 1.0)
        self.preset = None

    def set_mixing(self, on: bool) -> None:
        self.mixing = bool(on) and self.can_mix
        if not self.mixing:
            self.weights = rq.weights_for_strength(self.strength, self.positions)

    def apply_preset(self, name: str) -> None:
        choice = resolve(self.family, preset=name, store=self.store)
        if choice.weights is not None:
            self.weights = choice.weights
            self.mixing = self.can_mix
            along = rq.strength_for_weights(self.weights, self.positions)
            if along is not None:
                self.strength = min(max(along, 0.0), 1.0)
        else:
            assert choice.strength is not None
            self.set_strength(choice.strength)
        self.preset = name

    def save_preset(self, name: str) -> Preset:
        if self.store is None:
            raise RequestError("Presets cannot be saved here (no preset file).")
        c = self.choice()
        preset = self.store.save(str(self.family.get("name")), name, strength=c.strength,
                                 weights=c.weights, members=len(self.positions),
                                 family=self.family)
        self.preset = preset.name
        return preset

    def choice(self) -> Choice:
        if self.mixing:
            # Rounding in the sliders may leave the sum a hair off 1: the user moved them,
            # so keeping the mix convex is what they asked for.
            return Choice(None, rq.convex(self.weights), self.preset)
        return Choice(self.strength, None, self.preset)


# -- pixel rectangles ----------------------------------------------------------------------

def cut(data: bytes, bytes_per_pixel: int, width: int, height: int, part: Rect) -> bytes:
    """The bytes of `part` (relative to the top-left of a width x height block)."""
    if len(data) != width * height * bytes_per_pixel:
        raise RequestError(f"{len(data)} bytes do not make {width}x{height} pixels of "
                           f"{bytes_per_pixel} bytes")
    if not Rect(0, 0, width, height).contains(part) or part.empty:
        raise RequestError(f"{part} lies outside a {width}x{height} block")
    if part.x == 0 and part.width == width:
        return bytes(data[part.y * width * bytes_per_pixel:
                          part.bottom * width * bytes_per_pixel])
    row = width * bytes_per_pixel
    start = part.x * bytes_per_pixel
    end = part.right * bytes_per_pixel
    view = memoryview(data)
    return b"".join(view[y * row + start:y * row + end] for y in range(part.y, part.bottom))
