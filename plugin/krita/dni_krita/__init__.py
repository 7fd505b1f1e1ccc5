"""DNI for Krita: Deep Network Interpolation filters (Filter ▸ DNI) and a "DNI" docker.

Scripting (Scripter, batch scripts)::

    import dni_krita
    layer = dni_krita.run_filter("denoise", strength=0.4)

See docs/krita.md.
"""

from __future__ import annotations

from typing import Any

from . import vendor

vendor.setup()

try:
    import zmq  # noqa: F401  (vendored per Python version by the installer)
except ImportError:
    ZMQ_PROBLEM: str | None = vendor.missing_zmq_message()
else:
    ZMQ_PROBLEM = None

if ZMQ_PROBLEM is None:
    from .api import DNIError, connection, run_filter
else:
    # Without pyzmq the plugin still loads, and says what to do instead of a traceback.
    class DNIError(Exception):  # type: ignore[no-redef]
        pass

    def run_filter(*args: Any, **kwargs: Any) -> Any:  # type: ignore[misc]
        raise DNIError(ZMQ_PROBLEM)

    def connection() -> Any:  # type: ignore[misc]
        raise DNIError(ZMQ_PROBLEM)

__all__ = ["DNIError", "connection", "run_filter", "open_dialog"]


def open_dialog(family: str | None = None, task: str | None = None) -> Any:
    """Open the filter dialog (as the Filter ▸ DNI menu does); returns it."""
    if ZMQ_PROBLEM is not None:
        raise DNIError(ZMQ_PROBLEM)
    from .dialog import open_dialog as _open

    return _open(family=family, task=task)


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
    except ImportError as exc:  # e.g. no PyQt5 in a test interpreter
        import sys

        print(f"DNI: plugin UI not loaded: {exc}", file=sys.stderr)
        return
    register(app, ZMQ_PROBLEM)


_register()
