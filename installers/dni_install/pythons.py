"""Which Python an editor runs its plugins with, read from what it ships (never assumed):
the Python library or folder inside its install (`lib/python3.10`, `python312.dll`,
`Python.framework/Versions/3.13`), the libpython a distribution's plugin module links
against, or the version a `python3` prints."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path

from .platform import Platform

_NAME_PATTERNS = (
    re.compile(r"^libpython3\.(\d+)"),              # Linux, macOS shared library
    re.compile(r"^python3(\d{1,2})\.(?:dll|zip)$", re.I),  # Windows DLL, zipped stdlib
    re.compile(r"^python3\.(\d+)$"),                # lib/python3.X folder
)
_FRAMEWORK = re.compile(r"^3\.(\d+)$")  # Python.framework/Versions/3.X
_LINKED = re.compile(rb"libpython3\.(\d+)|python3(\d\d)\.dll|Python\.framework/Versions/3\.(\d+)",
                     re.I)
MAX_ENTRIES = 50_000  # a bounded look: an install folder, not a whole disk


def sort_versions(versions: Iterable[str]) -> list[str]:
    return sorted(set(versions), key=lambda v: tuple(int(x) for x in v.split(".")))


def _from_name(name: str, parent: str) -> str | None:
    for pattern in _NAME_PATTERNS:
        match = pattern.match(name)
        if match:
            return f"3.{int(match.group(1))}"
    if parent == "Versions" and _FRAMEWORK.match(name):
        return name
    return None


def in_folder(folder: Path, depth: int = 4) -> list[str]:
    """The Python versions an install folder carries (its own Python), newest last."""
    found: set[str] = set()
    seen = 0
    base = len(folder.parts)
    for current, dirs, files in os.walk(folder):
        here = Path(current)
        if len(here.parts) - base >= depth:
            dirs[:] = []
        for name in dirs + files:
            seen += 1
            version = _from_name(name, here.name)
            if version:
                found.add(version)
        if seen > MAX_ENTRIES:
            break
    return sort_versions(found)


def linked_in(binary: Path) -> list[str]:
    """The libpython versions a plugin module or executable names (the Python a
    distribution's editor embeds)."""
    try:
        data = binary.read_bytes()
    except OSError:
        return []
    versions = set()
    for match in _LINKED.finditer(data):
        minor = next(g for g in match.groups() if g is not None)
        versions.add(f"3.{int(minor)}")
    return sort_versions(versions)


def of_executable(python: str, p: Platform) -> str | None:
    """X.Y of a Python interpreter (None when it does not run)."""
    out = p.run([python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"])
    version = (out or "").strip()
    return version if re.fullmatch(r"3\.\d+", version) else None
