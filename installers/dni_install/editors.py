"""The Kritas and GIMP 3s on this machine (official builds, distribution packages,
AppImages, Flatpaks), the Python each runs plugins with, and the per-user folders the
plugins go into (several installs can share one folder: the plugin there then carries
pyzmq for each of their Pythons)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from . import locations, pythons
from .platform import Platform

# When an editor's Python cannot be read: the Pythons its builds have shipped.
KRITA_PYTHONS = ("3.8", "3.10", "3.11", "3.12", "3.13")
GIMP_PYTHONS = ("3.10", "3.11", "3.12")
# Official Krita builds (AppImage) by version: KDE/krita-deps-management's ext_python.
KRITA_BUNDLED_PYTHON = {(5, 0): "3.8", (5, 1): "3.8", (5, 2): "3.10", (5, 3): "3.13",
                        (6, 0): "3.13"}
_APPIMAGE_FOLDERS = ("Applications", "Downloads", "Desktop", ".local/bin", "bin")


@dataclass
class EditorInstall:
    editor: str  # "krita" or "gimp"
    kind: str  # "distribution", "official build", "AppImage", "Flatpak"
    where: Path
    pythons: list[str]  # detected; empty when they could not be read
    version: str | None = None
    flatpak: bool = False

    def describe(self) -> str:
        python = ", ".join(self.pythons) if self.pythons else "not detected"
        version = f" {self.version}" if self.version else ""
        return f"{self.editor.capitalize()}{version} ({self.kind}, {self.where}; Python {python})"


@dataclass
class PluginTarget:
    """One per-user plugin folder and the installs that load plugins from it."""

    editor: str
    folder: Path  # Krita: <resources>/pykrita; GIMP: <config>/<X.Y>/plug-ins
    kritarc: Path | None = None
    installs: list[EditorInstall] = field(default_factory=list)

    @property
    def pythons(self) -> list[str]:
        found = [v for i in self.installs for v in i.pythons]
        if found:
            return pythons.sort_versions(found)
        return list(KRITA_PYTHONS if self.editor == "krita" else GIMP_PYTHONS)

    @property
    def pythons_detected(self) -> bool:
        return any(i.pythons for i in self.installs)


# -- Krita ---------------------------------------------------------------------------------

def _version_from_name(name: str) -> str | None:
    match = re.search(r"(\d+)\.(\d+)(?:\.(\d+))?", name)
    return match.group(0) if match else None


def _krita_python_for(version: str | None) -> list[str]:
    if not version:
        return []
    major, minor = (int(x) for x in version.split(".")[:2])
    known = [v for (ma, mi), v in sorted(KRITA_BUNDLED_PYTHON.items()) if (ma, mi) <= (major,
                                                                                      minor)]
    return known[-1:]


def _linux_kritas(p: Platform) -> list[EditorInstall]:
    found = []
    for prefix in ("/usr", "/usr/local"):
        if not p.system_path(f"{prefix}/bin/krita").is_file():
            continue
        lib = p.system_path(f"{prefix}")
        modules = (list(lib.glob("lib/*/kritaplugins/kritapykrita.so"))
                   + list(lib.glob("lib*/kritaplugins/kritapykrita.so")))
        versions = [v for m in modules for v in pythons.linked_in(m)]
        found.append(EditorInstall("krita", "distribution", p.system_path(f"{prefix}/bin/krita"),
                                   pythons.sort_versions(versions)))
    for folder in _APPIMAGE_FOLDERS:
        base = p.home / folder
        for image in sorted(base.glob("*")) if base.is_dir() else []:
            name = image.name.lower()
            if name.startswith("krita") and name.endswith(".appimage"):
                version = _version_from_name(image.name)
                found.append(EditorInstall("krita", "AppImage", image,
                                           _krita_python_for(version), version))
    return found


def _flatpak_apps(p: Platform, app_id: str) -> list[Path]:
    roots = [p.system_path("/var/lib/flatpak"), p.home / ".local" / "share" / "flatpak"]
    return [r / "app" / app_id for r in roots if (r / "app" / app_id).is_dir()]


def _flatpak_pythons(app: Path, runtime: str) -> list[str]:
    """The Python a Flatpak app runs: its own, else its runtime's."""
    versions = pythons.in_folder(app / "current" / "active" / "files", depth=3)
    if versions:
        return versions
    runtimes = app.parent.parent / "runtime" / runtime
    for files in sorted(runtimes.glob("*/*/active/files")) if runtimes.is_dir() else []:
        versions += pythons.in_folder(files / "lib", depth=1)
    return pythons.sort_versions(versions)


def _windows_program_folders(p: Platform) -> list[Path]:
    names = ("ProgramFiles", "ProgramW6432", "ProgramFiles(x86)")
    folders = [Path(p.env[n]) for n in names if p.env.get(n)]
    local = p.env.get("LOCALAPPDATA")
    if local:
        folders.append(Path(local) / "Programs")
    return list(dict.fromkeys(folders))


def _windows_kritas(p: Platform) -> list[EditorInstall]:
    found = []
    for base in _windows_program_folders(p):
        for folder in sorted(base.glob("Krita*")):
            if (folder / "bin" / "krita.exe").is_file():
                found.append(EditorInstall("krita", "official build", folder,
                                           pythons.in_folder(folder, depth=3)))
    return found


def _mac_apps(p: Platform, pattern: str) -> list[Path]:
    bases = [p.system_path("/Applications"), p.home / "Applications"]
    return [app for base in bases if base.is_dir() for app in sorted(base.glob(pattern))]


def find_kritas(p: Platform) -> list[EditorInstall]:
    if p.windows:
        return _windows_kritas(p)
    if p.macos:
        return [EditorInstall("krita", "official build", app,
                              pythons.in_folder(app / "Contents", depth=5))
                for app in _mac_apps(p, "[Kk]rita*.app")]
    found = _linux_kritas(p)
    for app in _flatpak_apps(p, locations.KRITA_FLATPAK):
        found.append(EditorInstall("krita", "Flatpak", app,
                                   _flatpak_pythons(app, "org.kde.Platform"), flatpak=True))
    return found


# -- GIMP ----------------------------------------------------------------------------------

def _gimp_version(exe: str, p: Platform) -> str | None:
    out = p.run([exe, "--version"]) or ""
    match = re.search(r"version (\d+\.\d+)", out)
    return match.group(1) if match else None


def _linux_gimps(p: Platform) -> list[EditorInstall]:
    found = []
    for name in ("gimp-3.2", "gimp-3.0", "gimp-3", "gimp"):
        exe = p.which(name)
        if not exe:
            continue
        version = _gimp_version(exe, p) or _version_from_name(name[len("gimp-"):])
        if not version or not version.startswith("3."):
            continue  # GIMP 2.10 runs Python 2 plug-ins, if any
        # Plug-ins start with `#!/usr/bin/env python3`: the system Python (with python3-gi).
        system_python = p.which("python3")
        python = pythons.of_executable(system_python, p) if system_python else None
        found.append(EditorInstall("gimp", "distribution", Path(exe), [python] if python else [],
                                   version))
        break  # one distribution GIMP: the names above are links to one program
    return found


def _windows_gimps(p: Platform) -> list[EditorInstall]:
    found = []
    for base in _windows_program_folders(p):
        for folder in sorted(base.glob("GIMP 3*")):
            exes = sorted((folder / "bin").glob("gimp-3*.exe"))
            if exes:
                version = _version_from_name(exes[0].stem[len("gimp-"):])
                found.append(EditorInstall("gimp", "official build", folder,
                                           pythons.in_folder(folder, depth=3),
                                           version if version and "." in version else None))
    return found


def find_gimps(p: Platform) -> list[EditorInstall]:
    if p.windows:
        return _windows_gimps(p)
    if p.macos:
        return [EditorInstall("gimp", "official build", app,
                              pythons.in_folder(app / "Contents", depth=5))
                for app in _mac_apps(p, "GIMP*.app")]
    found = _linux_gimps(p)
    for app in _flatpak_apps(p, locations.GIMP_FLATPAK):
        found.append(EditorInstall("gimp", "Flatpak", app,
                                   _flatpak_pythons(app, "org.gnome.Platform"), flatpak=True))
    return found


# -- where the plugins go ------------------------------------------------------------------

def _add(targets: dict[Path, PluginTarget], target: PluginTarget,
         install: EditorInstall | None) -> None:
    existing = targets.setdefault(target.folder, target)
    if install is not None:
        existing.installs.append(install)


def krita_targets(p: Platform) -> list[PluginTarget]:
    """Each Krita's pykrita folder; the user's folder also when Krita has run there but
    its program was not found."""
    targets: dict[Path, PluginTarget] = {}
    for install in find_kritas(p):
        resources, kritarc = (locations.krita_flatpak_dirs(p) if install.flatpak
                              else locations.krita_dirs(p))
        _add(targets, PluginTarget("krita", resources / "pykrita", kritarc), install)
    resources, kritarc = locations.krita_dirs(p)
    if resources.is_dir() and resources / "pykrita" not in targets:
        _add(targets, PluginTarget("krita", resources / "pykrita", kritarc), None)
    return list(targets.values())


def gimp_targets(p: Platform) -> list[PluginTarget]:
    """Each GIMP 3's plug-ins folder (of its version: 3.0/, 3.2/, ...)."""
    targets: dict[Path, PluginTarget] = {}
    for install in find_gimps(p):
        root = locations.gimp_flatpak_root(p) if install.flatpak else locations.gimp_root(p)
        _add(targets, PluginTarget("gimp", locations.gimp_plugins_dir(root, install.version)),
             install)
    root = locations.gimp_root(p)
    if not targets and any(root.glob("3.*")):
        _add(targets, PluginTarget("gimp", locations.gimp_plugins_dir(root, None)), None)
    return list(targets.values())
