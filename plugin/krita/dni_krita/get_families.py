"""Get more families…: the backend's catalogue with licence and size, an Install button
per family, progress while it downloads and a Cancel button; a view over
`dni_client.catalogue_model.CatalogueModel` (events come through the plugin's timer,
which ticks the session)."""

from __future__ import annotations

from typing import Any

from dni_client.catalogue_model import INSTALLING, CatalogueItem, CatalogueModel
from dni_client.session import Session

from .qt import (
    QDialog,
    QDialogButtonBox,
    QGridLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QTimer,
    QVBoxLayout,
    QWidget,
)

_TICK_MS = 50  # events while the dialog is open, also where no plugin timer runs


class _Row:
    """One family's widgets in the grid."""

    def __init__(self, grid: QGridLayout, row: int, item: CatalogueItem,
                 model: CatalogueModel) -> None:
        self.name = item.name
        self.title = QLabel(f"<b>{item.title}</b><br>{item.low} → {item.high}")
        self.title.setToolTip(item.tooltip)
        self.licence = QLabel(item.licence)
        self.size = QLabel(item.size_text)
        self.status = QLabel()
        self.progress = QProgressBar()
        self.progress.setRange(0, 100)
        self.button = QPushButton()
        self.button.clicked.connect(lambda: self._clicked(model))
        for column, widget in enumerate((self.title, self.licence, self.size, self.status,
                                         self.progress, self.button)):
            grid.addWidget(widget, row, column)

    @staticmethod
    def _install_or_cancel(model: CatalogueModel, item: CatalogueItem) -> None:
        if item.state == INSTALLING:
            model.cancel(item.name)
        else:
            model.install(item.name)

    def _clicked(self, model: CatalogueModel) -> None:
        self._install_or_cancel(model, model.item(self.name))

    def show(self, item: CatalogueItem) -> None:
        self.status.setText(item.status_text)
        self.progress.setValue(int(round(item.fraction * 100)))
        self.progress.setVisible(item.state == INSTALLING)
        self.button.setText("Cancel" if item.state == INSTALLING else "Install")
        self.button.setEnabled(item.state == INSTALLING or item.can_install)


class GetFamiliesDialog(QDialog):
    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Get more DNI families")
        self.model = CatalogueModel(session)
        self._session = session
        layout = QVBoxLayout(self)
        self.note = QLabel("Families the backend can download. Each file is checked "
                           "against its published SHA-256 before the family appears.")
        self.note.setWordWrap(True)
        layout.addWidget(self.note)
        self.grid = QGridLayout()
        layout.addLayout(self.grid)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
        self.rows: dict[str, _Row] = {}
        self.model.changed.connect(self._show)
        self._timer = QTimer(self)
        self._timer.timeout.connect(session.tick)
        self._timer.start(_TICK_MS)
        session.state_changed.connect(self._state_changed)
        self.model.refresh()

    def _state_changed(self) -> None:
        """Opened before the backend answered: list the catalogue once it does."""
        if not self.model.items and self._session.connected:
            self.model.refresh()

    def _show(self) -> None:
        if self.model.error:
            self.note.setText(self.model.error)
        for index, item in enumerate(self.model.items):
            row = self.rows.get(item.name)
            if row is None:
                row = self.rows[item.name] = _Row(self.grid, index, item, self.model)
            row.show(item)

    def done(self, result: int) -> None:  # noqa: D401 - Qt's name
        """Closing leaves downloads running in the backend; they finish on their own."""
        self._timer.stop()
        self._session.state_changed.disconnect(self._state_changed)
        super().done(result)

    @classmethod
    def open_for(cls, parent: Any = None) -> GetFamiliesDialog:
        """Show the dialog (not modal: the artist may keep painting while it downloads)."""
        from .plugin import instance

        dialog = cls(instance().session, parent)
        dialog.show()
        return dialog
