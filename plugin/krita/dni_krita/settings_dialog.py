"""DNI Settings…: where the backend is, how to start it, keys for a remote one."""

from __future__ import annotations

from typing import Any

from krita import Krita

from .plugin import instance
from .qt import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLineEdit,
    QSpinBox,
    QWidget,
    exec_dialog,
)


class SettingsDialog(QDialog):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("DNI Settings")
        plugin = instance()
        b = plugin.settings.backend
        form = QFormLayout(self)
        self.endpoint = QLineEdit(b.endpoint)
        form.addRow("Backend endpoint:", self.endpoint)
        self.autostart = QCheckBox("Start the local backend when nothing answers")
        self.autostart.setChecked(b.autostart)
        form.addRow(self.autostart)
        self.command = QLineEdit(" ".join(b.backend_command))
        installed = b.installed.get("command") or ["dni"]
        self.command.setPlaceholderText(" ".join(map(str, installed)))
        form.addRow("Backend command:", self.command)
        self.server_key = QLineEdit(b.server_public_key)
        self.server_key.setPlaceholderText("CurveZMQ server public key (Z85) or key file")
        form.addRow("Server key:", self.server_key)
        self.client_keys = QLineEdit(b.client_keys_dir)
        self.client_keys.setPlaceholderText("folder with this client's CurveZMQ keys")
        form.addRow("Client keys:", self.client_keys)
        self.preview_size = QSpinBox()
        self.preview_size.setRange(64, 2048)
        self.preview_size.setValue(plugin.settings.preview_size)
        self.preview_size.setSuffix(" px")
        form.addRow("Preview size:", self.preview_size)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok
                                   | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)

    def store(self) -> None:
        plugin = instance()
        b = plugin.settings.backend
        endpoint = self.endpoint.text().strip() or b.endpoint
        keys = (self.server_key.text().strip(), self.client_keys.text().strip())
        changed = endpoint != b.endpoint or keys != (b.server_public_key, b.client_keys_dir)
        b.endpoint = endpoint
        b.autostart = self.autostart.isChecked()
        command = self.command.text().strip()
        b.backend_command = [command] if command else []
        b.server_public_key, b.client_keys_dir = keys
        plugin.settings.preview_size = self.preview_size.value()
        plugin.settings.save()
        if changed:
            plugin.session.reset()

    @classmethod
    def edit(cls) -> None:
        window: Any = Krita.instance().activeWindow()
        dialog = cls(window.qwindow() if window is not None else None)
        if exec_dialog(dialog):
            dialog.store()
