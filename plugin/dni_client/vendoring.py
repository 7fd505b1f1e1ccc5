"""Which bundled pyzmq an editor's Python can load: platform and Python tags, the folders
to put on sys.path, and the pip platform tags the installers download wheels for.

One module for both plugins and the installers. An installed plugin folder holds
`_lib/dni_client` and `_vendor/<tag>/zmq`, one tag per Python ABI and platform
(`cp311-linux_x86_64`; pyzmq's abi3 wheels, which serve every CPython from 3.12 on, in
`abi3-<platform>`). Pure Python 3.8+: this runs before pyzmq is importable.
"""

from __future__ import annotations

import os
import platform as _platform
import sys

from . import messages

ABI3_FROM = (3, 12)

# pip --platform tags per plugin platform tag, best first.
PIP_PLATFORMS = {
    "linux_x86_64": ["manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64"],
    "linux_aarch64": ["manylinux_2_28_aarch64", "manylinux_2_17_aarch64",
                      "manylinux2014_aarch64"],
    "win_amd64": ["win_amd64"],
    "win_arm64": ["win_arm64"],
    "macosx_x86_64": ["macosx_10_15_x86_64", "macosx_10_9_x86_64", "macosx_10_15_universal2",
                      "macosx_10_9_universal2"],
    "macosx_arm64": ["macosx_11_0_arm64", "macosx_10_15_universal2", "macosx_10_9_universal2"],
}

_ARCH = {"amd64": "x86_64", "x64": "x86_64", "x86_64": "x86_64", "aarch64": "arm64",
         "arm64": "arm64"}


def platform_tag(system: str | None = None, machine: str | None = None) -> str:
    """'linux_x86_64', 'linux_aarch64', 'win_amd64', 'win_arm64', 'macosx_arm64', ..."""
    system = (system or sys.platform).lower()
    machine = (machine or _platform.machine()).lower()
    arch = _ARCH.get(machine, machine)
    if system.startswith("win"):
        return "win_" + ("arm64" if arch == "arm64" else "amd64")
    if system == "darwin":
        return "macosx_" + arch
    return "linux_" + ("aarch64" if arch == "arm64" else arch)


def version_of(python: str | tuple[int, ...] | None) -> tuple[int, int]:
    """(3, 11) from '3.11', (3, 11, 7) or None (this interpreter)."""
    if python is None:
        return sys.version_info[0], sys.version_info[1]
    if isinstance(python, str):
        major, minor = python.split(".")[:2]
        return int(major), int(minor)
    return int(python[0]), int(python[1])


def python_tag(python: str | tuple[int, ...] | None = None, platform: str | None = None
               ) -> str:
    """The _vendor folder for one Python and platform: 'cp313-linux_x86_64'."""
    major, minor = version_of(python)
    return f"cp{major}{minor}-{platform or platform_tag()}"


def candidates(plugin_dir: str, python: str | tuple[int, ...] | None = None) -> list[str]:
    """Folders to put on sys.path for pyzmq, best first (only those that exist)."""
    vendor = os.path.join(plugin_dir, "_vendor")
    out = [os.path.join(vendor, python_tag(python))]
    if version_of(python) >= ABI3_FROM:
        out.append(os.path.join(vendor, "abi3-" + platform_tag()))
    return [p for p in out if os.path.isdir(p)]


def setup(plugin_dir: str) -> list[str]:
    """Put this Python's pyzmq folder first on sys.path; returns what was added."""
    added = []
    for path in reversed(candidates(plugin_dir)):
        if path not in sys.path:
            sys.path.insert(0, path)
            added.append(path)
    return added


def missing_zmq_message(editor: str, plugin_dir: str, installer: str) -> str:
    return messages.missing_zmq(editor, sys.version.split()[0], python_tag(),
                                os.path.join(plugin_dir, "_vendor"), installer)
