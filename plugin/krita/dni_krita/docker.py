"""The "DNI" docker: backend status, re-run the last filter with new sliders, progress and
Cancel for the running job."""

from __future__ import annotations

from typing import Any

from krita import DockWidget
from PyQt5.QtCore import Qt
from PyQt5.QtWidgets import (
    QDoubleSpinBox,
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from dni_client.requests import RequestError

from . import api
from .connection import STATE_CONNECTED, BackendError

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
        self.connect_button = QPushButton("Connect / start backend")
        self.connect_button.clicked.connect(self._connect)
        layout.addWidget(self.connect_button)

        self.last_label = QLabel("No filter run yet.")
        self.last_label.setWordWrap(True)
        layout.addWidget(self.last_label)
        row = QHBoxLayout()
        self.low = QLabel()
        self.slider = QSlider(Qt.Horizontal)
        self.slider.setRange(0, STEPS)
        self.high = QLabel()
        self.spin = QDoubleSpinBox()
        self.spin.setRange(0.0, 100.0)
        self.spin.setSuffix(" %")
        self.slider.valueChanged.connect(lambda v: self.spin.setValue(v * 100.0 / STEPS))
        self.spin.valueChanged.connect(lambda v: self.slider.setValue(int(round(v * STEPS / 100))))
        for w in (self.low, self.slider, self.high, self.spin):
            row.addWidget(w)
        layout.addLayout(row)
        self.rerun_button = QPushButton("Re-run (replaces the last result)")
        self.rerun_button.clicked.connect(self.rerun)
        layout.addWidget(self.rerun_button)

        prow = QHBoxLayout()
        self.progress = QProgressBar()
        self.progress.setRange(0, 100)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self._cancel)
        prow.addWidget(self.progress, 1)
        prow.addWidget(self.cancel_button)
        layout.addLayout(prow)
        layout.addStretch(1)
        self.setWidget(body)
        self._shown_run: Any = None
        api.connection().listeners.append(self.refresh)
        api.job_listeners.append(self.refresh)
        self.refresh()

    def canvasChanged(self, canvas: Any) -> None:  # noqa: N802 - Krita's name
        self.refresh()

    def refresh(self) -> None:
        conn = api.connection()
        self.status.setText(conn.message)
        self.connect_button.setVisible(conn.state != STATE_CONNECTED)
        running = api.current
        self.progress.setVisible(running is not None)
        self.cancel_button.setVisible(running is not None)
        if running is not None:
            self.progress.setValue(int(running.fraction * 100))
        last = api.last_run
        self.rerun_button.setEnabled(last is not None and running is None)
        if last is not None and last is not self._shown_run:
            self._shown_run = last
            options = last["options"]
            try:
                fam = conn.family(last["family"])
                members = fam.get("members") or []
                self.low.setText(str(members[0]["label"]) if members else "")
                self.high.setText(str(members[-1]["label"]) if members else "")
            except BackendError:
                pass
            self.last_label.setText(f"Last: {last['family']} on '{last['node'].name()}'")
            if options.strength is not None:
                self.slider.setValue(int(round(options.strength * STEPS)))

    def _connect(self) -> None:
        try:
            api.connection().step()
        except BackendError as exc:
            QMessageBox.warning(self, "DNI", str(exc))
        self.refresh()

    def _cancel(self) -> None:
        if api.current is not None:
            api.current.cancel()

    def rerun(self) -> None:
        """The last filter again with the docker's strength; its previous result layer
        (if still there) is removed afterwards, undoably."""
        last = api.last_run
        if last is None or api.current is not None:
            return
        previous = last.get("layer")
        options = last["options"]._replace(strength=self.slider.value() / STEPS, weights=None)

        def finished(layer: Any, error: str | None) -> None:
            if error is not None:
                if "Cancelled" not in error:
                    QMessageBox.warning(self, "DNI", error)
                return
            if previous is not None and previous.parentNode() is not None:
                previous.remove()
            self.refresh()

        try:
            fam = api.connection().family(last["family"])
            api.start_job(last["doc"], last["node"], fam, options, finished)
        except (RequestError, BackendError) as exc:
            QMessageBox.warning(self, "DNI", str(exc))
        self.refresh()
