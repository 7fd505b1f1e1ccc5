"""The DNI filter dialog (GimpUi + GTK 3): family, presets, strength, N-way mixer.

A view over `dni_client.mix_state.MixState`, which holds every rule (linked sliders,
presets, what strength 0 and 1 mean). On OK the dialog writes the procedure's arguments
into its config, so an interactive run and a script run the same code afterwards, and
"Repeat" reuses the values.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gi

gi.require_version("Gtk", "3.0")
gi.require_version("GimpUi", "3.0")
from gi.repository import GimpUi, GLib, Gtk  # noqa: E402

from dni_client import filters  # noqa: E402
from dni_client.errors import FilterError  # noqa: E402
from dni_client.families import FamilyInfo  # noqa: E402
from dni_client.mix_state import MixState, format_weights, parse_weights  # noqa: E402
from dni_client.presets import PresetStore  # noqa: E402
from dni_client.settings import BackendSettings  # noqa: E402

_CUSTOM = "(custom)"

# The Auto button's question to the backend: (strength, what it found) for a family.
Estimate = Callable[[FamilyInfo], "tuple[float, str]"]


def _slider(value: float, on_change: Any) -> tuple[Gtk.Widget, Gtk.Adjustment]:
    """A slider with a spin button beside it: artists type exact values too."""
    adj = Gtk.Adjustment(value=value, lower=0.0, upper=1.0, step_increment=0.01,
                         page_increment=0.1)
    scale = Gtk.Scale(orientation=Gtk.Orientation.HORIZONTAL, adjustment=adj)
    scale.set_draw_value(False)
    scale.set_hexpand(True)
    spin = Gtk.SpinButton(adjustment=adj, climb_rate=0.01, digits=3)
    spin.set_activates_default(True)  # type a value, press Enter: the filter runs
    adj.connect("value-changed", lambda a: on_change(a.get_value()))
    box = Gtk.Box(orientation=Gtk.Orientation.HORIZONTAL, spacing=6)
    box.pack_start(scale, True, True, 0)
    box.pack_start(spin, False, False, 0)
    return box, adj


class FilterDialog:
    def __init__(self, config: Any, entry: filters.Filter, families: list[FamilyInfo],
                 store: PresetStore, estimate: Estimate | None = None) -> None:
        self.config = config
        self.estimate = estimate
        self.entry = entry
        self.store = store
        self.families = filters.families_for(entry, families) or list(families)
        if not self.families:
            raise FilterError("The DNI backend has no families installed; see "
                              "docs/gimp.md (Troubleshooting).")
        wanted = str(config.get_property("family") or "")
        family = next((f for f in self.families if f.name == wanted),
                      filters.default_family(entry, self.families) or self.families[0])
        weights = parse_weights(str(config.get_property("weights") or "")) or None
        self.state = MixState(family, store, float(config.get_property("strength")), weights)
        self._busy = False  # guards against feedback while widgets are set from the state

        self.dialog = GimpUi.Dialog(title=f"DNI {entry.title}", role=entry.gimp_procedure)
        self.dialog.add_button("_Cancel", Gtk.ResponseType.CANCEL)
        self.dialog.add_button("_OK", Gtk.ResponseType.OK)
        self.dialog.set_default_response(Gtk.ResponseType.OK)
        grid = Gtk.Grid(column_spacing=8, row_spacing=6, border_width=12)
        self.dialog.get_content_area().pack_start(grid, True, True, 0)

        self.family_combo = Gtk.ComboBoxText()
        for fam in self.families:
            self.family_combo.append(fam.name, fam.title)
        self.family_combo.connect("changed", self._family_changed)
        grid.attach(Gtk.Label(label="Family:", xalign=0), 0, 0, 1, 1)
        grid.attach(self.family_combo, 1, 0, 2, 1)
        self.description = Gtk.Label(xalign=0, wrap=True, max_width_chars=60)
        grid.attach(self.description, 0, 1, 3, 1)

        self.preset_combo = Gtk.ComboBoxText()
        self.preset_combo.connect("changed", self._preset_changed)
        self.preset_name = Gtk.Entry(placeholder_text="name for a new preset")
        save = self.save_button = Gtk.Button(label="Save")
        save.connect("clicked", self._save_preset)
        self.delete = Gtk.Button(label="Delete")
        self.delete.connect("clicked", self._delete_preset)
        grid.attach(Gtk.Label(label="Preset:", xalign=0), 0, 2, 1, 1)
        grid.attach(self.preset_combo, 1, 2, 1, 1)
        grid.attach(self.delete, 2, 2, 1, 1)
        grid.attach(self.preset_name, 1, 3, 1, 1)
        grid.attach(save, 2, 3, 1, 1)

        strength_box, self.strength_adj = _slider(self.state.strength, self._strength_moved)
        self.strength_spin = strength_box.get_children()[-1]
        grid.attach(Gtk.Label(label="Strength:", xalign=0), 0, 4, 1, 1)
        grid.attach(strength_box, 1, 4, 2, 1)
        # Auto: the backend reads the strength off the layer (dni_client.auto).
        self.auto_button = Gtk.Button(label="Auto")
        self.auto_button.connect("clicked", self._auto_clicked)
        grid.attach(self.auto_button, 3, 4, 1, 1)
        self.auto_map = Gtk.CheckButton(
            label="Strength per region, from the image's own noise (auto map)")
        self.auto_map.set_active(bool(config.get_property("auto-map")))
        grid.attach(self.auto_map, 0, 10, 3, 1)
        ends = Gtk.Box(orientation=Gtk.Orientation.HORIZONTAL)
        self.low_label = Gtk.Label(xalign=0)
        self.high_label = Gtk.Label(xalign=1)
        ends.pack_start(self.low_label, True, True, 0)
        ends.pack_end(self.high_label, True, True, 0)
        grid.attach(ends, 1, 5, 2, 1)

        self.mix_toggle = Gtk.CheckButton(label="Mix all members (N-way weights)")
        self.mix_toggle.connect("toggled", self._mix_toggled)
        grid.attach(self.mix_toggle, 0, 6, 3, 1)
        self.mixer = Gtk.Grid(column_spacing=8, row_spacing=4)
        grid.attach(self.mixer, 0, 7, 3, 1)
        self.weight_adjs: list[Gtk.Adjustment] = []

        self.pixel_blend = Gtk.CheckButton(
            label="Blend the members' outputs instead of their weights (comparison)")
        self.pixel_blend.set_active(bool(config.get_property("pixel-blend")))
        grid.attach(self.pixel_blend, 0, 8, 3, 1)
        self.message = Gtk.Label(xalign=0, wrap=True)
        grid.attach(self.message, 0, 9, 3, 1)

        self._busy = True
        self.family_combo.set_active_id(family.name)
        self._busy = False
        self._rebuild_family()

    # -- building from the state ---------------------------------------------------------

    def _rebuild_family(self) -> None:
        fam = self.state.family
        self.description.set_text(fam.description)
        low, high = fam.low_label, fam.high_label
        self.low_label.set_markup(f"<small>0 = {GLib.markup_escape_text(low)}</small>")
        self.high_label.set_markup(f"<small>1 = {GLib.markup_escape_text(high)}</small>")
        for child in self.mixer.get_children():
            self.mixer.remove(child)
        self.weight_adjs = []
        for i, label in enumerate(fam.labels):
            box, adj = _slider(self.state.weights[i],
                               lambda v, i=i: self._weight_moved(i, v))
            self.mixer.attach(Gtk.Label(label=label, xalign=0), 0, i, 1, 1)
            self.mixer.attach(box, 1, i, 1, 1)
            self.weight_adjs.append(adj)
        self.mix_toggle.set_visible(self.state.can_mix)
        self.auto_button.set_sensitive(fam.can_estimate and self.estimate is not None)
        self.auto_map.set_sensitive(fam.can_estimate)
        if not fam.can_estimate:
            self.auto_map.set_active(False)
        self._fill_presets()
        self._sync()

    def _fill_presets(self) -> None:
        self._busy = True
        self.preset_combo.remove_all()
        self.preset_combo.append(_CUSTOM, _CUSTOM)
        for p in self.state.presets():
            self.preset_combo.append(p.name, p.name + ("" if p.builtin else " (yours)"))
        self.preset_combo.set_active_id(self.state.preset or _CUSTOM)
        self._busy = False

    def _sync(self) -> None:
        """Widgets from the state (without triggering their handlers)."""
        self._busy = True
        self.strength_adj.set_value(self.state.strength)
        for adj, w in zip(self.weight_adjs, self.state.weights, strict=True):
            adj.set_value(w)
        self.mix_toggle.set_active(self.state.mixing)
        self.mix_toggle.set_no_show_all(not self.state.can_mix)
        self.mix_toggle.set_visible(self.state.can_mix)
        self.mixer.set_visible(self.state.can_mix and self.state.mixing)
        self.mixer.set_no_show_all(not (self.state.can_mix and self.state.mixing))
        self.preset_combo.set_active_id(self.state.preset or _CUSTOM)
        self.delete.set_sensitive(self.state.user_preset_selected())
        self._busy = False
        if self.state.mixing:
            self.mixer.show_all()

    # -- handlers ------------------------------------------------------------------------

    def _family_changed(self, combo: Gtk.ComboBoxText) -> None:
        if self._busy:
            return
        name = combo.get_active_id()
        fam = next((f for f in self.families if f.name == name), None)
        if fam is not None:
            self.state.set_family(fam)
            self._rebuild_family()

    def _preset_changed(self, combo: Gtk.ComboBoxText) -> None:
        if self._busy:
            return
        name = combo.get_active_id()
        if not name or name == _CUSTOM:
            self.state.preset = None
            return
        try:
            self.state.apply_preset(name)
        except FilterError as exc:
            self.message.set_text(str(exc))
        self._sync()

    def _strength_moved(self, value: float) -> None:
        if not self._busy:
            self.state.set_strength(value)
            self._sync()

    def _auto_clicked(self, _button: Any) -> None:
        """Ask the backend which strength these pixels need; the slider moves there."""
        if self.estimate is None:
            return
        self.message.set_text("Measuring the image…")
        try:
            strength, found = self.estimate(self.state.family)
        except FilterError as exc:
            self.message.set_text(str(exc))
            return
        self.state.set_strength(strength)
        self._sync()
        self.message.set_text(found)

    def _weight_moved(self, index: int, value: float) -> None:
        if not self._busy:
            self.state.set_weight(index, value)
            self._sync()

    def _mix_toggled(self, button: Gtk.CheckButton) -> None:
        if not self._busy:
            self.state.set_mixing(button.get_active())
            self._sync()

    def _save_preset(self, _button: Any) -> None:
        try:
            preset = self.state.save_preset(self.preset_name.get_text())
        except FilterError as exc:
            self.message.set_text(str(exc))
            return
        self.message.set_text(f"Saved the preset '{preset.name}'.")
        self.preset_name.set_text("")
        self._fill_presets()
        self._sync()

    def _delete_preset(self, _button: Any) -> None:
        name = self.state.preset
        if not name:
            return
        try:
            self.store.delete(self.state.family, name)
        except FilterError as exc:
            self.message.set_text(str(exc))
            return
        self.state.preset = None
        self._fill_presets()
        self._sync()

    # -- result --------------------------------------------------------------------------

    def write_config(self) -> None:
        amount = self.state.amount()
        self.config.set_property("family", self.state.family.name)
        self.config.set_property("preset", "")
        if amount.weights is not None:
            self.config.set_property("weights", format_weights(amount.weights))
        else:
            self.config.set_property("weights", "")
            self.config.set_property("strength", float(amount.strength or 0.0))
        self.config.set_property("pixel-blend", self.pixel_blend.get_active())
        self.config.set_property("auto-map", self.auto_map.get_active())

    def run(self) -> bool:
        self.dialog.show_all()
        self._sync()
        self.strength_spin.grab_focus()
        return self.dialog.run() == Gtk.ResponseType.OK


def run_dialog(config: Any, entry: filters.Filter, families: list[FamilyInfo],
               settings: BackendSettings, estimate: Estimate | None = None) -> bool:
    """Show the dialog; True after OK (config updated), False after Cancel. `estimate`
    answers the Auto button (absent: the button is greyed out)."""
    GimpUi.init(entry.gimp_procedure)
    view = FilterDialog(config, entry, families, PresetStore(settings.presets_path),
                        estimate)
    try:
        ok = view.run()
        if ok:
            view.write_config()
        return ok
    finally:
        view.dialog.destroy()
