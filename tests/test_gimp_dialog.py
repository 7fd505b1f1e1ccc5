"""The GIMP filter dialog (dni_gimp_dialog) against fake GTK/GimpUi widgets: what the user
sees (families, both ends of the slider, presets, the N-way mixer) and what OK writes into
the procedure's config. The real dialog in GIMP 3 is covered by tests/e2e_gimp."""

from __future__ import annotations

import math
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

_FAKES = str(Path(__file__).resolve().parent / "fakes_gimp")
sys.path.insert(0, _FAKES)  # only to import the test kit; the fake gi stays out of the way
try:
    from gimp_testkit import load_fakes, unload_fakes
finally:
    sys.path.remove(_FAKES)

from dni_client.families import FamilyInfo  # noqa: E402
from dni_client.filters import filter_for  # noqa: E402
from dni_client.presets import PresetStore  # noqa: E402
from dni_client.settings import BackendSettings  # noqa: E402

STYLE = {
    "name": "stylize", "task": "stylize", "title": "Stylize", "scale": 1,
    "description": "Three painters.",
    "axis": {"name": "style", "low": "starry night", "high": "graffiti"},
    "members": [{"label": "starry night", "position": 0},
                {"label": "elephants", "position": 1}, {"label": "graffiti", "position": 2}],
    "presets": [{"name": "Elephants", "weights": [0.0, 1.0, 0.0]},
                {"name": "Middle", "strength": 0.5}],
}
STROKE = {
    "name": "stylize-stroke", "task": "stylize", "title": "Stroke", "scale": 1,
    "axis": {"name": "stroke", "low": "fine <1px>", "high": "broad"},
    "members": [{"label": "fine", "position": 0}, {"label": "broad", "position": 1}],
    "presets": [],
}
OTHER = {"name": "denoise", "task": "denoise", "members": [{"label": "a"}, {"label": "b"}]}
STYLIZE = filter_for("stylize")


def infos(*raw: dict[str, Any]) -> list[FamilyInfo]:
    return [FamilyInfo.from_dict(f) for f in raw]


@pytest.fixture(scope="module")
def fakes() -> Iterator[dict[str, Any]]:
    loaded = load_fakes()
    import dni_gimp_dialog
    from gi.repository import GimpUi, Gtk

    loaded.update(dialog=dni_gimp_dialog, GimpUi=GimpUi, Gtk=Gtk)
    yield loaded
    unload_fakes()


@pytest.fixture
def config(fakes: dict[str, Any]) -> Any:
    plugin = fakes["entry"].DniFilters()
    return plugin.do_create_procedure("plug-in-dni-stylize").create_config()


def make(fakes: dict[str, Any], config: Any, tmp_path: Path) -> Any:
    return fakes["dialog"].FilterDialog(config, STYLIZE, infos(OTHER, STROKE, STYLE),
                                        PresetStore(tmp_path / "presets.json"))


def test_opens_on_the_filters_family_with_both_ends_named(fakes: dict[str, Any], config: Any,
                                                          tmp_path: Path) -> None:
    view = make(fakes, config, tmp_path)
    # Only stylize families, and the one named like the task first.
    assert view.family_combo.texts() == ["Stylize", "Stroke"]
    assert view.family_combo.get_active_id() == "stylize"
    assert view.description.get_text() == "Three painters."
    assert view.low_label.get_text() == "<small>0 = starry night</small>"
    assert view.high_label.get_text() == "<small>1 = graffiti</small>"
    assert view.preset_combo.texts() == ["(custom)", "Elephants", "Middle"]
    assert view.strength_adj.get_value() == 0.5
    assert [adj.get_value() for adj in view.weight_adjs] == pytest.approx([0.0, 1.0, 0.0])
    fakes["GimpUi"].Dialog.next_response = fakes["Gtk"].ResponseType.CANCEL
    assert view.run() is False
    assert view.strength_spin.focused and view.strength_spin.activates_default


def test_mixer_sliders_are_linked_and_ok_writes_weights(fakes: dict[str, Any], config: Any,
                                                        tmp_path: Path) -> None:
    view = make(fakes, config, tmp_path)
    assert view.mix_toggle.get_visible()
    view.mix_toggle.click()
    assert view.state.mixing and view.mixer.get_visible()
    view.weight_adjs[2].set_value(0.6)  # the user drags "graffiti"
    values = [adj.get_value() for adj in view.weight_adjs]
    assert values[2] == pytest.approx(0.6) and math.fsum(values) == pytest.approx(1.0)
    view.write_config()
    weights = [float(v) for v in config.get_property("weights").split(",")]
    assert weights == pytest.approx(values, abs=1e-4)
    assert config.get_property("family") == "stylize" and config.get_property("preset") == ""


def test_strength_slider_leaves_the_mixer(fakes: dict[str, Any], config: Any,
                                          tmp_path: Path) -> None:
    view = make(fakes, config, tmp_path)
    view.mix_toggle.click()
    view.weight_adjs[0].set_value(0.3)
    view.strength_adj.set_value(0.25)
    assert not view.state.mixing and not view.mix_toggle.get_active()
    view.pixel_blend.set_active(True)
    view.write_config()
    assert config.get_property("weights") == ""
    assert config.get_property("strength") == pytest.approx(0.25)
    assert config.get_property("pixel-blend") is True


def test_presets_apply_save_and_delete(fakes: dict[str, Any], config: Any,
                                       tmp_path: Path) -> None:
    view = make(fakes, config, tmp_path)
    view.preset_combo.set_active_id("Elephants")
    assert view.state.mixing and [a.get_value() for a in view.weight_adjs] == [0.0, 1.0, 0.0]
    assert not view.delete.get_sensitive()  # the family's own preset
    view.preset_combo.set_active_id("Middle")
    assert view.strength_adj.get_value() == pytest.approx(0.5) and not view.state.mixing

    view.strength_adj.set_value(0.8)
    assert view.preset_combo.get_active_id() == "(custom)"
    view.preset_name.set_text("Mostly graffiti")
    view.save_button.click()
    assert "Saved the preset 'Mostly graffiti'" in view.message.get_text()
    assert view.preset_combo.texts()[-1] == "Mostly graffiti (yours)"
    assert view.preset_combo.get_active_id() == "Mostly graffiti"
    assert view.delete.get_sensitive()
    saved = PresetStore(tmp_path / "presets.json").user_presets(view.state.family)
    assert [(p.name, p.strength) for p in saved] == [("Mostly graffiti", pytest.approx(0.8))]

    view.preset_name.set_text("Middle")
    view.save_button.click()
    assert "one of the family's presets" in view.message.get_text()

    view.preset_combo.set_active_id("Mostly graffiti")
    view.delete.click()
    assert "Mostly graffiti (yours)" not in view.preset_combo.texts()
    assert PresetStore(tmp_path / "presets.json").user_presets(view.state.family) == []


def test_switching_family_rebuilds_the_mixer_and_labels(fakes: dict[str, Any], config: Any,
                                                        tmp_path: Path) -> None:
    view = make(fakes, config, tmp_path)
    view.family_combo.set_active_id("stylize-stroke")
    assert view.state.family.name == "stylize-stroke"
    assert len(view.weight_adjs) == 2 and not view.state.can_mix
    assert not view.mix_toggle.get_visible()
    assert view.low_label.get_text() == "<small>0 = fine &lt;1px&gt;</small>"  # escaped
    assert view.preset_combo.texts() == ["(custom)"]
    fakes["GimpUi"].Dialog.next_response = fakes["Gtk"].ResponseType.OK
    assert view.run() is True
    assert not view.mix_toggle.get_visible(), "show_all must not bring the toggle back"
    assert not view.mixer.get_visible()
    view.write_config()
    assert config.get_property("family") == "stylize-stroke"


def test_run_dialog_ok_and_cancel(fakes: dict[str, Any], config: Any, tmp_path: Path) -> None:
    GimpUi, Gtk = fakes["GimpUi"], fakes["Gtk"]
    settings = BackendSettings(str(tmp_path))
    families = infos(STYLE, STROKE)

    def user(dialog: Any) -> None:  # the user looks, touches nothing, presses OK
        assert dialog is GimpUi.Dialog.last and dialog.get_visible()

    GimpUi.Dialog.before_response = user
    GimpUi.Dialog.next_response = Gtk.ResponseType.OK
    config.set_property("strength", 0.7)
    assert fakes["dialog"].run_dialog(config, STYLIZE, families, settings) is True
    assert config.get_property("strength") == pytest.approx(0.7)
    assert GimpUi.INITS[-1] == "plug-in-dni-stylize"
    assert GimpUi.Dialog.last is not None and GimpUi.Dialog.last.props.get("destroyed")

    GimpUi.Dialog.next_response = Gtk.ResponseType.CANCEL
    config.set_property("strength", 0.2)
    assert fakes["dialog"].run_dialog(config, STYLIZE, families, settings) is False
    assert config.get_property("strength") == pytest.approx(0.2)
    GimpUi.Dialog.before_response = None
    GimpUi.Dialog.next_response = Gtk.ResponseType.OK


def test_no_family_at_all_is_explained(fakes: dict[str, Any], config: Any,
                                       tmp_path: Path) -> None:
    from dni_client.errors import FilterError

    with pytest.raises(FilterError, match="no families installed"):
        fakes["dialog"].FilterDialog(config, STYLIZE, [], PresetStore(tmp_path / "p.json"))
