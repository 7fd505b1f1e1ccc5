"""Make `dni_client` and pyzmq importable inside GIMP's Python (imported before either).

Installed layout (installers/install_gimp_plugin.py), next to this file: `_lib/dni_client`
and `_vendor/<tag>/zmq` (see dni_client.vendoring). Run from a source checkout,
`plugin/` two folders up holds `dni_client` instead (tests, and GIMP pointed at the
checkout).
"""

from __future__ import annotations

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
INSTALLER = "install_gimp_plugin.py"


def setup() -> None:
    installed = os.path.join(HERE, "_lib")
    lib = installed if os.path.isdir(installed) else os.path.dirname(os.path.dirname(HERE))
    if lib not in sys.path:
        sys.path.insert(0, lib)
    from dni_client import vendoring

    vendoring.setup(HERE)


def missing_zmq_message() -> str:
    from dni_client import vendoring

    return vendoring.missing_zmq_message("GIMP", HERE, INSTALLER)
