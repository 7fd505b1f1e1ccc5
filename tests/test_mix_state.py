"""dni_client.mix_state and friends: the host-agnostic state behind both editors' dialogs
and the GIMP script arguments (presets, strength/weights rules, the linked N-way mixer,
families per filter, rectangles)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from dni_client import filters
from dni_client.errors import FilterError, MixError, RequestError
from dni_client.families import FamilyInfo, family_named
from dni_client.geometry import Rect, cut
from dni_client.job import Amount
from dni_client.mix_state import MixState, parse_weights, resolve
from dni_client.presets import PresetStore

STYLE = {
    "name": "stylize", "task": "stylize", "title": "Stylize", "scale": 1,
    "axis": {"name": "style", "low": "starry night", "high": "graffiti"},
    "members": [{"label": "starry night", "position": 0}, {"label": "elephants", "position": 1},
                {"label": "graffiti", "position": 2}],
    "presets": [{"name": "Elephants", "weights": [0.0, 1.0, 0.0]},
                {"name": "Middle", "strength": 0.5}],
}
SR = {"name": "super-resolve", "task": "super-resolve", "scale": 4, "axis": {},
      "members": [{"label": "faithful", "position": 0}, {"label": "detailed", "position": 1}]}
FAMILIES = [STYLE, SR, {"name": "sr-other", "task": "super-resolve", "members": []}]
STYLE_INFO, SR_INFO = FamilyInfo.from_dict(STYLE), FamilyInfo.from_dict(SR)
INFOS = [FamilyInfo.from_dict(f) for f in FAMILIES]


def test_families_by_task_and_defaults() -> None:
    sr = filters.filter_for("super-resolve")
    assert [f.name for f in filters.families_for(sr, INFOS)] == ["sr-other", "super-resolve"]
    assert filters.default_family(sr, INFOS).name == "super-resolve"
    assert filters.default_family(sr, INFOS[2:]).name == "sr-other"
    assert filters.default_family(filters.filter_for("denoise"), INFOS) is None
    with pytest.raises(FilterError, match="installed: sr-other, stylize, super-resolve"):
        family_named(INFOS, "nope")
    assert SR_INFO.scale == 4 and FamilyInfo.from_dict({"scale": None}).scale == 1


def test_slider_ends_name_the_members() -> None:
    assert (STYLE_INFO.low_label, STYLE_INFO.high_label) == ("starry night", "graffiti")
    # No axis words: the member labels.
    assert (SR_INFO.low_label, SR_INFO.high_label) == ("faithful", "detailed")


@pytest.mark.parametrize("text, want", [
    ("0.2, 0.5, 0.3", (0.2, 0.5, 0.3)), ("0.2 0.5 0.3", (0.2, 0.5, 0.3)),
    ("0.2;0.5;0.3", (0.2, 0.5, 0.3)), ("", None), ("  ", None), (None, None),
    ([0.5, 0.5], (0.5, 0.5)),
])
def test_parse_weights(text: object, want: object) -> None:
    assert parse_weights(text) == want  # type: ignore[arg-type]


def test_resolve_rules() -> None:
    assert resolve(STYLE_INFO, strength=0.25) == Amount(0.25, None)
    assert resolve(STYLE_INFO) == Amount(0.5, None)
    # Weights win over strength; a preset wins over both.
    assert resolve(STYLE_INFO, strength=0.9, weights="0.2,0.3,0.5") == Amount(
        None, (0.2, 0.3, 0.5))
    assert resolve(STYLE_INFO, strength=0.9, weights="0.2,0.3,0.5", preset="Elephants") == \
        Amount(None, (0.0, 1.0, 0.0), "Elephants")
    assert resolve(STYLE_INFO, preset="Middle") == Amount(0.5, None, "Middle")
    for bad, words in [({"weights": "0.5,0.6,0.1"}, "sum to 1"),
                       ({"weights": "0.5,0.5"}, "give 3 weights"),
                       ({"weights": "-0.5,1.0,0.5"}, "negative"),
                       ({"weights": "a,b"}, "numbers separated by commas"),
                       ({"strength": 1.5}, "between 0 and 1"),
                       ({"strength": math.nan}, "between 0 and 1"),
                       ({"preset": "Nope"}, "presets: Elephants, Middle")]:
        with pytest.raises(MixError, match=words):
            resolve(STYLE_INFO, **bad)  # type: ignore[arg-type]


def test_user_presets_resolve_by_name(tmp_path: Path) -> None:
    store = PresetStore(tmp_path / "presets.json")
    store.save(STYLE_INFO, "Mine", weights=[0.6, 0.0, 0.4])
    assert resolve(STYLE_INFO, preset="Mine", store=store) == Amount(None, (0.6, 0.0, 0.4),
                                                                     "Mine")


def test_mix_state_links_sliders_and_keeps_the_mix_convex(tmp_path: Path) -> None:
    state = MixState(STYLE_INFO, PresetStore(tmp_path / "p.json"), strength=0.25)
    assert state.can_mix and not state.mixing
    assert state.weights == pytest.approx((0.5, 0.5, 0.0))
    assert state.amount() == Amount(0.25, None)
    state.set_weight(2, 0.6)  # the others share the remaining 0.4 in proportion
    assert state.mixing
    assert state.weights == pytest.approx((0.2, 0.2, 0.6))
    c = state.amount()
    assert c.strength is None and math.fsum(c.weights or ()) == pytest.approx(1.0)
    state.set_strength(1.0)  # the strength slider leaves the mixer
    assert not state.mixing and state.weights == pytest.approx((0.0, 0.0, 1.0))
    state.apply_preset("Elephants")
    assert state.mixing and state.preset == "Elephants"
    assert state.strength == pytest.approx(0.5)  # a single member: its place on the axis
    state.set_mixing(False)
    assert state.amount() == Amount(0.5, None, "Elephants")


def test_mix_state_saves_presets_and_refuses_builtin_names(tmp_path: Path) -> None:
    store = PresetStore(tmp_path / "p.json")
    state = MixState(STYLE_INFO, store)
    state.set_weight(0, 0.7)
    saved = state.save_preset("  My   mix ")
    assert saved.name == "My mix" and state.preset == "My mix"
    assert [p.name for p in state.presets()] == ["Elephants", "Middle", "My mix"]
    again = PresetStore(tmp_path / "p.json").user_presets(STYLE_INFO)
    assert again[0].weights == pytest.approx(state.weights)
    from dni_client.presets import PresetError

    with pytest.raises(PresetError, match="one of the family's presets"):
        state.save_preset("Middle")


def test_two_member_family_has_no_mixer() -> None:
    state = MixState(SR_INFO, None, weights=[0.3, 0.7])
    assert not state.can_mix and not state.mixing
    state.set_mixing(True)
    assert not state.mixing
    assert state.amount() == Amount(0.5, None)
    with pytest.raises(MixError, match="cannot be saved"):
        state.save_preset("x")


def test_switching_family_keeps_the_strength() -> None:
    state = MixState(STYLE_INFO, None, strength=0.75)
    state.set_family(SR_INFO)
    assert state.family is SR_INFO and state.weights == pytest.approx((0.25, 0.75))
    assert state.amount() == Amount(0.75, None)


def test_cut_rectangles() -> None:
    width, height, bpp = 5, 4, 2
    data = bytes(range(width * height * bpp))
    part = cut(data, bpp, width, height, Rect(1, 2, 3, 2))
    want = b"".join(data[(y * width + 1) * bpp:(y * width + 4) * bpp] for y in (2, 3))
    assert part == want
    assert cut(data, bpp, width, height, Rect(0, 1, 5, 2)) == data[10:30]
    with pytest.raises(RequestError, match="outside"):
        cut(data, bpp, width, height, Rect(4, 0, 2, 1))
    with pytest.raises(RequestError, match="do not make"):
        cut(data[:-1], bpp, width, height, Rect(0, 0, 1, 1))
