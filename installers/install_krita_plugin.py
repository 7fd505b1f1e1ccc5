#!/usr/bin/env python3
"""Install the DNI plugin into Krita (Linux, macOS, Windows), or build its .zip.

    python installers/install_krita_plugin.py                 # install for this user
    python installers/install_krita_plugin.py --offline       # no downloads
    python installers/install_krita_plugin.py --zip dni_krita.zip   # for "Import Python
                                                              # Plugin from File…"

What it does (safe to run again; each run replaces the previous install):
1. copies plugin/krita/dni_krita (+ the dni_client package) into Krita's resource folder
   (<resources>/pykrita/), with the .desktop file next to it;
2. vendors pyzmq for the Pythons Krita builds ship (3.8, 3.10, 3.11, 3.13), one folder per
   Python ABI and platform, downloaded as wheels with pip (cached); --offline copies this
   interpreter's own pyzmq instead (one Python version only);
3. records the backend command (`dni`, or `python -m dni.server`) in
   dni_krita/backend.json, so the plugin finds it without a virtualenv on PATH;
4. enables the plugin in kritarc ([python] enable_dni_krita=true).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

NAME = "dni_krita"
REPO = Path(__file__).resolve().parents[1]
PLUGIN_SRC = REPO / "plugin" / "krita"
CLIENT_SRC = REPO / "plugin" / "dni_client"
PYTHONS = ("3.8", "3.10", "3.11", "3.13")
# pip --platform tags per plugin platform tag (see dni_krita/vendor.py for the names).
PLATFORMS = {
    "linux_x86_64": ["manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64"],
    "linux_aarch64": ["manylinux_2_28_aarch64", "manylinux_2_17_aarch64",
                      "manylinux2014_aarch64"],
    "win_amd64": ["win_amd64"],
    "macosx_x86_64": ["macosx_10_15_x86_64", "macosx_10_9_x86_64", "macosx_10_15_universal2",
                      "macosx_10_9_universal2"],
    "macosx_arm64": ["macosx_11_0_arm64", "macosx_10_15_universal2", "macosx_10_9_universal2"],
}
PYZMQ = "pyzmq>=26,<28"
CACHE = Path(os.environ.get("DNI_WHEEL_CACHE") or Path.home() / ".cache" / "dni" / "wheels")


def say(message: str) -> None:
    print(f"dni-install: {message}", flush=True)


# -- where Krita keeps things --------------------------------------------------------------

def default_dirs(home: Path, system: str = sys.platform, use_env: bool = True
                 ) -> tuple[Path, Path]:
    """(resource folder, kritarc) for a user whose home is `home`; `use_env` False ignores
    the current user's APPDATA/XDG variables (installing into another home)."""
    if not use_env:
        if system.startswith("win"):
            return home / "AppData" / "Roaming" / "krita", home / "AppData" / "Local" / "kritarc"
        if system != "darwin":
            return home / ".local" / "share" / "krita", home / ".config" / "kritarc"
    if system.startswith("win"):
        appdata = Path(os.environ.get("APPDATA") or home / "AppData" / "Roaming")
        local = Path(os.environ.get("LOCALAPPDATA") or home / "AppData" / "Local")
        return appdata / "krita", local / "kritarc"
    if system == "darwin":
        return (home / "Library" / "Application Support" / "krita",
                home / "Library" / "Preferences" / "kritarc")
    data = os.environ.get("XDG_DATA_HOME")
    config = os.environ.get("XDG_CONFIG_HOME")
    data_dir = Path(data) if data else home / ".local" / "share"
    config_dir = Path(config) if config else home / ".config"
    return data_dir / "krita", config_dir / "kritarc"


def enable_in_kritarc(kritarc: Path, name: str = NAME) -> bool:
    """Set [python] enable_<name>=true, keeping every other line as it is. True if changed."""
    key = f"enable_{name}"
    lines = kritarc.read_text(encoding="utf-8").splitlines() if kritarc.exists() else []
    out, in_python, done = [], False, False
    for line in lines:
        stripped = line.strip()
        if stripped.startswith("[") and stripped.endswith("]"):
            if in_python and not done:
                out.append(f"{key}=true")
                done = True
            in_python = stripped == "[python]"
        elif in_python and stripped.split("=", 1)[0].strip() == key:
            if not done:
                out.append(f"{key}=true")
                done = True
            continue
        out.append(line)
    if not done:
        if not in_python:
            if out and out[-1].strip():
                out.append("")
            out.append("[python]")
        out.append(f"{key}=true")
    text = "\n".join(out) + "\n"
    if kritarc.exists() and kritarc.read_text(encoding="utf-8") == text:
        return False
    kritarc.parent.mkdir(parents=True, exist_ok=True)
    kritarc.write_text(text, encoding="utf-8")
    return True


# -- the backend ---------------------------------------------------------------------------

def _works(argv: list[str]) -> bool:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    try:
        return subprocess.run(argv + ["serve", "--help"], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, env=env, timeout=120).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def find_backend(given: str | None) -> list[str] | None:
    """A command whose `serve` subcommand works: `dni`, or `<python> -m dni.server`."""
    candidates: list[list[str]] = []
    if given:
        path = shutil.which(given) or given
        if Path(path).name.startswith("python"):
            candidates.append([str(Path(path).absolute()), "-m", "dni.server"])
        else:
            candidates.append([str(Path(path).absolute())])
            sibling = Path(path).absolute().parent / ("python.exe" if os.name == "nt"
                                                      else "python")
            if sibling.exists():
                candidates.append([str(sibling), "-m", "dni.server"])
    else:
        here = Path(sys.executable).parent
        for exe in ("dni", "dni.exe"):
            if (here / exe).exists():
                candidates.append([str(here / exe)])
        if shutil.which("dni"):
            candidates.append([str(Path(shutil.which("dni")).absolute())])  # type: ignore[arg-type]
        candidates.append([sys.executable, "-m", "dni.server"])
    for argv in candidates:
        if _works(argv):
            return argv
    return None


# -- pyzmq ---------------------------------------------------------------------------------

def plugin_platform_tag() -> str:
    sys.path.insert(0, str(PLUGIN_SRC / NAME))
    try:
        import vendor  # dni_krita/vendor.py, imported standalone

        return vendor.platform_tag()
    finally:
        sys.path.pop(0)
        sys.modules.pop("vendor", None)


def download_wheel(python: str, platform: str) -> Path:
    """The pyzmq wheel for one Python version and platform (cached)."""
    target = CACHE / f"cp{python.replace('.', '')}-{platform}"
    wheels = sorted(target.glob("pyzmq-*.whl")) if target.is_dir() else []
    if wheels:
        return wheels[-1]
    target.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
            "--only-binary=:all:", "--python-version", python, "--implementation", "cp",
            "--dest", str(target)]
    for tag in PLATFORMS[platform]:
        argv += ["--platform", tag]
    argv.append(PYZMQ)
    result = subprocess.run(argv, capture_output=True, text=True)
    wheels = sorted(target.glob("pyzmq-*.whl"))
    if result.returncode != 0 or not wheels:
        raise SystemExit(f"dni-install: could not download pyzmq for Python {python} on "
                         f"{platform}:\n{result.stderr.strip()[-800:]}\n(Use --offline to "
                         "vendor this Python's own pyzmq instead.)")
    return wheels[-1]


def unpack_wheel(wheel: Path, dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel) as zf:
        for member in zf.namelist():
            if ".dist-info/" in member:
                continue
            zf.extract(member, dest)


def vendor_offline(dest_root: Path, python_tag: str) -> None:
    """Copy this interpreter's pyzmq (and its bundled libzmq) for its own Python only."""
    import zmq

    package = Path(zmq.__file__).parent
    site = package.parent
    dest = dest_root / python_tag
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copytree(package, dest / "zmq", ignore=shutil.ignore_patterns("__pycache__",
                                                                         "tests"))
    for extra in site.glob("pyzmq.libs"):  # manylinux: libzmq lives next to the package
        shutil.copytree(extra, dest / extra.name)
    for extra in site.glob("pyzmq*.dylibs"):
        shutil.copytree(extra, dest / extra.name)


# -- building the plugin folder ------------------------------------------------------------

def stage(dest: Path, pythons: list[str], platforms: list[str], offline: bool) -> None:
    """Write <dest>/dni_krita.desktop and <dest>/dni_krita/ (with _lib and _vendor)."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "_vendor", "_lib",
                                    "backend.json")
    shutil.copy2(PLUGIN_SRC / f"{NAME}.desktop", dest / f"{NAME}.desktop")
    shutil.copytree(PLUGIN_SRC / NAME, dest / NAME, ignore=ignore)
    for extra in PLUGIN_SRC.glob("*.action"):
        shutil.copy2(extra, dest / NAME / extra.name)
    lib = dest / NAME / "_lib" / "dni_client"
    shutil.copytree(CLIENT_SRC, lib, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    vendor_root = dest / NAME / "_vendor"
    vendor_root.mkdir(parents=True, exist_ok=True)
    if offline:
        tag = f"cp{sys.version_info[0]}{sys.version_info[1]}-{plugin_platform_tag()}"
        vendor_offline(vendor_root, tag)
        say(f"vendored this Python's pyzmq as {tag} (offline)")
        return
    for platform in platforms:
        for python in pythons:
            wheel = download_wheel(python, platform)
            tag = f"cp{python.replace('.', '')}-{platform}"
            unpack_wheel(wheel, vendor_root / tag)
            say(f"vendored {wheel.name} as {tag}")


def install(args: argparse.Namespace) -> int:
    home = Path(args.home).expanduser() if args.home else Path.home()
    resources, kritarc = default_dirs(home, use_env=not args.home)
    if args.resource_dir:
        resources = Path(args.resource_dir).expanduser()
    if args.kritarc:
        kritarc = Path(args.kritarc).expanduser()
    pykrita = resources / "pykrita"
    pykrita.mkdir(parents=True, exist_ok=True)

    backend = None if args.no_backend else find_backend(args.backend)
    if backend is None and not args.no_backend:
        say("warning: no working `dni serve` found; the plugin will look for `dni` on PATH. "
            "Re-run with --backend /path/to/dni once the backend is installed.")

    with tempfile.TemporaryDirectory(prefix="dni-krita-") as tmp:
        staging = Path(tmp)
        stage(staging, args.pythons, args.platforms, args.offline)
        settings = {"command": backend or [],
                    "family_paths": [str(Path(p).absolute()) for p in args.family_path]}
        if args.endpoint:
            settings["endpoint"] = args.endpoint
        import json

        (staging / NAME / "backend.json").write_text(json.dumps(settings, indent=2) + "\n")
        # Replace the previous install as a whole: no stale modules survive an update.
        target = pykrita / NAME
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(staging / NAME, target)
        shutil.copy2(staging / f"{NAME}.desktop", pykrita / f"{NAME}.desktop")
    say(f"installed into {pykrita}")
    if backend:
        say(f"backend command: {' '.join(backend)}")
    if not args.no_enable:
        changed = enable_in_kritarc(kritarc)
        say(f"{'enabled' if changed else 'already enabled'} in {kritarc}")
    say("restart Krita; the filters are in Filter ▸ DNI, the docker in Settings ▸ Dockers "
        "▸ DNI.")
    return 0


def build_zip(args: argparse.Namespace) -> int:
    out = Path(args.zip).absolute()
    with tempfile.TemporaryDirectory(prefix="dni-krita-zip-") as tmp:
        staging = Path(tmp)
        stage(staging, args.pythons, args.platforms, args.offline)
        out.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
            for path in sorted(staging.rglob("*")):
                if path.is_file():
                    zf.write(path, path.relative_to(staging).as_posix())
    say(f"wrote {out} (Krita: Tools ▸ Scripts ▸ Import Python Plugin from File…)")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--resource-dir", help="Krita's resource folder (default: the user's)")
    p.add_argument("--home", help="install for this home folder instead of $HOME")
    p.add_argument("--kritarc", help="the kritarc to enable the plugin in")
    p.add_argument("--backend", help="the backend command (`dni`) or its Python "
                   "(default: the `dni` next to this Python, then on PATH)")
    p.add_argument("--no-backend", action="store_true", help="record no backend command")
    p.add_argument("--family-path", action="append", default=[],
                   help="extra family folder for the backend the plugin starts")
    p.add_argument("--endpoint", help="backend endpoint (default tcp://127.0.0.1:5557)")
    p.add_argument("--offline", action="store_true",
                   help="no downloads: vendor this Python's own pyzmq")
    p.add_argument("--pythons", type=lambda s: s.split(","), default=list(PYTHONS),
                   help="Python versions to vendor pyzmq for (default: 3.8,3.10,3.11,3.13)")
    p.add_argument("--platforms", type=lambda s: s.split(","), default=None,
                   help=f"platforms to vendor for ({', '.join(PLATFORMS)}; default: this "
                   "one; all of them with --zip)")
    p.add_argument("--no-enable", action="store_true", help="leave kritarc alone")
    p.add_argument("--zip", help="build the plugin .zip instead of installing")
    args = p.parse_args(argv)
    if args.platforms is None:
        args.platforms = list(PLATFORMS) if args.zip else [plugin_platform_tag()]
    unknown = [x for x in args.platforms if x not in PLATFORMS]
    if unknown:
        p.error(f"unknown platform {unknown[0]!r}; pick from {', '.join(PLATFORMS)}")
    return build_zip(args) if args.zip else install(args)


if __name__ == "__main__":
    sys.exit(main())
