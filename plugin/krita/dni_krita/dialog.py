"""The filter dialog (Filter ▸ DNI ▸ …): a view over the shared `MixState`, with a live
preview of a crop.

Everything runs on the GUI thread and never waits on the network: the extension's timer
delivers backend events, the PreviewScheduler decides when a preview runs.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any

from krita import Krita

from dni_client import auto, filters, install_offer, mixing
from dni_client.errors import FilterError, RequestError
from dni_client.families import FamilyInfo
from dni_client.geometry import Rect
from dni_client.job import Amount
from dni_client.mix_state import MixState
from dni_client.presets import PresetStore
from dni_client.preview_area import PreviewArea
from dni_client.preview_cache import Between, StrengthCache, source_of
from dni_client.session import STATE_ERROR, JobHandle

from . import api, canvas_view, core
from .canvas_preview import CanvasPreview, preview_rect
from .plugin import instance
from .preview import PreviewScheduler
from .preview_image import Converter, blend, mask_qimage, over
from .preview_view import Overview, PreviewView
from .qt import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QImage,
    QInputDialog,
    QLabel,
    QLineEdit,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QSlider,
    Qt,
    QVBoxLayout,
    QWidget,
)

SLIDER_STEPS = 1000

_open_dialogs: list[FilterDialog] = []  # keep Python references while the dialogs are shown


def _percent_spin() -> QDoubleSpinBox:
    spin = QDoubleSpinBox()
    spin.setRange(0.0, 100.0)
    spin.setDecimals(1)
    spin.setSuffix(" %")
    spin.setKeyboardTracking(False)
    return spin


def _unit_slider() -> QSlider:
    slider = QSlider(Qt.Orientation.Horizontal)
    slider.setRange(0, SLIDER_STEPS)
    return slider


class FilterDialog(QDialog):
    def __init__(self, doc: Any, node: Any, entry: filters.Filter,
                 family: str | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.doc, self.node = doc, node
        self.entry = entry
        self.plugin = instance()
        self.session = self.plugin.session
        self.wanted_family = family
        self.families: list[FamilyInfo] = []
        self.state: MixState | None = None
        self.store = PresetStore(self.plugin.settings.backend.presets_path)
        self.previews_shown = 0  # for scripts and tests: how many previews arrived
        self.preview_strength: float | None = None  # the strength of the shown preview
        self.stand_ins_shown = 0  # pictures blended from two cached ones (scripts, tests)
        # Previews of this area at other strengths, rendered ahead for slider drags.
        self.cache: StrengthCache[QImage] = StrengthCache()
        self._generation = 0  # counts readings of the preview's source pixels
        self._ahead_busy: set[float] = set()  # rendered ahead, being converted
        self.running: JobHandle | None = None
        self.result_layer: Any = None
        self.crop: Rect | None = None  # the preview's area, once the layer was read
        self._fmt: Any = None
        self._linear = False
        self._original: QImage | None = None
        self._filtered: QImage | None = None
        self._updating = False  # widgets being set from the state: ignore their signals
        self.area: PreviewArea | None = None  # what the preview shows (zoom, centre)
        self.canvas_preview: CanvasPreview | None = None
        self.converter = Converter(self)
        self.setWindowTitle(f"DNI – {entry.title}")
        self.setMinimumWidth(720)
        self._build()
        self.previews = PreviewScheduler(self, self.session, self._preview_job,
                                         self._preview_shown, self.status.setText,
                                         self._ahead_job, self._ahead_done)
        # The extension's timer drives the session; the dialog follows its state.
        self.session.state_changed.connect(self._session_changed)
        self._retry()

    # ---- layout
    def _build(self) -> None:
        outer = QHBoxLayout(self)
        left = QVBoxLayout()
        outer.addLayout(left, 1)
        left.addLayout(self._build_family())
        left.addWidget(self._build_strength())
        left.addWidget(self._build_mixer())
        left.addLayout(self._build_presets())
        left.addLayout(self._build_options())
        left.addWidget(self._build_advanced())
        self.status = QLabel("Connecting to the DNI backend…")
        self.status.setWordWrap(True)
        left.addWidget(self.status)
        left.addLayout(self._build_no_backend_row())
        self.progress = QProgressBar()
        self.progress.setRange(0, 100)
        self.progress.setVisible(False)
        left.addWidget(self.progress)
        left.addStretch(1)
        left.addWidget(self._build_buttons())
        outer.addLayout(self._build_preview())

    def _build_no_backend_row(self) -> QHBoxLayout:
        """Shown only while the backend cannot be reached: what the artist can do."""
        row = QHBoxLayout()
        self.retry_button = QPushButton("Retry")
        self.retry_button.clicked.connect(self._retry)
        self.settings_button = QPushButton("DNI Settings…")
        self.settings_button.clicked.connect(self._open_settings)
        self.install_button = QPushButton("Install DNI backend…")
        self.install_button.clicked.connect(self._install)
        for button in (self.retry_button, self.settings_button, self.install_button):
            button.setAutoDefault(False)
            button.setVisible(False)
            row.addWidget(button)
        row.addStretch(1)
        return row

    def _show_no_backend(self, visible: bool) -> None:
        self.retry_button.setVisible(visible)
        self.settings_button.setVisible(visible)
        offer = install_offer.offer_for(self.session) if visible else None
        self.install_button.setVisible(offer is not None
                                       and offer.kind == install_offer.INSTALL)

    def _install(self) -> None:
        from .install_dialog import open_install

        offer = install_offer.offer_for(self.session)
        if offer is not None:
            open_install(self, offer)
        self._retry()

    def _retry(self) -> None:
        self._show_no_backend(False)
        try:
            self.session.step()
        except FilterError:
            pass  # the error state reaches _session_changed
        self._session_changed()

    def _open_settings(self) -> None:
        from .settings_dialog import SettingsDialog

        SettingsDialog.edit()
        self._retry()

    def _build_family(self) -> QFormLayout:
        form = QFormLayout()
        row = QHBoxLayout()
        self.family_box = QComboBox()
        self.family_box.currentIndexChanged.connect(self._family_chosen)
        row.addWidget(self.family_box, 1)
        self.get_button = QPushButton("Get more…")
        self.get_button.setToolTip("Download more model families (licence and size shown "
                                   "first; checksums verified).")
        self.get_button.setAutoDefault(False)
        self.get_button.clicked.connect(self._get_families)
        row.addWidget(self.get_button)
        form.addRow("Model:", row)
        self.axis_label = QLabel()
        self.axis_label.setWordWrap(True)
        form.addRow("", self.axis_label)
        return form

    def _build_strength(self) -> QGroupBox:
        box = QGroupBox("Strength")
        grid = QGridLayout(box)
        self.low_label, self.high_label = QLabel(), QLabel()
        self.high_label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self.slider = _unit_slider()
        self.slider.valueChanged.connect(lambda v: self._strength_moved(v / SLIDER_STEPS))
        self.spin = _percent_spin()
        self.spin.valueChanged.connect(lambda v: self._strength_moved(v / 100.0))
        # Auto: the backend reads the strength off the previewed pixels (dni_client.auto).
        self.auto_button = QPushButton("Auto")
        self.auto_button.setAutoDefault(False)
        self.auto_button.clicked.connect(self._auto_strength)
        for column, widget in enumerate((self.low_label, self.slider, self.high_label,
                                         self.spin, self.auto_button)):
            grid.addWidget(widget, 0, column)
        # Every member's name where it sits on the slider: with three styles, 50 % is the
        # middle one, not a blend of the two ends.
        self.member_marks = QHBoxLayout()
        grid.addLayout(self.member_marks, 1, 1)
        return box

    def _show_member_marks(self, family: FamilyInfo) -> None:
        while self.member_marks.count():
            item = self.member_marks.takeAt(0)
            if item.widget() is not None:
                item.widget().deleteLater()
        stops = mixing.normalised_positions(family.positions)
        for i, label in enumerate(family.labels):
            if i > 0:
                self.member_marks.addStretch(max(1, int(round((stops[i] - stops[i - 1]) * 100))))
            mark = QLabel(f"<small>{label}</small>")
            mark.setObjectName("member_mark")
            self.member_marks.addWidget(mark)

    def _build_mixer(self) -> QGroupBox:
        self.mixer_box = QGroupBox("Mix all members (weights always sum to 100 %)")
        self.mixer_box.setCheckable(True)
        self.mixer_box.setChecked(False)
        self.mixer_box.toggled.connect(self._mixer_toggled)
        self.mixer_grid = QGridLayout(self.mixer_box)
        self.mixer_sliders: list[QSlider] = []
        self.mixer_spins: list[QDoubleSpinBox] = []
        return self.mixer_box

    def _build_presets(self) -> QHBoxLayout:
        row = QHBoxLayout()
        self.preset_box = QComboBox()
        self.preset_box.activated.connect(self._preset_chosen)
        row.addWidget(QLabel("Preset:"))
        row.addWidget(self.preset_box, 1)
        self.preset_buttons: dict[str, QPushButton] = {}
        for text, slot in (("Save…", self._preset_save), ("Rename…", self._preset_rename),
                           ("Delete", self._preset_delete)):
            button = QPushButton(text)
            button.setAutoDefault(False)  # Enter in a value box must not press it
            button.clicked.connect(slot)
            row.addWidget(button)
            self.preset_buttons[text] = button
        return row

    def _build_advanced(self) -> QGroupBox:
        """What only a curious or technical artist needs: closed unless ticked."""
        box = QGroupBox("Advanced")
        box.setCheckable(True)
        box.setChecked(False)
        inner = QWidget()
        form = QFormLayout(inner)
        self.pixel_blend = QCheckBox("Blend the members' pictures instead of their networks "
                                     "(for comparison)")
        self.pixel_blend.toggled.connect(self.schedule_preview)
        form.addRow(self.pixel_blend)
        self.details = QLabel()
        self.details.setWordWrap(True)
        self.details.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        form.addRow(self.details)
        inner.setVisible(False)
        box.toggled.connect(inner.setVisible)
        QVBoxLayout(box).addWidget(inner)
        self.advanced = box
        return box

    def _show_details(self) -> None:
        family = self.state.family if self.state is not None else None
        lines = [self.session.details]
        if family is not None:
            lines.append(f"Family '{family.name}', members: " + ", ".join(
                f"{label} (at {position:g})" for label, position in
                zip(family.labels, family.positions)))  # noqa: B905 - Python 3.8
        self.details.setText("\n".join(lines))

    def _get_families(self) -> None:
        from .get_families import GetFamiliesDialog

        self._get_dialog = GetFamiliesDialog.open_for(self)  # kept while shown

    def _build_options(self) -> QFormLayout:
        opts = QFormLayout()
        has_sel = self.doc.selection() is not None
        self.selection_only = QCheckBox("Only inside the selection")
        self.selection_only.setChecked(has_sel)
        self.selection_only.setEnabled(has_sel)
        self.selection_only.toggled.connect(self.schedule_preview)
        opts.addRow(self.selection_only)
        self.map_box = QComboBox()
        self.map_box.addItem("None (one strength everywhere)", None)
        if has_sel:
            self.map_box.addItem("The selection", core.MAP_SELECTION)
        for node in api.walk(self.doc.rootNode()):
            if node is not self.doc.rootNode() and node.type() == "paintlayer" \
                    and node.uniqueId() != self.node.uniqueId():
                self.map_box.addItem(f"Layer: {node.name()}", node)
        self.map_box.addItem("Auto (from the image's own noise)", core.MAP_AUTO)
        self.map_box.currentIndexChanged.connect(self._map_chosen)
        opts.addRow("Strength map (white = strongest):", self.map_box)
        self.target_box = QComboBox()
        self.target_box.addItem("New layer above (source untouched)", core.TARGET_NEW_LAYER)
        self.target_box.addItem("Replace the layer (undoable)", core.TARGET_REPLACE)
        opts.addRow("Result:", self.target_box)
        self.sr_box = QComboBox()
        self.sr_box.addItem("Open a new document", core.SR_NEW_DOCUMENT)
        self.sr_box.addItem("Enlarge this image (undoable)", core.SR_RESIZE)
        self.sr_label = QLabel("Super-resolution:")
        opts.addRow(self.sr_label, self.sr_box)
        return opts

    def _build_buttons(self) -> QDialogButtonBox:
        self.buttons = QDialogButtonBox()
        # ActionRole: a button box makes its first AcceptRole button the default when shown,
        # and then Enter in the % box would apply.
        self.apply_button = self.buttons.addButton("Apply",
                                                   QDialogButtonBox.ButtonRole.ActionRole)
        self.close_button = self.buttons.addButton("Close",
                                                   QDialogButtonBox.ButtonRole.RejectRole)
        for button in (self.apply_button, self.close_button):
            # Enter in the % box sets the value; applying is a click, not a side effect.
            button.setAutoDefault(False)
            button.setDefault(False)
        self.apply_button.clicked.connect(self.apply)
        self.buttons.rejected.connect(self._close_or_cancel)
        self.apply_button.setEnabled(False)
        return self.buttons

    def _build_preview(self) -> QVBoxLayout:
        right = QVBoxLayout()
        size = self.plugin.settings.preview_size
        self.preview = PreviewView(size, size)
        self.preview.panned.connect(self._pan)
        self.preview.zoomed.connect(self._zoom)
        right.addWidget(self.preview)
        row = QHBoxLayout()
        self.overview = Overview(96, 72)
        self.overview.picked.connect(self._pick)
        row.addWidget(self.overview)
        self.preview_note = QLabel()
        self.preview_note.setWordWrap(True)
        row.addWidget(self.preview_note, 1)
        right.addLayout(row)
        self.on_canvas = QCheckBox("Preview on the canvas")
        self.on_canvas.setToolTip("Show the result in a temporary locked layer over the "
                                  "visible part of the image; it goes away when the dialog "
                                  "closes.")
        self.on_canvas.toggled.connect(self._on_canvas_toggled)
        right.addWidget(self.on_canvas)
        right.addStretch(1)
        return right

    # ---- connecting
    def _session_changed(self) -> None:
        if self.session.connected:
            self._show_no_backend(False)
            self.status.setText(self.session.message)
            offered = [f.name for f in filters.families_for(self.entry, self.session.families)]
            if not self.families or offered != [f.name for f in self.families]:
                # the first time, or a family was installed meanwhile
                self._fill_families()
            self._show_details()
        elif self.session.state == STATE_ERROR:
            self.status.setText(f"<b>No backend.</b> {self.session.message}")
            self._show_no_backend(True)
        else:
            self.status.setText(self.session.message)

    def _fill_families(self) -> None:
        self.families = filters.families_for(self.entry, self.session.families)
        if not self.families:
            self.status.setText(f"No {self.entry.title} family is installed. Filter ▸ DNI ▸ "
                                "Other Family… lists every installed family.")
            return
        names = [f.name for f in self.families]
        default = filters.default_family(self.entry, self.families)
        chosen = names.index(self.wanted_family) if self.wanted_family in names \
            else names.index(default.name if default else names[0])
        self._updating = True
        self.family_box.clear()
        for fam in self.families:
            self.family_box.addItem(fam.title, fam.name)
            self.family_box.setItemData(self.family_box.count() - 1, fam.description or
                                        fam.name, Qt.ItemDataRole.ToolTipRole)
        self._updating = False
        self.family_box.setCurrentIndex(chosen)
        self._family_chosen(chosen)

    def _family_chosen(self, index: int) -> None:
        if self._updating or index < 0 or index >= len(self.families):
            return
        family = self.families[index]
        if self.state is None:
            self.state = MixState(family, self.store)
        else:
            self.state.set_family(family)
        self.setWindowTitle(f"DNI – {family.title}")
        self.low_label.setText(family.labels[0])
        self.high_label.setText(family.labels[-1])
        self._show_member_marks(family)
        self.low_label.setToolTip(family.low_label)
        self.high_label.setToolTip(family.high_label)
        self.axis_label.setText(
            f"{family.axis_name}: 0 % = {family.low_label}, 100 % = {family.high_label}"
            + (f". Makes the image {family.scale}× larger." if family.scale > 1 else ""))
        self.sr_box.setVisible(family.scale > 1)
        self.sr_label.setVisible(family.scale > 1)
        self.auto_button.setEnabled(family.can_estimate)
        # An enlarged result does not fit over the image it came from.
        self.on_canvas.setEnabled(family.scale == 1)
        if family.scale > 1:
            self.on_canvas.setChecked(False)
        self._build_member_sliders(family)
        self._show_details()
        self._fill_presets()
        self.apply_button.setEnabled(True)
        self._fill_overview()
        self._read_preview_source()
        remembered = self.plugin.settings.last_amount(family.name)
        try:
            self.state.set_amount(remembered or Amount(0.5, None))
        except FilterError:
            self.state.set_strength(0.5)  # saved for a family that has changed since
        self._sync()

    def _build_member_sliders(self, family: FamilyInfo) -> None:
        while self.mixer_grid.count():
            item = self.mixer_grid.takeAt(0)
            if item.widget() is not None:
                item.widget().deleteLater()
        self.mixer_sliders, self.mixer_spins = [], []
        self.mixer_box.setVisible(family.can_mix)
        for i, label in enumerate(family.labels):
            slider, spin = _unit_slider(), _percent_spin()
            slider.valueChanged.connect(lambda v, i=i: self._weight_moved(i, v / SLIDER_STEPS))
            spin.valueChanged.connect(lambda v, i=i: self._weight_moved(i, v / 100.0))
            self.mixer_grid.addWidget(QLabel(label), i, 0)
            self.mixer_grid.addWidget(slider, i, 1)
            self.mixer_grid.addWidget(spin, i, 2)
            self.mixer_sliders.append(slider)
            self.mixer_spins.append(spin)

    # ---- the view <- the state
    def _sync(self) -> None:
        """Every widget from the state (their signals ignored), then a new preview."""
        state = self.state
        if state is None:
            return
        self._updating = True
        self.slider.setValue(int(round(state.strength * SLIDER_STEPS)))
        self.spin.setValue(state.strength * 100.0)
        self.mixer_box.setChecked(state.mixing)
        # zip(strict=) needs Python 3.10; Krita may run 3.8.
        for slider, spin, w in zip(self.mixer_sliders, self.mixer_spins, state.weights):  # noqa: B905
            slider.setValue(int(round(w * SLIDER_STEPS)))
            spin.setValue(w * 100.0)
        mapped = self.map_box.currentData() is not None
        self.slider.setEnabled(not mapped and (not state.mixing
                                               or state.family.strength_of(state.weights)
                                               is not None))
        self.spin.setEnabled(not mapped)
        mine = state.user_preset_selected()  # the family's own presets stay as they are
        self.preset_buttons["Rename…"].setEnabled(mine)
        self.preset_buttons["Delete"].setEnabled(mine)
        self._updating = False
        self.schedule_preview()

    # ---- the view -> the state
    @property
    def weights(self) -> tuple[float, ...]:
        return tuple(self.state.weights) if self.state is not None else ()

    def set_strength(self, value: float) -> None:
        """For scripts and tests: as if the user dragged the slider."""
        self.slider.setValue(int(round(value * SLIDER_STEPS)))

    def _strength_moved(self, value: float) -> None:
        if not self._updating and self.state is not None:
            self.state.set_strength(value)
            self._sync()

    def _auto_strength(self) -> None:
        """Auto: a preview at the strength the backend reads off these pixels; the
        slider moves there."""
        try:
            job = self._preview_job()
            if job is not None:
                auto.request_strength(self.session, job.spec, self._auto_found,
                                      self.status.setText)
        except FilterError as exc:
            self.status.setText(str(exc))

    def _auto_found(self, strength: float, text: str) -> None:
        self.set_strength(strength)
        self.auto_button.setToolTip(text)  # the status line goes back to the previews

    def _weight_moved(self, index: int, value: float) -> None:
        if not self._updating and self.state is not None:
            self.state.set_weight(index, value)
            self._sync()

    def _mixer_toggled(self, on: bool) -> None:
        if self._updating or self.state is None:
            return
        if on and self.map_box.currentData() is not None:
            self.map_box.setCurrentIndex(0)  # a strength map works along the axis only
        self.state.set_mixing(on)
        self._sync()

    def _map_chosen(self, _index: int) -> None:
        if self.map_box.currentData() is not None and self.state is not None:
            self.state.set_mixing(False)  # the map gives the strength, pixel by pixel
        self._read_preview_source()
        self._sync()

    def options(self) -> core.Options:
        assert self.state is not None
        amount = self.state.amount()
        if self.map_box.currentData() is not None:
            amount = amount._replace(strength=self.state.strength, weights=None)
        return core.Options(
            amount=amount, mode="pixel" if self.pixel_blend.isChecked() else "network",
            selection_only=self.selection_only.isChecked(),
            strength_map=self.map_box.currentData(), target=self.target_box.currentData(),
            sr_output=self.sr_box.currentData())

    # ---- presets
    def _fill_presets(self) -> None:
        self.preset_box.clear()
        self.preset_box.addItem("(choose a preset)", None)
        if self.state is None:
            return
        for preset in self.state.presets():
            self.preset_box.addItem(preset.name + ("  [family]" if preset.builtin else ""),
                                    preset.name)

    def _preset_chosen(self, index: int) -> None:
        name = self.preset_box.itemData(index)
        if name is not None and self.state is not None:
            self.state.apply_preset(name)
            self._sync()

    def _preset_save(self) -> None:
        name, ok = QInputDialog.getText(self, "Save preset", "Preset name:")
        if not ok or self.state is None:
            return
        try:
            self.state.save_preset(name)
        except FilterError as exc:
            QMessageBox.warning(self, "DNI", str(exc))
        self._fill_presets()
        self._sync()

    def _selected_user_preset(self) -> str | None:
        if self.state is None or not self.state.user_preset_selected():
            QMessageBox.information(self, "DNI", "Choose one of your presets first.")
            return None
        return self.state.preset

    def _preset_rename(self) -> None:
        old = self._selected_user_preset()
        if old is None or self.state is None:
            return
        name, ok = QInputDialog.getText(self, "Rename preset", "New name:",
                                        QLineEdit.EchoMode.Normal, old)
        if ok:
            try:
                self.store.rename(self.state.family, old, name)
            except FilterError as exc:
                QMessageBox.warning(self, "DNI", str(exc))
            self._fill_presets()
            self._sync()

    def _preset_delete(self) -> None:
        name = self._selected_user_preset()
        if name is None or self.state is None:
            return
        answer = QMessageBox.question(self, "DNI", f"Delete the preset '{name}'?")
        if answer != QMessageBox.StandardButton.Yes:
            return
        try:
            self.store.delete(self.state.family, name)
        except FilterError as exc:
            QMessageBox.warning(self, "DNI", str(exc))
        self.state.preset = None
        self._fill_presets()
        self._sync()

    # ---- preview
    def _area_for(self) -> PreviewArea:
        if self.area is None:
            size = self.preview.size()
            self.area = PreviewArea(core.image_rect(self.doc), size.width(), size.height(),
                                    centre=_preview_centre(self.doc))
        return self.area

    def _crop(self) -> Rect:
        assert self.state is not None
        return self._area_for().crop(self.state.family.scale)

    def _read_preview_source(self) -> None:
        self._generation += 1
        try:
            self.crop = c = self._crop()
            self._fmt = core.check_layer(self.doc, self.node)
        except RequestError as exc:
            self.status.setText(str(exc))
            return
        pixels = bytes(self.node.pixelData(c.x, c.y, c.width, c.height))
        profile = str(self.node.colorProfile()).lower()
        self._linear = "linear" in profile or "g10" in profile
        self._filtered = None
        self.converter.convert("before", pixels, c.width, c.height, self._fmt, self._linear,
                               self._original_ready)
        zoom = self._area_for().zoom * self.state.family.scale if self.state else 1.0
        self.preview.zoom = zoom
        self.preview_note.setText(f"{c.width}×{c.height} pixels at ({c.x}, {c.y}), "
                                  f"{zoom:.0%}. Click the overview to pick another area.")
        self.overview.set_area(c.x, c.y, c.width, c.height)

    def _original_ready(self, image: QImage) -> None:
        self._original = image
        self.preview.picture_moved()
        self._show()

    def _fill_overview(self) -> None:
        width, height = int(self.doc.width()), int(self.doc.height())
        thumbnail = self.doc.thumbnail(192, 144) if hasattr(self.doc, "thumbnail") else None
        self.overview.set_image(thumbnail, width, height)

    def _move_area(self) -> None:
        self._read_preview_source()
        self.schedule_preview()

    def _pan(self, dx: int, dy: int) -> None:
        if self.state is not None:
            self._area_for().pan(dx, dy, self.state.family.scale)
            self._move_area()

    def _zoom(self, steps: int) -> None:
        if self.state is not None:
            self._area_for().zoom_by(steps)
            self._move_area()

    def _pick(self, x: float, y: float) -> None:
        if self.state is not None:
            self._area_for().pick(x, y)
            self._move_area()

    def schedule_preview(self, *_: Any) -> None:
        if self.state is not None and not self._updating:
            self.previews.schedule(needed=not self._show_cached())
            if self.canvas_preview is not None:
                self.canvas_preview.schedule()

    def run_preview(self) -> None:
        self.previews.run()

    def _preview_job(self) -> core.KritaJob | None:
        if self.state is None or self.crop is None:
            return None
        return core.prepare(self.doc, self.node, self.state.family, self.options(),
                            crop=self.crop)

    def _preview_shown(self, job: core.KritaJob, handle: JobHandle) -> None:
        def ready(image: QImage) -> None:
            self._filtered = self._finished_image(job, image)
            self.previews_shown += 1
            self.preview_strength = job.spec.amount.strength
            self.status.setText(self.session.message)
            self._show()

        self._convert("after", job, handle, ready)

    def _convert(self, slot: str, job: core.KritaJob, handle: JobHandle,
                 ready: Callable[[QImage], None]) -> None:
        result = handle.result
        assert result is not None
        self.converter.convert(slot, result.pixels, result.width, result.height,
                               job.spec.fmt, self._linear, ready)

    def _finished_image(self, job: core.KritaJob, image: QImage) -> QImage:
        """A converted preview as shown: inside the selection only where it applies; kept
        in the cache when it is of the area and settings shown now."""
        c = job.area.crop
        if job.area.selected and job.options.selection_only and job.scale == 1:
            mask = bytes(self.doc.selection().pixelData(c.x, c.y, c.width, c.height))
            image = over(image, self._original, mask_qimage(mask, c.width, c.height))
        if c == self.crop and self.state is not None \
                and job.spec.family.name == self.state.family.name:
            self.cache.store(self._source(job.options), job.spec.amount.strength, image)
        return image

    # ---- previews rendered ahead (dni_client.preview_cache)
    def _source(self, options: core.Options) -> Hashable | None:
        assert self.state is not None
        return source_of(options.amount, options.strength_map, self._generation,
                         self.state.family.name,
                         options._replace(amount=None, target=None, sr_output=None))

    def _show_cached(self) -> bool:
        """Show at once what the cache has for the current settings: their own picture
        (True: nothing to compute) or a blend of the two either side (a stand-in until
        the exact preview arrives)."""
        if self.state is None or self.crop is None or self._original is None:
            return False
        options = self.options()
        source = self._source(options)
        self.cache.use(source)
        found = self.cache.picture(options.amount.strength) if source is not None else None
        if found is None:
            return False
        if isinstance(found, Between):
            self._filtered = blend(found.low, found.high, found.t)
            self.stand_ins_shown += 1
        else:
            self._filtered = found
            self.previews_shown += 1
            self.preview_strength = options.amount.strength
        self._show()
        return not isinstance(found, Between)

    def _ahead_job(self) -> core.KritaJob | None:
        if self.state is None or self.crop is None or self.canvas_preview is not None:
            return None  # the on-canvas preview needs the backend more
        options = self.options()
        source = self._source(options)
        self.cache.use(source)
        strength = self.cache.missing(options.amount.strength, self._ahead_busy) \
            if source is not None else None
        if strength is None:
            return None
        return core.prepare(self.doc, self.node, self.state.family,
                            options._replace(amount=Amount(strength, None)), crop=self.crop)

    def _ahead_done(self, job: core.KritaJob, handle: JobHandle) -> None:
        strength = job.spec.amount.strength
        self._ahead_busy.add(strength)  # not asked for again while it is converted

        def ready(image: QImage) -> None:
            self._finished_image(job, image)
            self._ahead_busy.discard(strength)

        self._convert(f"ahead {strength}", job, handle, ready)

    def _show(self, *_: Any) -> None:
        self.preview.show_images(self._original, self._filtered)

    # ---- on-canvas preview
    def _on_canvas_toggled(self, on: bool) -> None:
        if on and self.canvas_preview is None and self.state is not None:
            self.canvas_preview = CanvasPreview(self, self.session, self.doc, self.node,
                                                self._canvas_job, self.status.setText)
            self.canvas_preview.schedule()
        elif not on and self.canvas_preview is not None:
            self.canvas_preview.close()
            self.canvas_preview = None

    def _canvas_job(self) -> core.KritaJob | None:
        """The on-canvas preview's job: the visible part of the image (in the selection)."""
        if self.state is None:
            return None
        crop = preview_rect(self.doc, self.selection_only.isChecked())
        return core.prepare(self.doc, self.node, self.state.family, self.options(),
                            crop=crop)

    # ---- apply
    def apply(self) -> None:
        if self.running is not None or self.state is None:
            return
        options = self.options()
        self.on_canvas.setChecked(False)  # the result replaces the preview layer
        try:
            self.running = self.plugin.start_job(self.doc, self.node, self.state.family,
                                                 options, self._applied)
        except FilterError as exc:
            QMessageBox.warning(self, "DNI", str(exc))
            return
        self.plugin.settings.remember(self.state.family.name, options.amount)
        self.session.job_changed.connect(self._progress)
        self.apply_button.setEnabled(False)
        self.close_button.setText("Cancel")
        self.progress.setValue(0)
        self.progress.setVisible(True)
        self.status.setText("Working on the whole area…" if self.session.connected else
                            "Waiting for the DNI backend to start; the filter runs as soon "
                            "as it is up…")

    def _progress(self, handle: JobHandle) -> None:
        if handle is self.running:
            self.progress.setValue(int(handle.fraction * 100))

    def _applied(self, layer: Any, error: str | None) -> None:
        self.session.job_changed.disconnect(self._progress)
        self.running = None
        self.progress.setVisible(False)
        self.close_button.setText("Close")
        self.apply_button.setEnabled(True)
        if error is not None:
            self.status.setText(error)
            if "Cancelled" not in error:
                QMessageBox.warning(self, "DNI", error)
            return
        self.result_layer = layer
        self.accept()

    def _close_or_cancel(self) -> None:
        if self.running is not None:
            self.session.cancel(self.running)
            self.status.setText("Cancelling…")
            return
        self.reject()

    def done(self, result: int) -> None:  # Qt override
        self.previews.stop()
        self.converter.stop()
        self.on_canvas.setChecked(False)  # takes the preview layer away
        self.session.state_changed.disconnect(self._session_changed)
        if self in _open_dialogs:
            _open_dialogs.remove(self)
        super().done(result)


def _preview_centre(doc: Any) -> tuple[float, float] | None:
    """The selection's centre, else the centre of what the active view shows."""
    sel = core.selection_rect(doc)
    if sel is not None and not sel.empty:
        return sel.x + sel.width / 2.0, sel.y + sel.height / 2.0
    visible = canvas_view.visible_rect(doc)
    if visible is None:
        return None
    return visible.x + visible.width / 2.0, visible.y + visible.height / 2.0


def open_dialog(family: str | None = None, task: str | None = None, doc: Any = None,
                node: Any = None) -> FilterDialog | None:
    """Check the document and layer (default: the active ones), then show the
    (modeless) dialog; returns it. `task` picks the filter (Filter ▸ DNI entry); a
    family alone opens its task's."""
    app = Krita.instance()
    doc = doc if doc is not None else app.activeDocument()
    if node is None and doc is not None:
        node = doc.activeNode()
    window = app.activeWindow()
    parent = window.qwindow() if window is not None else None
    try:
        core.check_layer(doc, node)
        if doc.selection() is not None:
            sel = core.selection_rect(doc)
            if sel is None or sel.empty:
                raise RequestError("The selection is empty. Select an area, or Select ▸ "
                                   "Deselect to filter the whole layer.")
    except RequestError as exc:
        QMessageBox.warning(parent, "DNI", str(exc))
        return None
    if task is None and family is not None:
        known = {f.name: f.task for f in instance().known_families()}
        task = known.get(family, filters.OTHER)
    entry = filters.filter_for(task or filters.OTHER)
    dialog = FilterDialog(doc, node, entry, family=family, parent=parent)
    _open_dialogs.append(dialog)
    dialog.show()
    return dialog
