"""Previews already rendered for one source, by strength: what lets a slider drag show a
picture at once although the network needs half a second per 512 px crop on a laptop.

While the artist looks at a preview, the editor renders the same crop at a few strengths
along the slider (`missing`); when the slider then moves, `picture` gives either the
picture at exactly that strength or the two rendered either side of it, which the editor
blends for an immediate stand-in while the exact preview is computed. The network's
output changes smoothly with the strength, so the stand-in differs from the exact picture
by little (benchmarks/bench_krita_preview.py measures how little); the exact one replaces
it when it arrives.

A cache holds one source: a job's family, area, pixels and options, everything but the
strength. Mixes of several weights, "auto" and strength maps are not cached (they are not
points on the slider).
"""

from __future__ import annotations

from collections.abc import Collection, Hashable
from typing import Any, Generic, TypeVar

from .job import Amount

Picture = TypeVar("Picture")

# Strengths rendered ahead, a quarter of the slider apart: the stand-in's error grows
# with the gap, and each point costs one preview's worth of work.
GRID = (0.0, 0.25, 0.5, 0.75, 1.0)
MAX_GAP = 0.25
LIMIT = 12  # pictures kept per source (the grid plus recent exact ones)


class Between(Generic[Picture]):
    """Two rendered pictures either side of a strength: blend `high` over `low` by `t`.
    (Not a generic NamedTuple: Krita 5.1 may embed Python 3.8.)"""

    def __init__(self, low: Picture, high: Picture, t: float) -> None:
        self.low, self.high, self.t = low, high, t


def source_of(amount: Amount, strength_map: Any, *identity: Hashable) -> Hashable | None:
    """What identifies a preview's source (the editor says: its pixels, area, family,
    options; everything but the strength), or None when the amount is not a plain
    strength on the slider, which is never cached."""
    strength = amount.strength
    if amount.weights is not None or strength_map is not None \
            or isinstance(strength, bool) or not isinstance(strength, (int, float)):
        return None
    return identity


def _key(strength: float) -> float:
    return round(float(strength), 4)


class StrengthCache(Generic[Picture]):
    def __init__(self, grid: tuple[float, ...] = GRID, max_gap: float = MAX_GAP,
                 limit: int = LIMIT) -> None:
        self.grid, self.max_gap, self.limit = grid, max_gap, max(limit, len(grid) + 1)
        self._source: Hashable | None = None
        self._pictures: dict[float, Picture] = {}

    def use(self, source: Hashable | None) -> None:
        """Follow this source; a different one forgets every picture."""
        if source != self._source:
            self._source, self._pictures = source, {}

    def store(self, source: Hashable | None, strength: float, picture: Picture) -> None:
        """Keep a finished preview (ignored if it is of another source than the one
        followed: an answer that arrives after the area or the family changed)."""
        if source is None or source != self._source:
            return
        self._pictures.pop(_key(strength), None)
        self._pictures[_key(strength)] = picture
        while len(self._pictures) > self.limit:
            extra = next(s for s in self._pictures if s not in self.grid)
            del self._pictures[extra]  # the oldest exact one; the grid stays

    def picture(self, strength: float) -> Picture | Between[Picture] | None:
        """The picture at this strength, or the two nearest either side when they are at
        most max_gap apart, or None."""
        s = _key(strength)
        if s in self._pictures:
            return self._pictures[s]
        below = [k for k in self._pictures if k < s]
        above = [k for k in self._pictures if k > s]
        if not below or not above:
            return None
        low, high = max(below), min(above)
        if high - low > self.max_gap + 1e-9:
            return None
        return Between(self._pictures[low], self._pictures[high], (s - low) / (high - low))

    def missing(self, near: float, busy: Collection[float] = ()) -> float | None:
        """The grid strength to render next (the nearest to `near` neither rendered nor
        in `busy`, those on their way), or None when the grid is complete or no source
        is followed."""
        if self._source is None:
            return None
        skip = {_key(b) for b in busy}
        todo = [g for g in self.grid if _key(g) not in self._pictures and _key(g) not in skip]
        return min(todo, key=lambda g: abs(g - near)) if todo else None

    def __len__(self) -> int:
        return len(self._pictures)
