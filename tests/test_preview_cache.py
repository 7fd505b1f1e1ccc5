"""dni_client.preview_cache: which pictures a slider drag can be shown from at once."""

from __future__ import annotations

from dni_client.job import Amount
from dni_client.preview_cache import GRID, Between, StrengthCache, source_of


def test_only_plain_strengths_are_cached() -> None:
    assert source_of(Amount(0.3, None), None, "area", 1) == ("area", 1)
    assert source_of(Amount(None, (0.2, 0.8)), None, "area") is None  # a mix of weights
    assert source_of(Amount("auto", None), None, "area") is None
    assert source_of(Amount(0.3, None), "selection", "area") is None  # a strength map
    assert source_of(Amount(True, None), None, "area") is None


def test_exact_then_between_then_too_far_apart() -> None:
    cache: StrengthCache[str] = StrengthCache()
    cache.use("a")
    assert cache.picture(0.3) is None
    cache.store("a", 0.25, "p25")
    cache.store("a", 0.5, "p50")
    assert cache.picture(0.25) == "p25"
    found = cache.picture(0.4)
    assert isinstance(found, Between)
    assert (found.low, found.high) == ("p25", "p50") and abs(found.t - 0.6) < 1e-9
    cache.store("a", 1.0, "p100")
    assert cache.picture(0.8) is None  # 0.5 and 1.0 are more than a grid step apart
    assert cache.picture(1.2) is None  # nothing above


def test_another_source_forgets_and_late_answers_are_ignored() -> None:
    cache: StrengthCache[str] = StrengthCache()
    cache.use("a")
    cache.store("a", 0.5, "p50")
    cache.use("b")  # the area or the family changed
    assert cache.picture(0.5) is None and len(cache) == 0
    cache.store("a", 0.5, "late")  # an answer for the old area
    assert len(cache) == 0
    cache.store(None, 0.5, "uncacheable")
    assert len(cache) == 0


def test_missing_renders_the_grid_nearest_first_skipping_busy_ones() -> None:
    cache: StrengthCache[str] = StrengthCache()
    assert cache.missing(0.5) is None  # no source followed yet
    cache.use("a")
    order = []
    busy: set[float] = set()
    while (s := cache.missing(0.6, busy)) is not None:
        order.append(s)
        busy.add(s)
    assert order == [0.5, 0.75, 0.25, 1.0, 0.0]
    for s in order:
        cache.store("a", s, f"p{s}")
    assert cache.missing(0.6) is None
    # Every strength on the slider can now be shown at once.
    assert all(cache.picture(i / 100) is not None for i in range(101))


def test_the_grid_stays_while_old_exact_pictures_go() -> None:
    cache: StrengthCache[str] = StrengthCache(limit=7)
    cache.use("a")
    for s in GRID:
        cache.store("a", s, f"grid {s}")
    for i in range(10):
        cache.store("a", 0.01 + i / 20, f"exact {i}")
    assert len(cache) == 7
    assert all(cache.picture(s) == f"grid {s}" for s in GRID)
    assert cache.picture(0.01 + 9 / 20) == "exact 9" and cache.picture(0.01) != "exact 0"
