"""Make `dni_client` and pyzmq importable inside GIMP's Python (imported before either).

Installed layout (installers/install_gimp_plugin.py), next to this file:
``_lib/dni_client`` and ``_vendor/<tag>/zmq`` with one tag per Python ABI and platform
(GIMP on Linux runs the system Python; Windows and macOS builds bring their own).
Run from a source checkout, ``plugin/`` two folders up holds ``dni_client`` instead.
"""

from __future__ import annotations

import os
import platform
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
LIB_DIR = os.path.join(HERE, "_lib")
VENDOR_DIR = os.path.join(HERE, "_vendor")
SOURCE_PLUGIN_DIR = os.path.dirname(os.path.dirname(HERE))  # checkout: plugin/


def platform_tag(system: str | None = None, machine: str | None = None) -> str:
    system = (system or sys.platform).lower()
    machine = (machine or platform.machine()).lower()
    arch = {"amd64": "x86_64", "x64": "x86_64", "aarch64": "arm64"}.get(machine, machine)
    if system.startswith("win"):
        return "win_" + ("arm64" if arch == "arm64" else "amd64")
    if system == "darwin":
        return "macosx_" + arch
    return "linux_" + ("aarch64" if arch == "arm64" else arch)


def python_tag(version: tuple[int, ...] | None = None, system: str | None = None,
               machine: str | None = None) -> str:
    major, minor = (version or tuple(sys.version_info))[:2]
    return f"cp{major}{minor}-{platform_tag(system, machine)}"


def candidates(version: tuple[int, ...] | None = None) -> list[str]:
    """Folders to put on sys.path, best first (only those that exist)."""
    version = tuple(version or sys.version_info)[:2]
    out = [LIB_DIR, os.path.join(VENDOR_DIR, python_tag(version))]
    if version >= (3, 12):  # pyzmq's abi3 wheels serve every CPython >= 3.12
        out.append(os.path.join(VENDOR_DIR, "abi3-" + platform_tag()))
    if not os.path.isdir(LIB_DIR) and os.path.isdir(os.path.join(SOURCE_PLUGIN_DIR,
                                                                  "dni_client")):
        out.append(SOURCE_PLUGIN_DIR)
    return [p for p in out if os.path.isdir(p)]


def setup() -> list[str]:
    added = []
    for path in reversed(candidates()):
        if path not in sys.path:
            sys.path.insert(0, path)
            added.append(path)
    return added


def missing_zmq_message() -> str:
    return (f"DNI could not load pyzmq for GIMP's Python {sys.version.split()[0]} "
            f"({python_tag()}). Run `python installers/install_gimp_plugin.py` again (it "
            f"fetches the matching pyzmq), or unpack a pyzmq wheel for this Python into "
            f"{os.path.join(VENDOR_DIR, python_tag())}.")
