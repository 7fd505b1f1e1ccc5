"""The "DNI" docker: backend status, re-run the last filter with a new strength, progress
and Cancel for the running job. A view: it reads the Plugin and listens to its signals."""

from __future__ import annotations

from typing import Any

from krita import DockWidget

from dni_client import install_offer
from dni_client.errors import FilterError
from dni_client.job import Amount
from dni_client.session import STATE_ERROR

from . import layer_records
from .plugin import instance
from .qt import (
    QDoubleSpinBox,
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QSlider,
    Qt,
    QTimer,
    QVBoxLayout,
    QWidget,
)

STEPS = 1000


class DNIDocker(DockWidget):
    def __init__(self) -> None:
        super().__init__()
        self.setWindowTitle("DNI")
        body = QWidget(self)
        layout = QVBoxLayout(body)
        self.status = QLabel("Not connected.")
        self.status.setWordWrap(True)
        layout.addWidget(self.status)
        row = QHBoxLayout()
        self.connect_button = QPushButton("Retry")
        self.connect_button.clicked.connect(self._connect)
        self.settings_button = QPushButton("DNI Settings…")
        self.settings_button.clicked.connect(self._open_settings)
        row.addWidget(self.connect_button)
        row.addWidget(self.settings_button)
        self.install_button = QPushButton("Install DNI backend…")
        self.install_button.clicked.connect(self._install)
        row.addWidget(self.install_button)
        self.get_button = QPushButton("Get more families…")
        self.get_button.clicked.connect(self._get_families)
        row.addWidget(self.get_button)
        layout.addLayout(row)
        self.last_label = QLabel("No filter run yet.")
        self.last_label.setWordWrap(True)
        layout.addWidget(self.last_label)
        layout.addLayout(self._strength_row())
        self.rerun_button = QPushButton("Re-run (replaces the last result)")
        self.rerun_button.clicked.connect(self.rerun)
        layout.addWidget(self.rerun_button)
        layout.addLayout(self._progress_row())
        layout.addStretch(1)
        self.setWidget(body)
        self._shown_run: Any = None
        self._showing = False  # the slider is being set from the last run, not by the user
        self._touched = False  # the user moved the slider since the last run was shown
        self.selected: tuple[Any, Any, Any] | None = None  # (doc, DNI layer, its record)
        # libkis has no "active layer changed" signal: look a few times a second.
        self._watch = QTimer(self)
        self._watch.setInterval(300)
        self._watch.timeout.connect(self._watch_selection)
        self._watch.start()
        self.slider.sliderReleased.connect(self._released)
        plugin = instance()
        self._offer: install_offer.Offer | None = None
        plugin.session.state_changed.connect(self._show_offer)
        plugin.session.state_changed.connect(self.refresh)
        plugin.session.job_changed.connect(lambda _handle: self.refresh())
        plugin.last_run_changed.connect(self.refresh)
        self._show_offer()
        self.refresh()

    def _strength_row(self) -> QHBoxLayout:
        row = QHBoxLayout()
        self.low, self.high = QLabel(), QLabel()
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(0, STEPS)
        self.spin = QDoubleSpinBox()
        self.spin.setRange(0.0, 100.0)
        self.spin.setSuffix(" %")
        self.slider.valueChanged.connect(self._slider_moved)
        self.spin.valueChanged.connect(lambda v: self.slider.setValue(int(round(v * STEPS / 100))))
        for widget in (self.low, self.slider, self.high, self.spin):
            row.addWidget(widget)
        return row

    def _slider_moved(self, value: int) -> None:
        self.spin.setValue(value * 100.0 / STEPS)
        if not self._showing:
            self._touched = True

    def _progress_row(self) -> QHBoxLayout:
        row = QHBoxLayout()
        self.progress = QProgressBar()
        self.progress.setRange(0, 100)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self._cancel)
        row.addWidget(self.progress, 1)
        row.addWidget(self.cancel_button)
        return row

    def canvasChanged(self, canvas: Any) -> None:  # noqa: N802 - Krita's name
        self.refresh()

    def _active(self) -> tuple[Any, Any]:
        from krita import Krita

        doc = Krita.instance().activeDocument()
        return doc, (doc.activeNode() if doc is not None else None)

    def _watch_selection(self) -> None:
        doc, node = self._active()
        shown = self.selected[1] if self.selected is not None else None
        same = (node is None and shown is None) or (
            node is not None and shown is not None and node.uniqueId() == shown.uniqueId()
            and node.name() == shown.name())
        if not same:
            self.show_selected(doc, node)

    def show_selected(self, doc: Any, node: Any) -> None:
        """A DNI layer selected in the Layers docker: its settings, ready to re-render."""
        record = layer_records.record_of(doc, node) if doc is not None else None
        self.selected = (doc, node, record) if record is not None else None
        if record is None:
            self._shown_run = None  # the last run's settings again
            self.refresh()
            return
        try:
            family = instance().session.family(record.family)
            self.low.setText(family.labels[0])
            self.high.setText(family.labels[-1])
            strength = record.strength if record.strength is not None \
                else family.strength_of(record.weights)
        except FilterError:
            strength = record.strength
        self.last_label.setText(f"Selected: '{node.name()}'. Move the slider to render it "
                                "again with another strength.")
        self._showing = True
        if strength is not None:
            self.slider.setValue(int(round(strength * STEPS)))
        self._showing = False
        self._touched = False
        self.refresh()

    def _released(self) -> None:
        if self.selected is not None and self._touched:
            self.rerun()

    def _show_offer(self) -> None:
        """Install or Update DNI backend…, when it applies (on state changes only: it
        looks for the backend on disk, so not on every progress event)."""
        session = instance().session
        wanted = session.state == STATE_ERROR or session.connected
        self._offer = install_offer.offer_for(session) if wanted else None
        self.install_button.setVisible(self._offer is not None)
        if self._offer is not None:
            self.install_button.setText("Install DNI backend…" if self._offer.kind
                                        == install_offer.INSTALL else "Update DNI backend…")
            self.install_button.setToolTip(self._offer.message)

    def refresh(self) -> None:
        plugin = instance()
        session = plugin.session
        self.status.setText(session.message)
        trouble = session.state == STATE_ERROR  # what the artist can do about it, only then
        self.connect_button.setVisible(trouble)
        self.settings_button.setVisible(trouble)
        running = session.current
        self.progress.setVisible(running is not None)
        self.cancel_button.setVisible(running is not None)
        if running is not None:
            self.progress.setValue(int(running.fraction * 100))
        last = plugin.last_run
        if self.selected is not None:
            self.rerun_button.setText("Re-render the selected DNI layer")
            self.rerun_button.setEnabled(running is None)
            return
        self.rerun_button.setText("Re-run (replaces the last result)")
        self.rerun_button.setEnabled(last is not None and running is None)
        if last is not None and last is not self._shown_run:
            self._show_run(last)

    def _show_run(self, last: Any) -> None:
        self._shown_run = last
        try:
            family = instance().session.family(last.family)
            self.low.setText(family.labels[0])
            self.high.setText(family.labels[-1])
        except FilterError:
            pass  # not connected: the labels stay as they were
        amount = last.options.amount
        mix = "" if amount.weights is None else " (mix " + "/".join(
            str(int(round(w * 100))) for w in amount.weights) + ")"
        self.last_label.setText(f"Last: {last.family}{mix} on '{last.node.name()}'")
        self._showing = True
        if amount.strength is not None:
            self.slider.setValue(int(round(amount.strength * STEPS)))
        self._showing = False
        self._touched = False

    def _connect(self) -> None:
        try:
            instance().session.step()  # connecting goes on from the extension's timer
        except FilterError as exc:
            QMessageBox.warning(self, "DNI", str(exc))
        self.refresh()

    def _open_settings(self) -> None:
        from .settings_dialog import SettingsDialog

        SettingsDialog.edit()
        self._connect()

    def _install(self) -> None:
        from .install_dialog import open_install

        if self._offer is not None:
            open_install(self, self._offer)
        self._connect()

    def _get_families(self) -> None:
        from .get_families import GetFamiliesDialog

        self._get_dialog = GetFamiliesDialog.open_for(self)  # kept: a shown, unowned dialog

    def _cancel(self) -> None:
        session = instance().session
        if session.current is not None:
            session.cancel(session.current)

    def rerun(self) -> None:
        """The last filter again, with the docker's strength if the artist moved it, else
        with exactly the last strength or mix; its previous result layer (if still there)
        is removed afterwards, undoably."""
        plugin = instance()
        if self.selected is not None:
            self._rerender()
            return
        last = plugin.last_run
        if last is None or plugin.session.current is not None:
            return
        previous = last.layer
        options = last.options
        if self._touched:
            options = options._replace(amount=Amount(self.slider.value() / STEPS, None))

        def finished(layer: Any, error: str | None) -> None:
            if error is not None:
                if "Cancelled" not in error:
                    QMessageBox.warning(self, "DNI", error)
                return
            if previous is not None and previous.parentNode() is not None:
                previous.remove()
            self.refresh()

        try:
            family = plugin.session.family(last.family)
            plugin.start_job(last.doc, last.node, family, options, finished)
        except FilterError as exc:
            QMessageBox.warning(self, "DNI", str(exc))
        self.refresh()

    def _rerender(self) -> None:
        """The selected DNI layer made again, in its place (its record says how)."""
        plugin = instance()
        assert self.selected is not None
        doc, layer, _record = self.selected
        if plugin.session.current is not None:
            return
        amount = Amount(self.slider.value() / STEPS, None) if self._touched else None

        def finished(new: Any, error: str | None) -> None:
            if error is not None:
                if "Cancelled" not in error:
                    QMessageBox.warning(self, "DNI", error)
                return
            self.show_selected(doc, new)

        try:
            plugin.rerender(doc, layer, amount, finished)
        except FilterError as exc:
            QMessageBox.warning(self, "DNI", str(exc))
        self.refresh()
