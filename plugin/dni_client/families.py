"""What the editors know of a family: the server's summary of a manifest, typed.

`FamilyInfo.from_dict` reads one entry of the `families` reply (the same fields as
`dni families --json`), so a dialog asks `family.labels` instead of digging through dicts.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

from . import mixing
from .errors import FilterError, MixError
from .mixing import Preset


class Member(NamedTuple):
    label: str
    position: float


class FamilyInfo(NamedTuple):
    name: str
    task: str
    title: str
    description: str
    scale: int
    axis_name: str
    low_label: str  # what strength 0 means (the first member's end of the slider)
    high_label: str  # what strength 1 means
    members: tuple[Member, ...]
    presets: tuple[Preset, ...] = ()
    axis_measures: str | None = None  # e.g. "noise-sigma": the backend can pick the strength

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> FamilyInfo:
        members = tuple(Member(str(m.get("label") or f"member {i + 1}"),
                               float(m.get("position", i)))
                        for i, m in enumerate(raw.get("members") or []))
        labels = [m.label for m in members] or ["first member", "last member"]
        axis = raw.get("axis") or {}
        try:
            scale = max(1, int(raw.get("scale") or 1))
        except (TypeError, ValueError):
            scale = 1
        info = cls(name=str(raw.get("name") or "?"), task=str(raw.get("task") or "other"),
                   title=str(raw.get("title") or raw.get("name") or "?"),
                   description=str(raw.get("description") or ""), scale=scale,
                   axis_name=str(axis.get("name") or "strength"),
                   low_label=str(axis.get("low") or labels[0]),
                   high_label=str(axis.get("high") or labels[-1]), members=members,
                   axis_measures=str(axis["measures"]) if axis.get("measures") else None)
        return info._replace(presets=tuple(_builtin_presets(raw.get("presets"), len(members))))

    @property
    def labels(self) -> list[str]:
        return [m.label for m in self.members]

    @property
    def positions(self) -> list[float]:
        return [m.position for m in self.members]

    @property
    def can_estimate(self) -> bool:
        """The backend can set the strength from the image itself (`auto`)."""
        return self.axis_measures is not None

    @property
    def can_mix(self) -> bool:
        """More than two members: an N-way mixer makes sense."""
        return len(self.members) > 2

    def weights_for(self, strength: float) -> tuple[float, ...]:
        return mixing.strength_to_weights(strength, self.positions)

    def strength_of(self, weights: Sequence[float]) -> float | None:
        return mixing.weights_to_strength(weights, self.positions)

    def check_amount(self, strength: Any, weights: Sequence[Any] | None
                     ) -> tuple[float | None, tuple[float, ...] | None]:
        """Exactly one of strength and weights, valid for this family (MixError)."""
        try:
            return mixing.check_amount(strength, weights, len(self.members))
        except MixError as exc:
            raise MixError(f"{self.title}: {exc}") from None


def _builtin_presets(raw: Any, count: int) -> list[Preset]:
    out = []
    for item in raw or []:
        try:
            strength, weights = mixing.check_amount(item.get("strength"), item.get("weights"),
                                                    count)
        except (MixError, AttributeError):
            continue  # a broken manifest preset is the backend's to report, not a crash here
        out.append(Preset(str(item.get("name")), strength, weights, True))
    return out


def family_named(families: Sequence[FamilyInfo], name: str) -> FamilyInfo:
    for family in families:
        if family.name == name:
            return family
    known = ", ".join(sorted(f.name for f in families)) or "none"
    raise FilterError(f"The DNI backend has no family named '{name}' (installed: {known}).",
                      "bad_family")
