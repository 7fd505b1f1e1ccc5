"""The filter dialog (Filter ▸ DNI ▸ …) and the settings dialog.

Everything runs on the GUI thread; the backend is only ever polled (the extension's QTimer
calls Connection.tick), so dragging the slider never waits on the network. Previews are
debounced (DEBOUNCE_MS after the last change, at most MAX_WAIT_MS while dragging) and a
new preview cancels the one in flight; a late answer to an old preview is ignored.
"""

from __future__ import annotations

import time
from typing import Any

from krita import Krita
from PyQt5.QtCore import Qt, QTimer
from PyQt5.QtGui import QColor, QImage, QPainter, QPixmap
from PyQt5.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QLineEdit,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QSlider,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from dni_client import presets as pr
from dni_client import requests as rq
from dni_client.requests import RequestError

from . import api, core
from .connection import STATE_CONNECTED, BackendError

DEBOUNCE_MS = 250
MAX_WAIT_MS = 1000
SLIDER_STEPS = 1000
TASK_TITLES = {"denoise": "Denoise", "super-resolve": "Super-Resolve", "stylize": "Stylize"}

_open_dialogs: list = []  # keep Python references while the dialogs are shown


# -- pixels for display --------------------------------------------------------------------

def _u8(value: float) -> int:
    return 0 if value <= 0.0 else 255 if value >= 1.0 else int(value * 255.0 + 0.5)


def to_qimage(pixels: bytes, width: int, height: int, fmt: rq.PixelFormat,
              linear: bool = False) -> QImage:
    """Layer bytes as an 8-bit ARGB32 QImage (for display only)."""
    if fmt.depth == "U8":
        data = bytes(pixels)
    elif fmt.depth == "U16":
        data = bytes(pixels[1::2])  # little-endian high bytes: BGRA8 at C speed
    else:
        count = width * height * 4
        values = rq.samples(bytes(pixels), fmt.sample)
        out = bytearray(count)
        gamma = 1.0 / 2.2 if linear else 1.0
        # Float layers are RGBA; QImage ARGB32 wants B, G, R, A in memory.
        for i in range(0, count, 4):
            r, g, b, a = values[i], values[i + 1], values[i + 2], values[i + 3]
            if gamma != 1.0:
                r, g, b = (max(r, 0.0) ** gamma, max(g, 0.0) ** gamma, max(b, 0.0) ** gamma)
            out[i], out[i + 1], out[i + 2], out[i + 3] = _u8(b), _u8(g), _u8(r), _u8(a)
        data = bytes(out)
    image = QImage(data, width, height, width * 4, QImage.Format_ARGB32)
    return image.copy()  # own the memory: `data` goes away


def mask_qimage(mask: bytes, width: int, height: int) -> QImage:
    image = QImage(bytes(mask), width, height, width, QImage.Format_Alpha8)
    return image.copy()


def _checker(width: int, height: int) -> QPixmap:
    pix = QPixmap(width, height)
    pix.fill(QColor(200, 200, 200))
    painter = QPainter(pix)
    for y in range(0, height, 8):
        for x in range((y // 8) % 2 * 8, width, 16):
            painter.fillRect(x, y, 8, 8, QColor(160, 160, 160))
    painter.end()
    return pix


# -- the filter dialog ---------------------------------------------------------------------

class FilterDialog(QDialog):
    def __init__(self, doc: Any, node: Any, family: str | None = None,
                 task: str | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.doc, self.node = doc, node
        self.conn = api.connection()
        self.wanted_family, self.wanted_task = family, task
        self.family: dict[str, Any] = {}
        self.weights: tuple = ()
        self.store = pr.PresetStore(self.conn.settings.presets_path)
        self.preview_id = ""
        self.previews_shown = 0  # for scripts and tests: how many previews arrived
        self.preview_strength: float | None = None  # the strength of the shown preview
        self.running: api.RunningJob | None = None
        self.result_layer: Any = None
        self.crop: rq.Rect | None = None  # the preview's area, once the layer was read
        self._original: QImage | None = None
        self._filtered: QImage | None = None
        self._first_change = 0.0
        self._updating = False
        self.setWindowTitle("DNI")
        self.setMinimumWidth(720)
        self._build()
        self._debounce = QTimer(self)
        self._debounce.setSingleShot(True)
        self._debounce.timeout.connect(self.run_preview)
        self._connect_timer = QTimer(self)
        self._connect_timer.timeout.connect(self._try_connect)
        self._connect_timer.start(200)
        self._try_connect()

    # ---- layout
    def _build(self) -> None:
        outer = QHBoxLayout(self)
        left = QVBoxLayout()
        outer.addLayout(left, 1)

        form = QFormLayout()
        self.family_box = QComboBox()
        self.family_box.currentIndexChanged.connect(self._family_chosen)
        form.addRow("Model family:", self.family_box)
        self.axis_label = QLabel()
        self.axis_label.setWordWrap(True)
        form.addRow("", self.axis_label)
        left.addLayout(form)

        strength = QGroupBox("Strength")
        grid = QGridLayout(strength)
        self.low_label, self.high_label = QLabel(), QLabel()
        self.high_label.setAlignment(Qt.AlignRight | Qt.AlignVCenter)
        self.slider = QSlider(Qt.Horizontal)
        self.slider.setRange(0, SLIDER_STEPS)
        self.slider.valueChanged.connect(self._slider_moved)
        self.spin = QDoubleSpinBox()
        self.spin.setRange(0.0, 100.0)
        self.spin.setDecimals(1)
        self.spin.setSuffix(" %")
        self.spin.setKeyboardTracking(False)
        self.spin.valueChanged.connect(self._spin_changed)
        grid.addWidget(self.low_label, 0, 0)
        grid.addWidget(self.slider, 0, 1)
        grid.addWidget(self.high_label, 0, 2)
        grid.addWidget(self.spin, 0, 3)
        left.addWidget(strength)

        self.mixer_box = QGroupBox("Mix all members (weights always sum to 100 %)")
        self.mixer_box.setCheckable(True)
        self.mixer_box.setChecked(False)
        self.mixer_box.toggled.connect(self._mixer_toggled)
        self.mixer_grid = QGridLayout(self.mixer_box)
        self.mixer_sliders: list[QSlider] = []
        self.mixer_spins: list[QDoubleSpinBox] = []
        left.addWidget(self.mixer_box)

        prow = QHBoxLayout()
        self.preset_box = QComboBox()
        self.preset_box.activated.connect(self._preset_chosen)
        prow.addWidget(QLabel("Preset:"))
        prow.addWidget(self.preset_box, 1)
        for text, slot in (("Save…", self._preset_save), ("Rename…", self._preset_rename),
                           ("Delete", self._preset_delete)):
            button = QPushButton(text)
            button.clicked.connect(slot)
            prow.addWidget(button)
        left.addLayout(prow)

        opts = QFormLayout()
        self.pixel_blend = QCheckBox("Pixel blend (the paper's baseline, for comparison)")
        self.pixel_blend.toggled.connect(self.schedule_preview)
        opts.addRow(self.pixel_blend)
        self.selection_only = QCheckBox("Only inside the selection")
        has_sel = self.doc.selection() is not None
        self.selection_only.setChecked(has_sel)
        self.selection_only.setEnabled(has_sel)
        self.selection_only.toggled.connect(self.schedule_preview)
        opts.addRow(self.selection_only)
        self.map_box = QComboBox()
        self.map_box.addItem("None (one strength everywhere)", None)
        if has_sel:
            self.map_box.addItem("The selection", core.MAP_SELECTION)
        for node in api._walk(self.doc.rootNode()):
            if node is not self.doc.rootNode() and node.type() == "paintlayer" \
                    and node.uniqueId() != self.node.uniqueId():
                self.map_box.addItem(f"Layer: {node.name()}", node)
        self.map_box.currentIndexChanged.connect(self._map_chosen)
        opts.addRow("Strength map (white = strongest):", self.map_box)
        self.target_box = QComboBox()
        self.target_box.addItem("New layer above (source untouched)", core.TARGET_NEW_LAYER)
        self.target_box.addItem("Replace the layer (undoable)", core.TARGET_REPLACE)
        opts.addRow("Result:", self.target_box)
        self.sr_box = QComboBox()
        self.sr_box.addItem("Enlarge this image", core.SR_RESIZE)
        self.sr_box.addItem("Open a new document", core.SR_NEW_DOCUMENT)
        self.sr_label = QLabel("Super-resolution:")
        opts.addRow(self.sr_label, self.sr_box)
        left.addLayout(opts)

        self.status = QLabel("Connecting to the DNI backend…")
        self.status.setWordWrap(True)
        left.addWidget(self.status)
        self.progress = QProgressBar()
        self.progress.setRange(0, 100)
        self.progress.setVisible(False)
        left.addWidget(self.progress)
        left.addStretch(1)
        self.buttons = QDialogButtonBox()
        self.apply_button = self.buttons.addButton("Apply", QDialogButtonBox.AcceptRole)
        self.close_button = self.buttons.addButton("Close", QDialogButtonBox.RejectRole)
        self.buttons.accepted.connect(self.apply)
        self.buttons.rejected.connect(self._close_or_cancel)
        self.apply_button.setEnabled(False)
        left.addWidget(self.buttons)

        right = QVBoxLayout()
        size = self.conn.settings.preview_size
        self.preview = QLabel()
        self.preview.setFixedSize(size, size)
        self.preview.setAlignment(Qt.AlignCenter)
        self.preview.setStyleSheet("QLabel { background: #444; }")
        right.addWidget(self.preview)
        self.before_after = QPushButton("Show original (before)")
        self.before_after.setCheckable(True)
        self.before_after.toggled.connect(self._show)
        right.addWidget(self.before_after)
        self.preview_note = QLabel()
        self.preview_note.setWordWrap(True)
        right.addWidget(self.preview_note)
        right.addStretch(1)
        outer.addLayout(right)

    # ---- connecting
    def _try_connect(self) -> None:
        try:
            if not self.conn.step():
                self.status.setText(self.conn.message)
                return
        except BackendError as exc:
            self._connect_timer.stop()
            self.status.setText(f"<b>No backend.</b> {exc}")
            return
        self._connect_timer.stop()
        self.status.setText(self.conn.message)
        self._fill_families()

    def _fill_families(self) -> None:
        self._updating = True
        self.family_box.clear()
        for fam in self.conn.families:
            title = fam.get("title") or fam["name"]
            self.family_box.addItem(f"{title} ({fam['name']})", fam["name"])
        names = [f["name"] for f in self.conn.families]
        tasks = [f.get("task") for f in self.conn.families]
        if self.wanted_family in names:
            chosen = names.index(self.wanted_family)
        elif self.wanted_task in names:
            chosen = names.index(self.wanted_task)
        elif self.wanted_task in tasks:
            chosen = tasks.index(self.wanted_task)
        else:
            chosen = 0
        self._updating = False
        if self.family_box.count() == 0:
            self.status.setText("The backend has no model families installed.")
            return
        self.family_box.setCurrentIndex(chosen)
        self._family_chosen(chosen)

    def _family_chosen(self, index: int) -> None:
        if self._updating or index < 0:
            return
        name = self.family_box.itemData(index)
        self.family = self.conn.family(name)
        members = self.family.get("members") or []
        axis = self.family.get("axis") or {}
        title = self.family.get("title") or name
        self.setWindowTitle(f"DNI – {title}")
        self.low_label.setText(f"{members[0]['label']}" if members else "")
        self.high_label.setText(f"{members[-1]['label']}" if members else "")
        self.low_label.setToolTip(str(axis.get("low", "")))
        self.high_label.setToolTip(str(axis.get("high", "")))
        scale = int(self.family.get("scale") or 1)
        self.axis_label.setText(
            f"{axis.get('name', 'strength')}: 0 % = {axis.get('low', members[0]['label'])}, "
            f"100 % = {axis.get('high', members[-1]['label'])}"
            + (f". Makes the image {scale}× larger." if scale > 1 else ""))
        self.sr_box.setVisible(scale > 1)
        self.sr_label.setVisible(scale > 1)
        self._build_mixer(members)
        self._fill_presets()
        self.apply_button.setEnabled(True)
        self._read_preview_source()
        self._set_strength(0.5)

    def _build_mixer(self, members: list) -> None:
        while self.mixer_grid.count():
            item = self.mixer_grid.takeAt(0)
            if item.widget() is not None:
                item.widget().deleteLater()
        self.mixer_sliders, self.mixer_spins = [], []
        self.mixer_box.setVisible(len(members) > 2)
        self.mixer_box.setChecked(False)
        for i, member in enumerate(members):
            slider = QSlider(Qt.Horizontal)
            slider.setRange(0, SLIDER_STEPS)
            spin = QDoubleSpinBox()
            spin.setRange(0.0, 100.0)
            spin.setDecimals(1)
            spin.setSuffix(" %")
            spin.setKeyboardTracking(False)
            slider.valueChanged.connect(lambda v, i=i: self._mixer_moved(i, v / SLIDER_STEPS))
            spin.valueChanged.connect(lambda v, i=i: self._mixer_moved(i, v / 100.0))
            self.mixer_grid.addWidget(QLabel(str(member["label"])), i, 0)
            self.mixer_grid.addWidget(slider, i, 1)
            self.mixer_grid.addWidget(spin, i, 2)
            self.mixer_sliders.append(slider)
            self.mixer_spins.append(spin)

    # ---- values
    @property
    def positions(self) -> list:
        return [float(m["position"]) for m in self.family.get("members") or []]

    def strength(self) -> float:
        return self.slider.value() / SLIDER_STEPS

    def using_mixer(self) -> bool:
        return self.mixer_box.isVisible() and self.mixer_box.isChecked()

    def _set_strength(self, value: float) -> None:
        """Set the slider, the typed value and the mixer from one strength."""
        value = min(max(value, 0.0), 1.0)
        self._updating = True
        self.slider.setValue(int(round(value * SLIDER_STEPS)))
        self.spin.setValue(value * 100.0)
        self._updating = False
        if self.positions:
            self._set_weights(rq.weights_for_strength(value, self.positions), from_axis=True)
        self.schedule_preview()

    def set_strength(self, value: float) -> None:
        """For scripts and tests: as if the user dragged the slider."""
        self.slider.setValue(int(round(value * SLIDER_STEPS)))

    def _set_weights(self, weights: tuple, from_axis: bool = False) -> None:
        self.weights = tuple(weights)
        self._updating = True
        # zip(strict=) needs Python 3.10; Krita may run 3.8.
        for slider, spin, w in zip(self.mixer_sliders, self.mixer_spins, self.weights):  # noqa: B905
            slider.setValue(int(round(w * SLIDER_STEPS)))
            spin.setValue(w * 100.0)
        if not from_axis:
            s = rq.strength_for_weights(self.weights, self.positions)
            self.slider.setEnabled(s is not None or not self.using_mixer())
            if s is not None:
                self.slider.setValue(int(round(s * SLIDER_STEPS)))
                self.spin.setValue(s * 100.0)
        self._updating = False

    def _slider_moved(self, value: int) -> None:
        if not self._updating:
            self._set_strength(value / SLIDER_STEPS)

    def _spin_changed(self, value: float) -> None:
        if not self._updating:
            self._set_strength(value / 100.0)

    def _mixer_moved(self, index: int, value: float) -> None:
        if self._updating:
            return
        if not self.mixer_box.isChecked():
            self.mixer_box.setChecked(True)
        self._set_weights(rq.set_weight(self.weights, index, value))
        self.schedule_preview()

    def _mixer_toggled(self, on: bool) -> None:
        if self.map_box.currentData() is not None and on:
            self.map_box.setCurrentIndex(0)  # a strength map works along the axis only
        self.slider.setEnabled(True)
        self.schedule_preview()

    def _map_chosen(self, _index: int) -> None:
        mapped = self.map_box.currentData() is not None
        if mapped and self.mixer_box.isChecked():
            self.mixer_box.setChecked(False)
        # With a map the strength comes from the map, pixel by pixel.
        self.slider.setEnabled(not mapped)
        self.spin.setEnabled(not mapped)
        self._read_preview_source()
        self.schedule_preview()

    def options(self) -> core.Options:
        smap = self.map_box.currentData()
        mixing = self.using_mixer() and smap is None
        return core.Options(
            strength=None if mixing else self.strength(),
            weights=tuple(self.weights) if mixing else None,
            mode="pixel" if self.pixel_blend.isChecked() else "network",
            selection_only=self.selection_only.isChecked(),
            strength_map=smap,
            target=self.target_box.currentData(),
            sr_output=self.sr_box.currentData())

    # ---- presets
    def _fill_presets(self) -> None:
        self.preset_box.clear()
        self.preset_box.addItem("(choose a preset)", None)
        for preset in self.store.presets(self.family):
            label = preset.name + ("" if not preset.builtin else "  [family]")
            self.preset_box.addItem(label, preset)

    def _preset_chosen(self, index: int) -> None:
        preset = self.preset_box.itemData(index)
        if preset is None:
            return
        if preset.weights is not None:
            self.mixer_box.setChecked(True)
            self._set_weights(preset.weights)
            self.schedule_preview()
        else:
            self.mixer_box.setChecked(False)
            self._set_strength(preset.strength)

    def _preset_save(self) -> None:
        name, ok = QInputDialog.getText(self, "Save preset", "Preset name:")
        if not ok:
            return
        o = self.options()
        try:
            self.store.save(self.family["name"], name, strength=o.strength, weights=o.weights,
                            members=len(self.positions), family=self.family)
        except pr.PresetError as exc:
            QMessageBox.warning(self, "DNI", str(exc))
        self._fill_presets()

    def _selected_user_preset(self) -> Any:
        preset = self.preset_box.currentData()
        if preset is None:
            QMessageBox.information(self, "DNI", "Choose one of your presets first.")
        return preset

    def _preset_rename(self) -> None:
        preset = self._selected_user_preset()
        if preset is None:
            return
        name, ok = QInputDialog.getText(self, "Rename preset", "New name:", QLineEdit.Normal,
                                        preset.name)
        if ok:
            try:
                self.store.rename(self.family["name"], preset.name, name, family=self.family)
            except pr.PresetError as exc:
                QMessageBox.warning(self, "DNI", str(exc))
            self._fill_presets()

    def _preset_delete(self) -> None:
        preset = self._selected_user_preset()
        if preset is None:
            return
        try:
            self.store.delete(self.family["name"], preset.name, family=self.family)
        except pr.PresetError as exc:
            QMessageBox.warning(self, "DNI", str(exc))
        self._fill_presets()

    # ---- preview
    def _crop(self) -> rq.Rect:
        image = core.image_rect(self.doc)
        # Super-resolution: a crop that comes back at the preview's size, shown 1:1.
        size = self.conn.settings.preview_size // max(1, int(self.family.get("scale") or 1))
        return rq.preview_crop(image, size,
                               selection_bounds=core.selection_rect(self.doc),
                               centre=view_centre(self.doc))

    def _read_preview_source(self) -> None:
        try:
            self.crop = self._crop()
            c = self.crop
            fmt = core.check_layer(self.doc, self.node)
            pixels = bytes(self.node.pixelData(c.x, c.y, c.width, c.height))
        except RequestError as exc:
            self.status.setText(str(exc))
            return
        self._fmt = fmt
        self._linear = "linear" in str(self.node.colorProfile()).lower() or \
            "g10" in str(self.node.colorProfile()).lower()
        self._original = to_qimage(pixels, c.width, c.height, fmt, self._linear)
        self.preview_note.setText(f"Preview: {c.width}×{c.height} pixels at ({c.x}, {c.y}).")
        self._show()

    def schedule_preview(self, *_: Any) -> None:
        if not self.family or self._updating:
            return
        now = time.monotonic()
        if not self._debounce.isActive():
            self._first_change = now
        waited_ms = (now - self._first_change) * 1000.0
        # Restart the countdown on every change, but never wait longer than MAX_WAIT_MS.
        self._debounce.start(int(max(0, min(DEBOUNCE_MS, MAX_WAIT_MS - waited_ms))))

    def run_preview(self) -> None:
        if not self.family or self.crop is None or self.conn.state != STATE_CONNECTED:
            return
        options = self.options()
        try:
            job = core.prepare(self.doc, self.node, self.family, options, crop=self.crop)
        except RequestError as exc:
            self.status.setText(str(exc))
            return
        old = self.preview_id
        strength = options.strength
        ident: list = []  # filled below: which preview an answer belongs to
        try:
            self.preview_id = self.conn.submit(
                job.submit_kwargs(preview=True),
                lambda kind, header, pixels: self._preview_event(
                    kind, header, pixels, job, strength, ident[0] if ident else ""))
        except BackendError as exc:
            self.status.setText(str(exc))
            return
        ident.append(self.preview_id)
        if old:
            self.conn.cancel(old)  # superseded: the server drops it if it is still queued
        self.status.setText("Updating the preview…")

    def _preview_event(self, kind: str, header: dict, pixels: Any, job: core.Job,
                       strength: float | None, job_id: str) -> None:
        if kind == "progress" or job_id != self.preview_id:
            return  # an older preview: a newer one is on its way
        if kind == "error":
            if header.get("code") not in ("cancelled", "superseded"):
                self.status.setText(f"Preview failed: {header.get('message')}")
            return
        w, h = int(header["width"]), int(header["height"])
        image = to_qimage(pixels or b"", w, h, job.fmt, self._linear)
        c = job.area.crop
        if job.area.selected and job.options.selection_only and job.scale == 1:
            mask = bytes(self.doc.selection().pixelData(c.x, c.y, c.width, c.height))
            image = _over(image, self._original, mask_qimage(mask, c.width, c.height))
        self._filtered = image
        self.previews_shown += 1
        self.preview_strength = strength
        self.status.setText(self.conn.message)
        self._show()

    def _show(self, *_: Any) -> None:
        image = self._original if (self.before_after.isChecked() or self._filtered is None) \
            else self._filtered
        self.before_after.setText("Showing the original (before)"
                                  if self.before_after.isChecked() else
                                  "Show original (before)")
        if image is None:
            return
        size = self.preview.size()
        canvas = _checker(size.width(), size.height())
        painter = QPainter(canvas)
        scaled = image.scaled(size, Qt.KeepAspectRatio, Qt.SmoothTransformation)
        painter.drawImage((size.width() - scaled.width()) // 2,
                          (size.height() - scaled.height()) // 2, scaled)
        painter.end()
        self.preview.setPixmap(canvas)

    # ---- apply
    def apply(self) -> None:
        if self.running is not None or not self.family:
            return
        try:
            self.running = api.start_job(self.doc, self.node, self.family, self.options(),
                                         self._applied)
        except (RequestError, BackendError) as exc:
            QMessageBox.warning(self, "DNI", str(exc))
            return
        api.job_listeners.append(self._progress)
        self.apply_button.setEnabled(False)
        self.close_button.setText("Cancel")
        self.progress.setValue(0)
        self.progress.setVisible(True)
        self.status.setText("Working on the whole area…")

    def _progress(self) -> None:
        if self.running is not None:
            self.progress.setValue(int(self.running.fraction * 100))

    def _applied(self, layer: Any, error: str | None) -> None:
        if self._progress in api.job_listeners:
            api.job_listeners.remove(self._progress)
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
            self.running.cancel()
            self.status.setText("Cancelling…")
            return
        self.reject()

    def done(self, result: int) -> None:  # noqa: D401 - Qt override
        if self.preview_id:
            self.conn.cancel(self.preview_id)
        self._connect_timer.stop()
        self._debounce.stop()
        if self in _open_dialogs:
            _open_dialogs.remove(self)
        super().done(result)


def _over(top: QImage, bottom: QImage | None, mask: QImage) -> QImage:
    """`top` where the mask is white, `bottom` elsewhere (soft edges blend)."""
    masked = top.convertToFormat(QImage.Format_ARGB32_Premultiplied)
    painter = QPainter(masked)
    painter.setCompositionMode(QPainter.CompositionMode_DestinationIn)
    painter.drawImage(0, 0, mask)
    painter.end()
    if bottom is None:
        return masked
    out = bottom.convertToFormat(QImage.Format_ARGB32_Premultiplied)
    painter = QPainter(out)
    painter.drawImage(0, 0, masked)
    painter.end()
    return out


def view_centre(doc: Any) -> tuple | None:
    """The centre of what the active view shows, in image pixels (best effort: libkis has
    no direct call for it in Krita 5.1, so read the canvas' scroll bars)."""
    try:
        window = Krita.instance().activeWindow()
        view = window.activeView() if window is not None else None
        if view is None or view.document() is None or view.document().rootNode().uniqueId() \
                != doc.rootNode().uniqueId():
            return None
        from PyQt5.QtWidgets import QAbstractScrollArea

        areas = [a for a in window.qwindow().findChildren(QAbstractScrollArea)
                 if a.isVisible() and a.metaObject().className() == "KisCanvasController"]
        if not areas:
            return None
        area = areas[0]
        fx = []
        for bar in (area.horizontalScrollBar(), area.verticalScrollBar()):
            span = bar.maximum() - bar.minimum() + bar.pageStep()
            fx.append((bar.value() - bar.minimum() + bar.pageStep() / 2.0) / span
                      if span > 0 else 0.5)
        return (fx[0] * doc.width(), fx[1] * doc.height())
    except Exception:
        return None


def open_dialog(family: str | None = None, task: str | None = None) -> FilterDialog | None:
    """Check the document and layer, then show the (modeless) dialog; returns it."""
    app = Krita.instance()
    doc = app.activeDocument()
    node = doc.activeNode() if doc is not None else None
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
    dialog = FilterDialog(doc, node, family=family, task=task, parent=parent)
    if task and not family:
        dialog.setWindowTitle(f"DNI – {TASK_TITLES.get(task, task)}")
    _open_dialogs.append(dialog)
    dialog.show()
    return dialog


# -- settings ------------------------------------------------------------------------------

class SettingsDialog(QDialog):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("DNI Settings")
        s = api.connection().settings
        form = QFormLayout(self)
        self.endpoint = QLineEdit(s.endpoint)
        form.addRow("Backend endpoint:", self.endpoint)
        self.autostart = QCheckBox("Start the local backend when nothing answers")
        self.autostart.setChecked(s.autostart)
        form.addRow(self.autostart)
        self.command = QLineEdit(" ".join(s.backend_command))
        self.command.setPlaceholderText(str(s.backend_settings().get("command") or "dni"))
        form.addRow("Backend command:", self.command)
        self.server_key = QLineEdit(s.server_public_key)
        self.server_key.setPlaceholderText("CurveZMQ server public key (Z85) or key file")
        form.addRow("Server key:", self.server_key)
        self.client_keys = QLineEdit(s.client_keys_dir)
        self.client_keys.setPlaceholderText("folder with this client's CurveZMQ keys")
        form.addRow("Client keys:", self.client_keys)
        self.preview_size = QSpinBox()
        self.preview_size.setRange(64, 2048)
        self.preview_size.setValue(s.preview_size)
        self.preview_size.setSuffix(" px")
        form.addRow("Preview size:", self.preview_size)
        buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)

    def store(self) -> None:
        conn = api.connection()
        s = conn.settings
        endpoint = self.endpoint.text().strip() or s.endpoint
        changed = (endpoint != s.endpoint or self.server_key.text().strip() !=
                   s.server_public_key or self.client_keys.text().strip() != s.client_keys_dir)
        s.endpoint = endpoint
        s.autostart = self.autostart.isChecked()
        s.backend_command = [self.command.text().strip()] if self.command.text().strip() \
            else []
        s.server_public_key = self.server_key.text().strip()
        s.client_keys_dir = self.client_keys.text().strip()
        s.preview_size = self.preview_size.value()
        s.save()
        if changed:
            conn.reset()

    @classmethod
    def edit(cls) -> None:
        window = Krita.instance().activeWindow()
        dialog = cls(window.qwindow() if window is not None else None)
        if dialog.exec_() == QDialog.Accepted:
            dialog.store()

