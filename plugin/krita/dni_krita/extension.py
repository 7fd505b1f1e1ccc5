"""Krita glue: Filter ▸ DNI (one entry per filter in dni_client.filters, plus the
installed families of no listed task), the docker, the event pump and clean shutdown."""

from __future__ import annotations

import sys
from typing import Any

from krita import DockWidgetFactory, DockWidgetFactoryBase, Extension, Krita

from .plugin import menu_entries
from .qt import QApplication, QMenu, QMessageBox, QTimer

SETTINGS_ACTION = "dni_settings"
GET_FAMILIES_ACTION = "dni_get_families"


class DNIExtension(Extension):
    def __init__(self, parent: Any, problem: str | None) -> None:
        super().__init__(parent)
        self.problem = problem  # why DNI cannot work (pyzmq missing), shown on use
        self._actions: list[Any] = []
        self._hooked: list[Any] = []
        self._pump: QTimer | None = None

    def setup(self) -> None:
        if self.problem is None:
            # One QTimer on the GUI thread delivers backend events (never blocks).
            from . import undo_groups
            from .plugin import instance

            instance().undo = undo_groups.groups()
            self._pump = QTimer()
            self._pump.setInterval(25)
            self._pump.timeout.connect(lambda: instance().session.tick())
            self._pump.start()
        app = QApplication.instance()
        if app is not None:
            app.aboutToQuit.connect(self._shutdown)
        Krita.instance().notifier().windowCreated.connect(self._organise_all)

    def _shutdown(self) -> None:
        if self._pump is not None:
            self._pump.stop()
            from .plugin import instance

            instance().shutdown()

    def createActions(self, window: Any) -> None:  # noqa: N802 - Krita's name
        # Krita files actions only into menus that exist when this runs, and its menu bar
        # may still be under construction: put them into Filter, then move them into a
        # DNI submenu once the window is up (and again whenever Filter opens).
        for entry in menu_entries():
            action = window.createAction(entry.action_id, entry.text, "filter")
            action.setToolTip(entry.tooltip)
            action.triggered.connect(lambda _=False, t=entry.task: self._open(task=t))
            self._actions.append(action)
        settings = window.createAction(SETTINGS_ACTION, "DNI Settings…", "filter")
        settings.triggered.connect(lambda _=False: self._settings())
        self._actions.append(settings)
        get = window.createAction(GET_FAMILIES_ACTION, "Get more DNI families…", "filter")
        get.triggered.connect(lambda _=False: self._get_families(window))
        self._actions.append(get)
        QTimer.singleShot(0, self._organise_all)

    def _organise_all(self, *_: Any) -> None:
        # The Window handed to createActions dies with that call: ask Krita afresh.
        for window in Krita.instance().windows():
            try:
                self._organise(window)
            except RuntimeError as exc:  # e.g. a window that Qt has already deleted
                print(f"DNI: could not build Filter ▸ DNI: {exc}", file=sys.stderr)

    @staticmethod
    def _filter_menu(window: Any) -> Any:
        qwin = window.qwindow()
        if qwin is None:
            return None
        for action in qwin.menuBar().actions():
            if action.objectName().lower() == "filter" and action.menu() is not None:
                return action.menu()
        return None

    def _organise(self, window: Any) -> None:
        """Filter ▸ DNI ▸ Denoise… etc. Idempotent."""
        filter_menu = self._filter_menu(window)
        if filter_menu is None:
            return
        menu = next((sub.menu() for sub in filter_menu.actions()
                     if sub.objectName() == "dni" and sub.menu() is not None), None)
        if menu is None:
            menu = QMenu("DNI", filter_menu)
            menu.menuAction().setObjectName("dni")
            filter_menu.addMenu(menu)
        ours = {a.objectName() for a in self._actions}
        for action in filter_menu.actions():
            if action.objectName() in ours:
                filter_menu.removeAction(action)
        present = {a.objectName() for a in menu.actions()}
        for action in self._actions:
            name = action.objectName()
            if name not in present and action.parent() is not None:
                menu.addAction(action)
                present.add(name)
        if filter_menu not in self._hooked:
            self._hooked.append(filter_menu)
            filter_menu.aboutToShow.connect(self._organise_all)

    def _warn_problem(self) -> bool:
        if self.problem is not None:
            QMessageBox.warning(QApplication.activeWindow(), "DNI", self.problem)
        return self.problem is not None

    def _open(self, task: str) -> None:
        if not self._warn_problem():
            from .dialog import open_dialog

            open_dialog(task=task)

    def _settings(self) -> None:
        if not self._warn_problem():
            from .settings_dialog import SettingsDialog

            SettingsDialog.edit()

    def _get_families(self, window: Any) -> None:
        if not self._warn_problem():
            from .get_families import GetFamiliesDialog

            self._get_dialog = GetFamiliesDialog.open_for(window.qwindow())


def register(app: Any, problem: str | None = None) -> None:
    app.addExtension(DNIExtension(app, problem))
    if problem is not None:
        return  # menu entries that explain the problem; no docker without a backend link
    from .docker import DNIDocker

    # Krita 5's bindings have the unscoped name; Krita 6's (PyQt6 style) only the scoped one.
    right = getattr(DockWidgetFactoryBase, "DockRight", None)
    if right is None:
        right = DockWidgetFactoryBase.DockPosition.DockRight
    app.addDockWidgetFactory(DockWidgetFactory("dni_docker", right, DNIDocker))
