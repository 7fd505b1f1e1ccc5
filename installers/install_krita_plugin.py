#!/usr/bin/env python3
"""Install the DNI plugin into Krita (Linux, macOS, Windows), or build its .zip.

    python installers/install_krita_plugin.py                 # install for this user
    python installers/install_krita_plugin.py --offline       # no downloads
    python installers/install_krita_plugin.py --zip dni_krita.zip   # for "Import Python
                                                              # Plugin from File…"

What it does (safe to run again; each run replaces the previous install):
1. copies plugin/krita/dni_krita (+ the dni_client package) into Krita's resource folder
   (<resources>/pykrita/), with the .desktop file next to it;
2. vendors pyzmq for the Pythons Krita builds ship (3.8, 3.10, 3.11, 3.12, 3.13), one folder per
   Python ABI and platform (pyzmq's abi3 wheel, for 3.12 on, in abi3-<platform>),
   downloaded as wheels with pip (cached); --offline copies this interpreter's own pyzmq
   instead (one Python version only);
3. records the backend command (`dni`, or `python -m dni.server`) in
   dni_krita/backend.json, so the plugin finds it without a virtualenv on PATH;
4. enables the plugin in kritarc ([python] enable_dni_krita=true).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import plugin_common as common  # noqa: E402
from dni_install import kritarc as kritarc_lines  # noqa: E402
from dni_install import locations  # noqa: E402
from dni_install.editors import KRITA_PYTHONS as PYTHONS  # noqa: E402

NAME = "dni_krita"
PLUGIN_SRC = common.REPO / "plugin" / "krita"


# -- where Krita keeps things --------------------------------------------------------------


def default_dirs(home: Path, system: str = sys.platform, use_env: bool = True
                 ) -> tuple[Path, Path]:
    """(resource folder, kritarc) for a user whose home is `home`; `use_env` False ignores
    the current user's APPDATA/XDG variables (installing into another home)."""
    return locations.krita_dirs(common.platform_for(home, system, use_env))


def enable_in_kritarc(kritarc: Path, name: str = NAME) -> bool:
    """Set [python] enable_<name>=true, keeping every other line as it is. True if changed."""
    return kritarc_lines.enable(kritarc, name)


# -- building the plugin folder ------------------------------------------------------------

def stage(dest: Path, vendor: common.Vendor) -> None:
    """Write <dest>/dni_krita.desktop and <dest>/dni_krita/ (with _lib, _installer and,
    through `vendor`, _vendor)."""
    shutil.copy2(PLUGIN_SRC / f"{NAME}.desktop", dest / f"{NAME}.desktop")
    common.copy_sources(PLUGIN_SRC / NAME, dest / NAME)
    for extra in PLUGIN_SRC.glob("*.action"):
        shutil.copy2(extra, dest / NAME / extra.name)
    common.copy_client(dest / NAME / "_lib")
    common.copy_installer(dest / NAME / "_installer")
    vendor(dest / NAME / "_vendor")


def install(args: argparse.Namespace) -> int:
    home = Path(args.home).expanduser() if args.home else Path.home()
    resources, kritarc = default_dirs(home, use_env=not args.home)
    if args.resource_dir:
        resources = Path(args.resource_dir).expanduser()
    if args.kritarc:
        kritarc = Path(args.kritarc).expanduser()
    pykrita = resources / "pykrita"
    pykrita.mkdir(parents=True, exist_ok=True)

    backend = common.resolve_backend(args, "plugin", sibling_python=True)
    settings = common.backend_settings(backend, args.family_path, args.endpoint)
    with tempfile.TemporaryDirectory(prefix="dni-krita-") as tmp:
        staging = Path(tmp)
        stage(staging, common.pyzmq_vendor(args.pythons, args.platforms, args.offline))
        common.write_json(staging / NAME / "backend.json", settings)
        common.replace_dir(staging / NAME, pykrita / NAME)
        shutil.copy2(staging / f"{NAME}.desktop", pykrita / f"{NAME}.desktop")
    common.say(f"installed into {pykrita}")
    if backend:
        common.say(f"backend command: {' '.join(backend)}")
    if not args.no_enable:
        changed = enable_in_kritarc(kritarc)
        common.say(f"{'enabled' if changed else 'already enabled'} in {kritarc}")
    common.say("restart Krita; the filters are in Filter ▸ DNI, the docker in Settings ▸ "
               "Dockers ▸ DNI.")
    return 0


def build_zip(args: argparse.Namespace) -> int:
    out = Path(args.zip).absolute()
    with tempfile.TemporaryDirectory(prefix="dni-krita-zip-") as tmp:
        staging = Path(tmp)
        stage(staging, common.pyzmq_vendor(args.pythons, args.platforms, args.offline))
        out.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
            for path in sorted(staging.rglob("*")):
                if path.is_file():
                    zf.write(path, path.relative_to(staging).as_posix())
    common.say(f"wrote {out} (Krita: Tools ▸ Scripts ▸ Import Python Plugin from File…)")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--resource-dir", help="Krita's resource folder (default: the user's)")
    p.add_argument("--home", help="install for this home folder instead of $HOME")
    p.add_argument("--kritarc", help="the kritarc to enable the plugin in")
    common.add_backend_arguments(p, "plugin")
    p.add_argument("--pythons", type=lambda s: s.split(","), default=list(PYTHONS),
                   help="Python versions to vendor pyzmq for (default: 3.8,3.10,3.11,3.12,3.13)")
    p.add_argument("--platforms", type=lambda s: s.split(","), default=None,
                   help=f"platforms to vendor for ({', '.join(common.PLATFORMS)}; default: "
                   "this one; all of them with --zip)")
    p.add_argument("--no-enable", action="store_true", help="leave kritarc alone")
    p.add_argument("--zip", help="build the plugin .zip instead of installing")
    args = p.parse_args(argv)
    if args.platforms is None:
        args.platforms = list(common.PLATFORMS) if args.zip else [common.platform_tag()]
    common.check_platforms(p, args.platforms)
    return build_zip(args) if args.zip else install(args)


if __name__ == "__main__":
    sys.exit(main())
