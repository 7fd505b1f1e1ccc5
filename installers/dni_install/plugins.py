"""Putting the plugins into the editors' folders: from a checkout's sources (each plugin
staged, then swapped in as a whole), or, without sources (the installer a plugin carries),
pointing the plugins already there at the backend."""

from __future__ import annotations

import shutil
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from . import kritarc
from .editors import PluginTarget
from .record import InstallRecord

KRITA_NAME = "dni_krita"
GIMP_NAME = "dni-filters"
PLUGIN_NAMES = {"krita": KRITA_NAME, "gimp": GIMP_NAME}
Say = Callable[[str], None]


class CheckoutPlugins:
    """Both plugins from the checkout `installers/` sits in, with pyzmq for the editors'
    Pythons fetched by the backend's pip from the same sources as the backend."""

    def __init__(self, pip_python: str, index_args: Sequence[str] = (),
                 platform: str | None = None) -> None:
        here = str(Path(__file__).resolve().parents[1])
        if here not in sys.path:
            sys.path.insert(0, here)
        import install_gimp_plugin
        import install_krita_plugin
        import plugin_common

        self.common: Any = plugin_common
        self.krita: Any = install_krita_plugin
        self.gimp: Any = install_gimp_plugin
        self.pip_python = pip_python
        self.index_args = list(index_args)
        self.platform = platform or plugin_common.platform_tag()

    def vendor(self, pythons: Sequence[str]) -> Callable[[Path], None]:
        return self.common.pyzmq_vendor(pythons, [self.platform], False, self.pip_python,
                                        self.index_args)

    def stage(self, editor: str, dest: Path, pythons: Sequence[str],
              settings: dict[str, Any]) -> None:
        """<dest>/<plugin folder> (and Krita's .desktop file next to it)."""
        if editor == "krita":
            self.krita.stage(dest, self.vendor(pythons))
            self.common.write_json(dest / KRITA_NAME / "backend.json", settings)
        else:
            self.gimp.stage(dest, self.vendor(pythons), settings)

    def replace_dir(self, staged: Path, target: Path) -> None:
        self.common.replace_dir(staged, target)


def place(target: PluginTarget, source: Any, settings: dict[str, Any],
          record: InstallRecord) -> list[Path]:
    """Install one editor's plugin into `target` (replacing an earlier copy as a whole);
    returns what was written."""
    name = PLUGIN_NAMES[target.editor]
    written = [target.folder / name]
    with tempfile.TemporaryDirectory(prefix="dni-plugin-") as tmp:
        staging = Path(tmp)
        source.stage(target.editor, staging, target.pythons, settings)
        target.folder.mkdir(parents=True, exist_ok=True)
        source.replace_dir(staging / name, target.folder / name)
        desktop = staging / f"{name}.desktop"
        if desktop.exists():
            shutil.copy2(desktop, target.folder / desktop.name)
            written.append(target.folder / desktop.name)
    for path in written:
        record.add(path)
    if target.kritarc is not None:
        kritarc.enable(target.kritarc, name)
        record.add_kritarc(target.kritarc)
    return written


def point(plugin_dir: Path, command: list[str]) -> Path:
    """Record the backend command in an installed plugin's backend.json (its endpoint and
    family folders stay); returns the file."""
    from dni_client.settings import BACKEND_RECORD, read_json, write_json

    if not plugin_dir.is_dir():
        raise FileNotFoundError(f"no plugin folder at {plugin_dir}")
    path = plugin_dir / BACKEND_RECORD
    settings = read_json(str(path))
    settings["command"] = list(command)
    settings.setdefault("family_paths", [])
    write_json(str(path), settings)
    return path


def remove_kritarc_lines(paths: Sequence[str]) -> None:
    for path in paths:
        kritarc.disable(Path(path), KRITA_NAME)
