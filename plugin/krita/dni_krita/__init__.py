"""DNI for Krita: Deep Network Interpolation filters (Filter ▸ DNI) and a "DNI" docker.

Scripting (Scripter, batch scripts)::

    import dni_krita
    layer = dni_krita.run_filter("denoise", strength=0.4)

See docs/krita.md.
"""

from __future__ import annotations

import os
import sys
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
# The installer puts the shared client into _lib/ (tests import it from the checkout).
if os.path.isdir(os.path.join(HERE, "_lib")) and os.path.join(HERE, "_lib") not in sys.path:
    sys.path.insert(0, os.path.join(HERE, "_lib"))

from dni_client import vendoring  # noqa: E402
from dni_client.errors import FilterError  # noqa: E402

vendoring.setup(HERE)

try:
    import zmq  # noqa: F401  (vendored per Python version by the installer)
except ImportError:
    ZMQ_PROBLEM: str | None = vendoring.missing_zmq_message("Krita", HERE,
                                                            "install_krita_plugin.py")
else:
    ZMQ_PROBLEM = None

__all__ = ["FilterError", "open_dialog", "run_filter", "session"]


def _usable() -> None:
    if ZMQ_PROBLEM is not None:
        raise FilterError(ZMQ_PROBLEM)


def run_filter(*args: Any, **kwargs: Any) -> Any:
    """Filter a paint layer; see api.run_filter. Returns the new layer."""
    _usable()
    from .api import run_filter as run

    return run(*args, **kwargs)


def session() -> Any:
    """The plugin's connection to the backend (dni_client.session.Session)."""
    _usable()
    from .plugin import instance

    return instance().session


def open_dialog(family: str | None = None, task: str | None = None, *, document: Any = None,
                layer: Any = None) -> Any:
    """Open the filter dialog (as the Filter ▸ DNI menu does) on `layer` of `document`
    (default: the active layer of the active document); returns it."""
    _usable()
    from .dialog import open_dialog as show

    return show(family=family, task=task, doc=document, node=layer)


def _register() -> None:
    try:
        from krita import Krita
    except ImportError:
        return  # imported outside Krita (tests, tools)
    app = Krita.instance()
    if app is None or getattr(app, "_dni_fake_no_register", False):
        return
    try:
        from .extension import register
    except ImportError as exc:  # e.g. a Krita whose Qt bindings do not load
        _tell_ui_failed(exc)
        return
    register(app, ZMQ_PROBLEM)


def _tell_ui_failed(exc: ImportError) -> None:
    """The artist sees why the filters are missing: a message box once Krita is up, or
    (when no Qt binding loads at all) the only channel left, Krita's terminal."""
    text = (f"The DNI filters could not load in this Krita: {exc}. Install the DNI plugin "
            "that matches this Krita (run the DNI installer again).")
    try:
        from .qt import QMessageBox, QTimer
    except ImportError:
        print(f"DNI: {text}", file=sys.stderr)
        return
    QTimer.singleShot(0, lambda: QMessageBox.warning(None, "DNI", text))


_register()
