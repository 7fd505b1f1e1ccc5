"""Krita glue: the Filter ▸ DNI menu, the docker, the event pump and clean shutdown."""

from __future__ import annotations

from typing import Any

from krita import DockWidgetFactory, DockWidgetFactoryBase, Extension
from PyQt5.QtCore import QTimer
from PyQt5.QtWidgets import QApplication, QMenu

from . import api

# Fixed entries (present before the backend ever ran): action id, text, task.
FIXED = (
    ("dni_denoise", "Denoise…", "denoise"),
    ("dni_super_resolve", "Super-Resolve…", "super-resolve"),
    ("dni_stylize", "Stylize…", "stylize"),
)
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
    conn = api._connection
    if conn is not None:
        conn.tick()


def _shutdown() -> None:
    if _pump is not None:
        _pump.stop()
    if api._connection is not None:
        api._connection.shutdown()


class DNIExtension(Extension):
    def __init__(self, parent: Any) -> None:
        super().__init__(parent)
        self._menus: list[QMenu] = []

    def setup(self) -> None:
        _start_pump()
        app = QApplication.instance()
        if app is not None:
            app.aboutToQuit.connect(_shutdown)

    def createActions(self, window: Any) -> None:
        menu = self._dni_menu(window)
        for action_id, text, task in FIXED:
            action = window.createAction(action_id, text, "filter/dni")
            action.triggered.connect(lambda _=False, t=task: _open(task=t))
            if menu is not None and action not in menu.actions():
                menu.addAction(action)
        if menu is not None:
            menu.addSeparator()
            self._dynamic: dict[str, Any] = {}
            menu.aboutToShow.connect(lambda m=menu: self._refresh(m))
        more = window.createAction("dni_other", "Other DNI Family…", "filter/dni")
        more.triggered.connect(lambda _=False: _open())
        settings = window.createAction("dni_settings", "DNI Settings…", "filter/dni")
        settings.triggered.connect(lambda _=False: _settings())
        for extra in (more, settings):
            if menu is not None and extra not in menu.actions():
                menu.addAction(extra)

    def _dni_menu(self, window: Any) -> Any:
        """Filter ▸ DNI: Krita only files actions into menus that exist, so make it."""
        qwin = window.qwindow()
        if qwin is None:
            return None
        for action in qwin.menuBar().actions():
            if action.objectName().lower() == "filter" and action.menu() is not None:
                for sub in action.menu().actions():
                    if sub.objectName() == "dni" and sub.menu() is not None:
                        return sub.menu()
                menu = QMenu("DNI", action.menu())
                menu.menuAction().setObjectName("dni")
                action.menu().addMenu(menu)
                self._menus.append(menu)
                return menu
        return None

    def _refresh(self, menu: QMenu) -> None:
        """Entries for installed families beyond the three fixed ones."""
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
            if fam.get("task") in fixed and any(f.get("name") == fam.get("task")
                                                for f in families):
                pass  # a second family of a known task still gets its own entry
            action = menu.addAction(f"{fam.get('title') or name}…")
            action.triggered.connect(lambda _=False, n=name: _open(family=n))
            self._dynamic[name] = action


def _open(family: Any = None, task: Any = None) -> None:
    from .dialog import open_dialog

    open_dialog(family=family, task=task)


def _settings() -> None:
    from .dialog import SettingsDialog

    SettingsDialog.edit()


def register(app: Any) -> None:
    app.addExtension(DNIExtension(app))
    from .docker import DNIDocker

    app.addDockWidgetFactory(DockWidgetFactory("dni_docker", DockWidgetFactoryBase.DockRight,
                                               DNIDocker))
