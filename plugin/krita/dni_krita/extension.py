"""Krita glue: the Filter ▸ DNI menu, the docker, the event pump and clean shutdown."""

from __future__ import annotations

import sys
from typing import Any

from krita import DockWidgetFactory, DockWidgetFactoryBase, Extension, Krita
from PyQt5.QtCore import QTimer
from PyQt5.QtWidgets import QApplication, QMenu, QMessageBox

# Fixed entries (present before the backend ever ran): action id, text, task.
FIXED = (
    ("dni_denoise", "Denoise…", "denoise"),
    ("dni_super_resolve", "Super-Resolve…", "super-resolve"),
    ("dni_stylize", "Stylize…", "stylize"),
)
_IDS = {a for a, _, _ in FIXED} | {"dni_other", "dni_settings"}
_pump: Any = None


def _start_pump() -> None:
    """One QTimer on the GUI thread delivers backend events (never blocks)."""
    global _pump
    if _pump is not None:
        return
    _pump = QTimer()
    _pump.setInterval(25)
    _pump.timeout.connect(_tick)
    _pump.start()


def _tick() -> None:
    if _problem is not None:
        return
    from . import api  # not at import time: it needs pyzmq, which may be missing

    conn = api._connection
    if conn is not None:
        conn.tick()


def _shutdown() -> None:
    if _pump is not None:
        _pump.stop()
    if _problem is not None:
        return
    from . import api

    if api._connection is not None:
        api._connection.shutdown()


class DNIExtension(Extension):
    def __init__(self, parent: Any) -> None:
        super().__init__(parent)
        self._actions: list[Any] = []
        self._dynamic: dict[str, Any] = {}
        self._hooked: list[Any] = []

    def setup(self) -> None:
        _start_pump()
        app = QApplication.instance()
        if app is not None:
            app.aboutToQuit.connect(_shutdown)
        Krita.instance().notifier().windowCreated.connect(self._organise_all)

    def createActions(self, window: Any) -> None:
        # Krita files actions only into menus that exist when this runs, and its menu bar
        # may still be under construction: put them into Filter, then move them into a
        # DNI submenu once the window is up (and again whenever Filter opens).
        actions = []
        for action_id, text, task in FIXED:
            action = window.createAction(action_id, text, "filter")
            action.triggered.connect(lambda _=False, t=task: _open(task=t))
            actions.append(action)
        more = window.createAction("dni_other", "Other DNI Family…", "filter")
        more.triggered.connect(lambda _=False: _open())
        settings = window.createAction("dni_settings", "DNI Settings…", "filter")
        settings.triggered.connect(lambda _=False: _settings())
        self._actions.extend(actions + [more, settings])
        QTimer.singleShot(0, self._organise_all)

    def _organise_all(self, *_: Any) -> None:
        # The Window handed to createActions dies with that call: ask Krita afresh.
        for window in Krita.instance().windows():
            try:
                self._organise(window)
            except RuntimeError as exc:  # e.g. a window that Qt has already deleted
                print(f"DNI: could not build Filter ▸ DNI: {exc}", file=sys.stderr)

    def _filter_menu(self, window: Any) -> Any:
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
        menu = None
        for sub in filter_menu.actions():
            if sub.objectName() == "dni" and sub.menu() is not None:
                menu = sub.menu()
        if menu is None:
            menu = QMenu("DNI", filter_menu)
            menu.menuAction().setObjectName("dni")
            filter_menu.addMenu(menu)
            menu.aboutToShow.connect(lambda m=menu: self._refresh(m))
        for action in filter_menu.actions():
            if action.objectName() in _IDS:
                filter_menu.removeAction(action)
        present = {a.objectName() for a in menu.actions()}
        for action in self._actions:
            name = action.objectName()
            if name in _IDS and name not in present and action.parent() is not None:
                menu.addAction(action)
                present.add(name)
        if filter_menu not in self._hooked:
            self._hooked.append(filter_menu)
            filter_menu.aboutToShow.connect(self._organise_all)

    def _refresh(self, menu: QMenu) -> None:
        """Entries for installed families beyond the three fixed ones."""
        if _problem is not None:
            return
        from . import api

        conn = api.connection()
        families = conn.families or conn.settings.cached_families() or []
        fixed = {t for _, _, t in FIXED}
        names = {f.get("name") for f in families}
        for name in list(self._dynamic):
            if name not in names:
                menu.removeAction(self._dynamic.pop(name))
        for fam in families:
            name = fam.get("name")
            if not name or name in self._dynamic or name in fixed:
                continue
            action = menu.addAction(f"{fam.get('title') or name}…")
            action.triggered.connect(lambda _=False, n=name: _open(family=n))
            self._dynamic[name] = action


_problem: Any = None  # why the plugin cannot work (pyzmq missing), shown instead of dialogs


def _open(family: Any = None, task: Any = None) -> None:
    if _problem is not None:
        QMessageBox.warning(QApplication.activeWindow(), "DNI", _problem)
        return
    from .dialog import open_dialog

    open_dialog(family=family, task=task)


def _settings() -> None:
    if _problem is not None:
        QMessageBox.warning(QApplication.activeWindow(), "DNI", _problem)
        return
    from .dialog import SettingsDialog

    SettingsDialog.edit()


def register(app: Any, problem: str | None = None) -> None:
    global _problem
    _problem = problem
    app.addExtension(DNIExtension(app))
    if problem is not None:
        return  # menu entries that explain the problem; no docker without a backend link
    from .docker import DNIDocker

    app.addDockWidgetFactory(DockWidgetFactory("dni_docker", DockWidgetFactoryBase.DockRight,
                                               DNIDocker))
