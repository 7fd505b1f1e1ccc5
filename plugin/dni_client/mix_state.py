"""The state behind a filter dialog, without widgets: family, preset, strength slider and
(for more than two members) a linked N-way mixer. Krita's and GIMP's dialogs are views that
read and set it; every rule comes from `mixing`.
"""

from __future__ import annotations

from collections.abc import Sequence

from . import mixing
from .errors import MixError
from .families import FamilyInfo
from .job import Amount
from .mixing import Preset
from .presets import PresetStore


def parse_weights(text: str | Sequence[float] | None) -> tuple[float, ...] | None:
    """'0.2, 0.5, 0.3' (or spaces, or semicolons) -> (0.2, 0.5, 0.3); '' or None -> None."""
    if text is None:
        return None
    if not isinstance(text, str):
        values = tuple(float(v) for v in text)
        return values or None
    cleaned = text.replace(";", " ").replace(",", " ").split()
    if not cleaned:
        return None
    try:
        return tuple(float(v) for v in cleaned)
    except ValueError:
        raise MixError(f"Weights should be numbers separated by commas, like '0.2, 0.5, "
                       f"0.3'; got {text!r}.") from None


def format_weights(weights: Sequence[float]) -> str:
    return ", ".join(f"{w:.4g}" for w in weights)


def all_presets(family: FamilyInfo, store: PresetStore | None) -> list[Preset]:
    """The family's presets first, then the user's."""
    return store.presets(family) if store is not None else list(family.presets)


def resolve(family: FamilyInfo, *, strength: float | None = None,
            weights: Sequence[float] | str | None = None, preset: str | None = None,
            store: PresetStore | None = None) -> Amount:
    """What a scripted job runs with. A preset wins over strength and weights (scripts name
    presets); weights win over strength (a mixer was used); neither means 50 %."""
    if preset:
        found = mixing.find_preset(all_presets(family, store), preset, family.title)
        s, w = family.check_amount(found.strength, found.weights)
        return Amount(s, w, found.name)
    parsed = parse_weights(weights)
    if parsed is not None:
        return Amount(*family.check_amount(None, parsed))
    return Amount(*family.check_amount(0.5 if strength is None else strength, None))


class MixState:
    def __init__(self, family: FamilyInfo, store: PresetStore | None = None,
                 strength: float = 0.5, weights: Sequence[float] | None = None) -> None:
        self.store = store
        self.family = family
        self.strength = mixing.clamp_unit(strength)
        fits = weights is not None and len(weights) == len(family.members)
        self.mixing = fits and family.can_mix
        self.weights = (mixing.convex(weights) if fits and weights is not None
                        else family.weights_for(self.strength))
        self.preset: str | None = None

    @property
    def can_mix(self) -> bool:
        return self.family.can_mix

    def presets(self) -> list[Preset]:
        return all_presets(self.family, self.store)

    def user_preset_selected(self) -> bool:
        """Whether the chosen preset is the user's (it can be renamed or deleted)."""
        return any(p.name == self.preset and not p.builtin for p in self.presets())

    def set_family(self, family: FamilyInfo) -> None:
        self.family = family
        self.mixing = self.mixing and self.can_mix
        self.weights = family.weights_for(self.strength)
        self.preset = None

    def set_strength(self, value: float) -> None:
        self.strength = mixing.clamp_unit(value)
        self.weights = self.family.weights_for(self.strength)
        self.mixing = False
        self.preset = None

    def set_weight(self, index: int, value: float) -> None:
        """Move one member's weight; the others share the rest (linked sliders)."""
        self._set_weights(mixing.set_weight(self.weights, index, value))
        self.preset = None

    def _set_weights(self, weights: Sequence[float]) -> None:
        self.weights = tuple(weights)
        self.mixing = self.can_mix
        along = self.family.strength_of(self.weights)
        if along is not None:
            self.strength = along

    def set_mixing(self, on: bool) -> None:
        self.mixing = bool(on) and self.can_mix
        if not self.mixing:
            self.weights = self.family.weights_for(self.strength)

    def set_amount(self, amount: Amount) -> None:
        """Strength or weights as a preset, a re-run or a saved setting holds them
        (MixError when they do not fit this family)."""
        strength, weights = self.family.check_amount(amount.strength if amount.weights is None
                                                     else None, amount.weights)
        if weights is not None:
            self._set_weights(weights)
        else:
            self.set_strength(strength)
        self.preset = amount.preset

    def apply_preset(self, name: str) -> None:
        self.set_amount(resolve(self.family, preset=name, store=self.store))

    def save_preset(self, name: str) -> Preset:
        if self.store is None:
            raise MixError("Presets cannot be saved here (no preset file).")
        amount = self.amount()
        preset = self.store.save(self.family, name, strength=amount.strength,
                                 weights=amount.weights)
        self.preset = preset.name
        return preset

    def amount(self) -> Amount:
        if self.mixing:
            # Rounding in the sliders may leave the sum a hair off 1: the user moved them,
            # so keeping the mix convex is what they asked for.
            return Amount(None, mixing.convex(self.weights), self.preset)
        return Amount(self.strength, None, self.preset)
