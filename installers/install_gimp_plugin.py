#!/usr/bin/env python3
"""Install the DNI filters into GIMP 3 (Linux, macOS, Windows).

    python installers/install_gimp_plugin.py                  # install for this user
    python installers/install_gimp_plugin.py --offline        # no downloads
    python installers/install_gimp_plugin.py --plugins-dir DIR  # any plug-ins folder

What it does (safe to run again; each run replaces the previous install as a whole):
1. copies plugin/gimp/dni-filters into GIMP's plug-ins folder as dni-filters/ (GIMP 3
   wants the folder named like the executable dni-filters.py inside it), with the shared
   dni_client package in dni-filters/_lib/;
2. vendors pyzmq for GIMP's Python into dni-filters/_vendor/<tag>/ (pip wheels, cached;
   --offline copies this interpreter's own pyzmq instead, for its Python version only);
3. records the backend command (`dni`, or `python -m dni.server`) in
   dni-filters/backend.json, so the plug-in can start the backend by itself.
"""

from __future__ import annotations

import argparse
import re
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import plugin_common as common  # noqa: E402
from dni_install import locations  # noqa: E402
from dni_install.editors import GIMP_PYTHONS as PYTHONS  # noqa: E402

NAME = "dni-filters"
PLUGIN_SRC = common.REPO / "plugin" / "gimp" / NAME


def gimp_config_dir(home: Path, system: str = sys.platform, use_env: bool = True) -> Path:
    """GIMP's per-user folder root (the one holding 3.0/, 3.2/, ...)."""
    return locations.gimp_root(common.platform_for(home, system, use_env))


def default_plugins_dir(home: Path, system: str = sys.platform, use_env: bool = True,
                        version: str | None = None) -> Path:
    """<GIMP folder>/<version>/plug-ins: the newest 3.x folder that exists, else 3.0."""
    return locations.gimp_plugins_dir(gimp_config_dir(home, system, use_env), version)


def system_python_version(python: str | None) -> str | None:
    """The X.Y of the Python GIMP runs plug-ins with on Linux (the `python3` that the
    plug-in's #! line finds), or None when there is none."""
    exe = python or shutil.which("python3")
    if not exe:
        return None
    try:
        out = subprocess.run([exe, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                             capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    version = out.stdout.strip()
    return version if re.fullmatch(r"3\.\d+", version) else None


def stage(dest: Path, vendor: common.Vendor, settings: dict[str, object]) -> Path:
    """Write <dest>/dni-filters/ (with _lib, _installer, backend.json and, through
    `vendor`, _vendor)."""
    folder = dest / NAME
    common.copy_sources(PLUGIN_SRC, folder)
    entry = folder / f"{NAME}.py"
    entry.chmod(entry.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    common.copy_client(folder / "_lib")
    common.copy_installer(folder / "_installer")
    vendor(folder / "_vendor")
    common.write_json(folder / "backend.json", settings)
    return folder


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--plugins-dir", help="GIMP's plug-ins folder (default: the user's, see "
                   "Edit ▸ Preferences ▸ Folders ▸ Plug-ins)")
    p.add_argument("--home", help="install for this home folder instead of $HOME")
    p.add_argument("--gimp-version", help="GIMP's folder version (default: the newest 3.x "
                   "folder there is, else 3.0)")
    common.add_backend_arguments(p, "plug-in")
    p.add_argument("--pythons", type=lambda s: [v for v in s.split(",") if v], default=None,
                   help="Python versions to vendor pyzmq for (default: GIMP's python3 on "
                   "Linux; 3.10,3.11,3.12 elsewhere)")
    p.add_argument("--gimp-python", help="the Python GIMP runs plug-ins with (Linux; "
                   "default: python3 on PATH)")
    p.add_argument("--platforms", type=lambda s: s.split(","), default=None,
                   help=f"platforms to vendor for ({', '.join(common.PLATFORMS)}; default: "
                   "this one)")
    args = p.parse_args(argv)

    platforms = args.platforms or [common.platform_tag()]
    common.check_platforms(p, platforms)
    pythons = args.pythons
    if pythons is None:
        pythons = list(PYTHONS)
        if sys.platform.startswith("linux"):
            version = system_python_version(args.gimp_python)
            if version:
                pythons = [version]
            else:
                common.say("warning: no python3 found for GIMP; vendoring pyzmq for "
                           + ", ".join(pythons))

    home = Path(args.home).expanduser() if args.home else Path.home()
    plugins = (Path(args.plugins_dir).expanduser() if args.plugins_dir else
               default_plugins_dir(home, use_env=not args.home, version=args.gimp_version))

    backend = common.resolve_backend(args, "plug-in")
    settings = common.backend_settings(backend, args.family_path, args.endpoint)
    with tempfile.TemporaryDirectory(prefix="dni-gimp-") as tmp:
        staged = stage(Path(tmp), common.pyzmq_vendor(pythons, platforms, args.offline),
                       settings)
        common.replace_dir(staged, plugins / NAME)
    common.say(f"installed into {plugins / NAME}")
    flatpak = home / ".var" / "app" / "org.gimp.GIMP"
    if not args.plugins_dir and sys.platform.startswith("linux") and flatpak.is_dir():
        common.say(f"note: a Flatpak GIMP keeps its plug-ins under {flatpak}/config/GIMP/"
                   "3.0/plug-ins and runs its own Python: install there with --plugins-dir "
                   "and --pythons (not verified)")
    if backend:
        common.say(f"backend command: {' '.join(backend)}")
    common.say("restart GIMP; the filters are in Filters ▸ Enhance (DNI Denoise…, DNI "
               "Super-Resolve…) and Filters ▸ Artistic (DNI Stylize…).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
