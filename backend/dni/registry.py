"""Where families live: the bundled ones (package data), a per-user folder, and
any folders named in the DNI_FAMILY_PATH environment variable (os.pathsep-separated).

Adding a family means dropping its folder into one of these. A user folder shadows
a bundled family of the same name, so users can replace a bundled model.

Every job looks its family up by name, so folder listings and parsed manifests are
cached and re-read only when the folder's or the manifest's modification stamp changes:
a job whose family did not change reads no TOML, and a family the user adds or edits is
seen at the next lookup, without a restart.
"""

from __future__ import annotations

import importlib.resources
import os
import threading
import time
from pathlib import Path

import platformdirs

from .errors import FamilyError
from .manifest import MANIFEST_NAME, Manifest, load_manifest, valid_family_name


def bundled_dir() -> Path:
    """The families that ship with the package: `models/` of a checkout (an editable
    install maps it) or the installed package `dni_families` (a wheel carries them)."""
    return Path(str(importlib.resources.files("dni_families")))

# File systems stamp times with a coarse clock (a few ms, whole seconds on some), so a
# file changed twice within one tick can keep its stamp. Anything stamped this recently
# is therefore read again next time rather than trusted ("racily clean", as git says).
_RACY_S = 2.0

Stamp = tuple[int, int, int, int]  # mtime_ns, ctime_ns, size, inode


def user_family_dir() -> Path:
    return Path(platformdirs.user_data_dir("dni", appauthor=False)) / "families"


def search_paths(extra: list[Path] | None = None) -> list[Path]:
    """Folders searched for families, highest priority first."""
    paths = list(extra or [])
    env = os.environ.get("DNI_FAMILY_PATH")
    if env:
        paths += [Path(p) for p in env.split(os.pathsep) if p]
    paths += [user_family_dir(), bundled_dir()]
    return paths


def _stamp(path: Path) -> Stamp | None:
    """What identifies this version of a file or folder; None if it is missing, or changed
    too recently to be trusted (see _RACY_S)."""
    try:
        st = path.stat()
    except OSError:
        return None
    if time.time() - st.st_mtime < _RACY_S:
        return None
    # ctime and inode catch what mtime misses: a copy that kept the old mtime, a rename.
    return st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_ino


def _load(folder: Path) -> Manifest | str:
    """The parsed manifest, or the line that says why it is broken."""
    try:
        return load_manifest(folder)
    except FamilyError as exc:
        return str(exc)


class _Cache:
    """Folder listings and manifests, each kept with the stamp it was read at."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # the server's workers and I/O thread share it
        self._folders: dict[Path, tuple[Stamp, list[Path]]] = {}
        self._manifests: dict[Path, tuple[Stamp, Manifest | str]] = {}

    def subfolders(self, root: Path) -> list[Path]:
        """The folders inside `root`, sorted by name; [] if it is not a folder."""
        stamp = _stamp(root)
        with self._lock:
            cached = self._folders.get(root)
        if stamp is not None and cached is not None and cached[0] == stamp:
            return cached[1]
        try:
            with os.scandir(root) as entries:
                names = sorted(entry.name for entry in entries if entry.is_dir())
        except OSError:  # missing, not a folder, unreadable: no families there
            return []
        children = [root / name for name in names]
        if stamp is not None:
            with self._lock:
                self._folders[root] = (stamp, children)
        return children

    def manifest(self, folder: Path) -> Manifest:
        """The folder's parsed manifest; FamilyError if it is broken (that is cached too)."""
        stamp = _stamp(folder / MANIFEST_NAME)
        with self._lock:
            cached = self._manifests.get(folder)
        if stamp is not None and cached is not None and cached[0] == stamp:
            result = cached[1]
        else:
            result = _load(folder)
            if stamp is not None:
                with self._lock:
                    self._manifests[folder] = (stamp, result)
        if isinstance(result, str):
            raise FamilyError(result)
        return result


_cache = _Cache()


def discover(paths: list[Path]) -> dict[str, Path]:
    """Family name -> folder; the first folder on the path wins."""
    found: dict[str, Path] = {}
    for root in paths:
        for folder in _cache.subfolders(root):
            if (folder / MANIFEST_NAME).is_file():
                found.setdefault(folder.name, folder)
    return found


def read_manifest(folder: Path, name: str) -> Manifest:
    """The manifest of family `name` in `folder` (cached); FamilyError if broken."""
    manifest = _cache.manifest(folder)
    if manifest.name != name:
        raise FamilyError(f"{folder}: folder name and manifest name {manifest.name!r} differ")
    return manifest


def find_family(name: str, paths: list[Path]) -> Manifest:
    if not valid_family_name(name):
        raise FamilyError(f"unknown family {name!r}: not a valid family name")
    found = discover(paths)
    folder = found.get(name)
    if folder is None:
        known = ", ".join(sorted(found)) or "none installed"
        raise FamilyError(f"unknown family {name!r} (known: {known})")
    return read_manifest(folder, name)


def list_manifests(paths: list[Path]) -> tuple[list[Manifest], list[str]]:
    """All loadable families, and one problem line per broken one (never fatal)."""
    manifests, problems = [], []
    for name, folder in sorted(discover(paths).items()):
        try:
            manifests.append(read_manifest(folder, name))
        except FamilyError as exc:
            problems.append(str(exc))
    return manifests, problems
