"""The fake `krita` module with a real Qt UI around it, for the plugin's Qt paths offscreen.

tests/fakes/krita.py keeps documents and pixels; this adds what the plugin's UI touches:
a main window with Krita's Filter menu, `createAction`, the notifier, extensions and docker
factories, built on whichever PyQt `dni_krita.qt` picked (PyQt6 in the Krita 6 test).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import krita as data  # tests/fakes/krita.py: documents, nodes, selections


def _plugin_qt() -> Any:
    """The plugin's qt module, loaded on its own: importing the dni_krita package would
    register the plugin with this fake before it is ready."""
    path = Path(__file__).resolve().parents[2] / "plugin" / "krita" / "dni_krita" / "qt.py"
    spec = importlib.util.spec_from_file_location("dni_krita_qt_for_fake", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_qt = _plugin_qt()
QT_MAJOR, QtCore, QtGui, QtWidgets = _qt.QT_MAJOR, _qt.QtCore, _qt.QtGui, _qt.QtWidgets

Document, Node, Selection = data.Document, data.Node, data.Selection

_Action = QtGui.QAction if QT_MAJOR >= 6 else QtWidgets.QAction


class Notifier(QtCore.QObject):
    windowCreated = QtCore.pyqtSignal()


class Window:
    """Krita's Window: a QMainWindow whose menu bar has Krita's Filter menu."""

    def __init__(self) -> None:
        self.views: list[Any] = []
        self._qwindow = QtWidgets.QMainWindow()
        self.filter_menu = self._qwindow.menuBar().addMenu("Filte&r")
        self.filter_menu.menuAction().setObjectName("filter")

    def qwindow(self) -> QtWidgets.QMainWindow:
        return self._qwindow

    def createAction(self, name: str, text: str, menu: str) -> Any:  # noqa: N802
        action = _Action(text, self._qwindow)
        action.setObjectName(name)
        if menu == "filter":
            self.filter_menu.addAction(action)
        return action

    def activeView(self) -> None:  # noqa: N802 - no canvas in the fake
        return None

    def addView(self, doc: Any) -> None:  # noqa: N802
        self.views.append(doc)


class Krita(data.Krita):
    def __init__(self) -> None:
        super().__init__()
        self._dni_fake_no_register = False  # register the UI: that is what is tested
        self.window = Window()
        self._notifier = Notifier()
        self.extensions: list[Any] = []
        self.dockers: list[Any] = []

    def notifier(self) -> Notifier:
        return self._notifier

    def windows(self) -> list[Window]:
        return [self.window]

    def addExtension(self, extension: Any) -> None:  # noqa: N802
        self.extensions.append(extension)
        extension.setup()
        extension.createActions(self.window)

    def addDockWidgetFactory(self, factory: DockWidgetFactory) -> None:  # noqa: N802
        self.dockers.append(factory.cls())


class Extension(QtCore.QObject):
    def __init__(self, parent: Any = None) -> None:
        super().__init__()


class DockWidget(QtWidgets.QDockWidget):
    pass


class DockWidgetFactoryBase:
    class DockPosition:  # Krita 6 spells its enums scoped
        DockRight = 1


class DockWidgetFactory:
    def __init__(self, name: str, position: Any, cls: type) -> None:
        self.name, self.position, self.cls = name, position, cls
