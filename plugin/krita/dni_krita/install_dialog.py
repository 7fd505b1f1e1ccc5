"""Install DNI backend… / Update DNI backend…: the Krita view over
dni_client.install_offer. It shows the offer, lets the artist pick where the backend comes
from (the package index, or a wheel file), and only on their click runs the installer the
plugin carries, polling it from a timer: progress bar, output lines, a log file."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from dni_client import install_offer, launcher
from dni_client.install_offer import InstallRequest, InstallRun, Offer

from .qt import (
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QTimer,
    QtWidgets,
    QVBoxLayout,
    QWidget,
    exec_dialog,
)
from .settings import PLUGIN_DIR

POLL_MS = 200
NO_PYTHON = ("Installing the backend needs Python 3.9 or newer on this computer (the "
             "installer then fetches what else it needs). Install it from python.org, then "
             "try again.")
NO_INSTALLER = ("This copy of the plugin carries no installer. Install DNI with "
                "installers/install.py from the DNI download.")


class InstallDialog(QDialog):
    """`on_installed()` runs once the installer succeeded (the host reloads its backend
    settings and reconnects)."""

    def __init__(self, offer: Offer, log_dir: str, on_installed: Callable[[], None],
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Update DNI backend" if offer.kind == install_offer.UPDATE
                            else "Install DNI backend")
        self.log_path = os.path.join(log_dir, "install.log")
        self.on_installed = on_installed
        self.run: InstallRun | None = None
        self.timer = QTimer(self)
        self.timer.timeout.connect(self._poll)

        layout = QVBoxLayout(self)
        self.message = QLabel(offer.message)
        self.message.setWordWrap(True)
        layout.addWidget(self.message)
        row = QHBoxLayout()
        self.wheel = QLineEdit()
        self.wheel.setPlaceholderText("a dni-….whl file (empty: download from the Internet)")
        browse = QPushButton("Choose…")
        browse.clicked.connect(self._choose_wheel)
        row.addWidget(self.wheel)
        row.addWidget(browse)
        layout.addLayout(row)
        self.index_url = QLineEdit()
        self.index_url.setPlaceholderText("package index (empty: PyPI)")
        layout.addWidget(self.index_url)
        self.progress = QProgressBar()
        self.progress.setRange(0, 100)
        layout.addWidget(self.progress)
        self.output = QtWidgets.QPlainTextEdit()
        self.output.setReadOnly(True)
        self.output.setMaximumBlockCount(2000)
        layout.addWidget(self.output)
        self.buttons = QDialogButtonBox()
        self.start_button = self.buttons.addButton(
            "Update" if offer.kind == install_offer.UPDATE else "Install",
            QDialogButtonBox.ButtonRole.AcceptRole)
        self.start_button.clicked.connect(self.start)
        self.close_button = self.buttons.addButton(QDialogButtonBox.StandardButton.Cancel)
        self.close_button.clicked.connect(self._cancel_or_close)
        layout.addWidget(self.buttons)
        self.resize(640, 420)

    def _choose_wheel(self) -> None:
        path, _ = QtWidgets.QFileDialog.getOpenFileName(self, "DNI wheel", "",
                                                        "Python wheels (*.whl)")
        if path:
            self.wheel.setText(path)

    def request(self) -> InstallRequest | str:
        """What to run, or the reason it cannot run (in plain words)."""
        installer = install_offer.installer_path(PLUGIN_DIR)
        if installer is None:
            return NO_INSTALLER
        python = install_offer.find_python()
        if python is None:
            return NO_PYTHON
        wheel = self.wheel.text().strip()
        if wheel and not os.path.isfile(wheel):
            return f"There is no file {wheel}."
        return InstallRequest(installer, python, wheel=wheel or None,
                              index_url=self.index_url.text().strip() or None,
                              point=[PLUGIN_DIR])

    def start(self) -> None:
        request = self.request()
        if isinstance(request, str):
            self.message.setText(request)
            return
        self.run = InstallRun(request, self.log_path)
        try:
            self.run.start()
        except (launcher.LaunchError, OSError) as exc:  # said, not raised
            self.message.setText(str(exc))
            self.run = None
            return
        self.start_button.setEnabled(False)
        self.message.setText(f"Installing… (log: {self.log_path})")
        self.timer.start(POLL_MS)

    def _poll(self) -> None:
        run = self.run
        if run is None:
            return
        for line in run.poll():
            self.output.appendPlainText(line)
        self.progress.setValue(int(run.progress * 100))
        if not run.finished():
            return
        self.timer.stop()
        for line in run.poll():
            self.output.appendPlainText(line)
        failure = run.failure()
        if failure:
            self.message.setText(failure)
            self.start_button.setEnabled(True)
        else:
            self.progress.setValue(100)
            self.message.setText("The DNI backend is installed. The filters start it when "
                                 "needed.")
            self.close_button.setText("Close")
            self.on_installed()

    def _cancel_or_close(self) -> None:
        if self.run is not None and not self.run.finished():
            self.run.cancel()
            self.message.setText(f"Cancelled. Run it again to finish (log: "
                                 f"{self.log_path}).")
            self.start_button.setEnabled(True)
            return
        self.reject()

    def closeEvent(self, event: Any) -> None:  # noqa: N802  (Qt's name)
        if self.run is not None and not self.run.finished():
            self.run.cancel()
        super().closeEvent(event)


def open_install(parent: QWidget | None, offer: Offer) -> None:
    """Show the install (or update) dialog for the plugin's session; on success the
    session reads the new backend record and reconnects."""
    from .plugin import instance

    session = instance().session
    dialog = InstallDialog(offer, session.settings.config_dir,
                           lambda: install_offer.adopt_new_backend(session, PLUGIN_DIR), parent)
    exec_dialog(dialog)
