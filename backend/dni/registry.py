"""Where families live: the bundled `models/` folder, a per-user folder, and
any folders named in the DNI_FAMILY_PATH environment variable (os.pathsep-separated).

Adding a family means dropping its folder into one of these. A user folder shadows
a bundled family of the same name, so users can replace a bundled model.
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

from .errors import FamilyError
from .manifest import MANIFEST_NAME, Manifest, load_manifest, valid_family_name

BUNDLED_DIR = Path(__file__).resolve().parents[2] / "models"


def user_family_dir() -> Path:
    return Path(platformdirs.user_data_dir("dni", appauthor=False)) / "families"


def search_paths(extra: list[Path] | None = None) -> list[Path]:
    """Folders searched for families, highest priority first."""
    paths = list(extra or [])
    env = os.environ.get("DNI_FAMILY_PATH")
    if env:
        paths += [Path(p) for p in env.split(os.pathsep) if p]
    paths += [user_family_dir(), BUNDLED_DIR]
    return paths


def discover(paths: list[Path]) -> dict[str, Path]:
    """Family name -> folder; the first folder on the path wins."""
    found: dict[str, Path] = {}
    for root in paths:
        if not root.is_dir():
            continue
        for manifest in sorted(root.glob(f"*/{MANIFEST_NAME}")):
            folder = manifest.parent
            found.setdefault(folder.name, folder)
    return found


def find_family(name: str, paths: list[Path]) -> Manifest:
    if not valid_family_name(name):
        raise FamilyError(f"unknown family {name!r}: not a valid family name")
    folder = discover(paths).get(name)
    if folder is None:
        known = ", ".join(sorted(discover(paths))) or "none installed"
        raise FamilyError(f"unknown family {name!r} (known: {known})")
    manifest = load_manifest(folder)
    if manifest.name != name:
        raise FamilyError(f"{folder}: folder name and manifest name {manifest.name!r} differ")
    return manifest


def list_manifests(paths: list[Path]) -> tuple[list[Manifest], list[str]]:
    """All loadable families, and one problem line per broken one (never fatal)."""
    manifests, problems = [], []
    for name, folder in sorted(discover(paths).items()):
        try:
            manifest = load_manifest(folder)
            if manifest.name != name:
                raise FamilyError(f"{folder}: folder name and manifest name differ")
            manifests.append(manifest)
        except FamilyError as exc:
            problems.append(str(exc))
    return manifests, problems
