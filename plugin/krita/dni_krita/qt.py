"""The one place the plugin imports Qt from: PyQt5 in Krita 5, PyQt6 in Krita 6.

Krita is asked first (`pykrita.qt_major_version()`, where it exists): Krita 6 refuses any
import of PyQt5, and in a Krita 5 whose Python also has PyQt6, importing PyQt6 would load
a second Qt into the process. Every other module imports its Qt names from here and uses
fully scoped enums (`Qt.AlignmentFlag.AlignRight`), which both bindings understand.
"""

from __future__ import annotations

from typing import Any


def qt_major_version() -> int:
    """5 or 6: the Qt this Krita is built with (5 where Krita cannot say: Krita 5.1/5.2)."""
    try:
        import pykrita
    except ImportError:
        return 5
    ask = getattr(pykrita, "qt_major_version", None)
    return int(ask()) if callable(ask) else 5


QT_MAJOR = qt_major_version()

if QT_MAJOR >= 6:
    from PyQt6 import QtCore, QtGui, QtWidgets
else:
    from PyQt5 import QtCore, QtGui, QtWidgets  # type: ignore[no-redef]

Qt = QtCore.Qt
QCoreApplication = QtCore.QCoreApplication
QObject = QtCore.QObject
QTimer = QtCore.QTimer
QColor = QtGui.QColor
QImage = QtGui.QImage
QPainter = QtGui.QPainter
QPixmap = QtGui.QPixmap
QPen = QtGui.QPen
QPoint = QtCore.QPoint
QRect = QtCore.QRect
QSize = QtCore.QSize
pyqtSignal = QtCore.pyqtSignal
QMdiArea = QtWidgets.QMdiArea
QAbstractItemView = QtWidgets.QAbstractItemView
QAbstractScrollArea = QtWidgets.QAbstractScrollArea
QApplication = QtWidgets.QApplication
QCheckBox = QtWidgets.QCheckBox
QComboBox = QtWidgets.QComboBox
QDialog = QtWidgets.QDialog
QDialogButtonBox = QtWidgets.QDialogButtonBox
QDockWidget = QtWidgets.QDockWidget
QDoubleSpinBox = QtWidgets.QDoubleSpinBox
QFormLayout = QtWidgets.QFormLayout
QGridLayout = QtWidgets.QGridLayout
QGroupBox = QtWidgets.QGroupBox
QHBoxLayout = QtWidgets.QHBoxLayout
QInputDialog = QtWidgets.QInputDialog
QLabel = QtWidgets.QLabel
QLineEdit = QtWidgets.QLineEdit
QMenu = QtWidgets.QMenu
QMessageBox = QtWidgets.QMessageBox
QProgressBar = QtWidgets.QProgressBar
QPushButton = QtWidgets.QPushButton
QSlider = QtWidgets.QSlider
QSpinBox = QtWidgets.QSpinBox
QVBoxLayout = QtWidgets.QVBoxLayout
QWidget = QtWidgets.QWidget


def exec_dialog(dialog: Any) -> bool:
    """Run a modal dialog; True when accepted (`exec_` is gone in PyQt6)."""
    return dialog.exec() == QDialog.DialogCode.Accepted
