"""Where things go on each operating system: the backend's data folder, Krita's resource
folder and kritarc, GIMP's per-user folder, and the Flatpak sandboxes of both."""

from __future__ import annotations

from pathlib import Path

from .platform import Platform

APP = "dni"
RECORD = "install-record.json"  # what the installer wrote, for --uninstall
KRITA_FLATPAK = "org.kde.krita"
GIMP_FLATPAK = "org.gimp.GIMP"


def data_dir(p: Platform) -> Path:
    """The per-user data folder the backend's virtualenv goes into."""
    if p.windows:
        return p.env_path("LOCALAPPDATA", p.home / "AppData" / "Local") / APP
    if p.macos:
        return p.home / "Library" / "Application Support" / APP
    return p.env_path("XDG_DATA_HOME", p.home / ".local" / "share") / APP


def venv_python(venv: Path, p: Platform) -> Path:
    return venv / ("Scripts/python.exe" if p.windows else "bin/python")


def venv_dni(venv: Path, p: Platform) -> Path:
    return venv / ("Scripts/dni.exe" if p.windows else "bin/dni")


def krita_dirs(p: Platform) -> tuple[Path, Path]:
    """(resource folder, kritarc) of a Krita installed from its official builds or the
    distribution (they share both)."""
    if p.windows:
        return (p.env_path("APPDATA", p.home / "AppData" / "Roaming") / "krita",
                p.env_path("LOCALAPPDATA", p.home / "AppData" / "Local") / "kritarc")
    if p.macos:
        return (p.home / "Library" / "Application Support" / "krita",
                p.home / "Library" / "Preferences" / "kritarc")
    return (p.env_path("XDG_DATA_HOME", p.home / ".local" / "share") / "krita",
            p.env_path("XDG_CONFIG_HOME", p.home / ".config") / "kritarc")


def flatpak_home(p: Platform, app_id: str) -> Path:
    """A Flatpak app's own $HOME-like folder: it sees XDG_DATA_HOME=<this>/data and
    XDG_CONFIG_HOME=<this>/config."""
    return p.home / ".var" / "app" / app_id


def krita_flatpak_dirs(p: Platform) -> tuple[Path, Path]:
    box = flatpak_home(p, KRITA_FLATPAK)
    return box / "data" / "krita", box / "config" / "kritarc"


def gimp_root(p: Platform) -> Path:
    """GIMP's per-user folder root (the one holding 3.0/, 3.2/, ...)."""
    if p.windows:
        return p.env_path("APPDATA", p.home / "AppData" / "Roaming") / "GIMP"
    if p.macos:
        return p.home / "Library" / "Application Support" / "GIMP"
    return p.env_path("XDG_CONFIG_HOME", p.home / ".config") / "GIMP"


def gimp_flatpak_root(p: Platform) -> Path:
    return flatpak_home(p, GIMP_FLATPAK) / "config" / "GIMP"


def gimp_plugins_dir(root: Path, version: str | None) -> Path:
    """<root>/<X.Y>/plug-ins: the given GIMP version's folder, else the newest 3.x folder
    there is, else 3.0."""
    if version is None:
        found = sorted((int(d.name.split(".")[1]) for d in root.glob("3.*")
                        if d.is_dir() and d.name.split(".")[1].isdigit()),
                       ) if root.is_dir() else []
        version = f"3.{found[-1]}" if found else "3.0"
    return root / version / "plug-ins"
