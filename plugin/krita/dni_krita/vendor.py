"""Make the bundled packages importable inside Krita's Python.

The installer puts `dni_client` into `_lib/` and pyzmq wheels, one folder per Python ABI
and platform, into `_vendor/<tag>/` (tags as `python_tag()` spells them). Krita builds
ship different Pythons (3.8 ... 3.13); the folder matching the running one is picked here.
"""

from __future__ import annotations

import os
import platform
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
LIB_DIR = os.path.join(HERE, "_lib")
VENDOR_DIR = os.path.join(HERE, "_vendor")


def platform_tag(system: str | None = None, machine: str | None = None) -> str:
    system = (system or sys.platform).lower()
    machine = (machine or platform.machine()).lower()
    arch = {"amd64": "x86_64", "x64": "x86_64", "aarch64": "arm64", "arm64": "arm64"}.get(
        machine, machine)
    if system.startswith("win"):
        return "win_" + ("arm64" if arch == "arm64" else "amd64")
    if system == "darwin":
        return "macosx_" + arch
    return "linux_" + ("aarch64" if arch == "arm64" else arch)


def python_tag(version: tuple | None = None, system: str | None = None,
               machine: str | None = None) -> str:
    major, minor = (version or sys.version_info)[:2]
    return f"cp{major}{minor}-{platform_tag(system, machine)}"


def candidates() -> list[str]:
    """Folders to put on sys.path, best first (only those that exist)."""
    out = [LIB_DIR]
    exact = os.path.join(VENDOR_DIR, python_tag())
    out.append(exact)
    # pyzmq's abi3 wheels serve every CPython from 3.12 on.
    if sys.version_info >= (3, 12):
        out.append(os.path.join(VENDOR_DIR, "abi3-" + platform_tag()))
    return [p for p in out if os.path.isdir(p)]


def setup() -> list[str]:
    added = []
    for path in reversed(candidates()):
        if path not in sys.path:
            sys.path.insert(0, path)
            added.append(path)
    return added


def missing_zmq_message() -> str:
    return (f"DNI could not load pyzmq for Krita's Python {sys.version.split()[0]} "
            f"({python_tag()}). Run the installer again (it downloads the matching pyzmq), "
            f"or copy a pyzmq wheel's contents into {os.path.join(VENDOR_DIR, python_tag())}.")
