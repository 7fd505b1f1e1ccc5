"""What every editor-plugin installer does: find the backend, copy the shared client
(`dni_client`), vendor pyzmq for the editor's Python, write backend.json, and replace a
previous install as a whole. Used by install_gimp_plugin.py and install_krita_plugin.py;
each of those keeps only what is its editor's own (folders, config files, menus).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
CLIENT_SRC = REPO / "plugin" / "dni_client"
sys.path.insert(0, str(CLIENT_SRC.parent))
sys.path.insert(0, str(HERE))
from dni_install.platform import Platform  # noqa: E402

from dni_client.settings import write_json  # noqa: E402, F401  (the installers' too)
from dni_client.vendoring import PIP_PLATFORMS as PLATFORMS  # noqa: E402
from dni_client.vendoring import platform_tag, python_tag  # noqa: E402, F401

PYZMQ = "pyzmq>=26,<28"
CACHE = Path(os.environ.get("DNI_WHEEL_CACHE") or Path.home() / ".cache" / "dni" / "wheels")
_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", "_vendor", "_lib", "_installer",
                                 "backend.json")
INSTALLER_FILES = ("install.py", "dni_install")  # what a plugin carries to (re)install
# its backend from inside the editor
Vendor = Callable[[Path], None]  # fills a plugin's _vendor folder


def platform_for(home: Path, system: str, use_env: bool) -> Platform:
    """The installer's view of a user whose home is `home` (without the current user's
    environment variables unless `use_env`)."""
    return Platform(system="win32" if system.startswith("win") else system, machine="",
                    home=home, env=dict(os.environ) if use_env else {})

def say(message: str) -> None:
    print(f"dni-install: {message}", flush=True)


# -- the backend ---------------------------------------------------------------------------

def _works(argv: list[str]) -> bool:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    try:
        return subprocess.run(argv + ["serve", "--help"], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, env=env, timeout=120).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def find_backend(given: str | None, sibling_python: bool = False) -> list[str] | None:
    """A command whose `serve` subcommand works: `dni`, or `<python> -m dni.server`.
    `sibling_python`: when `given` is a command, also try the `python` next to it."""
    candidates: list[list[str]] = []
    if given:
        path = shutil.which(given) or given
        if Path(path).name.startswith("python"):
            candidates.append([str(Path(path).absolute()), "-m", "dni.server"])
        else:
            candidates.append([str(Path(path).absolute())])
            if sibling_python:
                sibling = Path(path).absolute().parent / ("python.exe" if os.name == "nt"
                                                          else "python")
                if sibling.exists():
                    candidates.append([str(sibling), "-m", "dni.server"])
    else:
        here = Path(sys.executable).parent
        for exe in ("dni", "dni.exe"):
            if (here / exe).exists():
                candidates.append([str(here / exe)])
        found = shutil.which("dni")
        if found:
            candidates.append([str(Path(found).absolute())])
        candidates.append([sys.executable, "-m", "dni.server"])
    for argv in candidates:
        if _works(argv):
            return argv
    return None


def resolve_backend(args: argparse.Namespace, what: str,
                    sibling_python: bool = False) -> list[str] | None:
    """The backend command to record (None with --no-backend, or with a warning when
    none works); `what` names the editor's add-on ("plugin", "plug-in")."""
    if args.no_backend:
        return None
    backend = find_backend(args.backend, sibling_python)
    if backend is None:
        say(f"warning: no working `dni serve` found; the {what} will look for `dni` on "
            "PATH. Re-run with --backend /path/to/dni once the backend is installed.")
    return backend


# -- pyzmq ---------------------------------------------------------------------------------

def download_wheel(python: str, platform: str, pip_python: str | None = None,
                   index_args: Sequence[str] = ()) -> Path:
    """The pyzmq wheel for one Python version and platform (cached between runs), fetched
    by `pip_python`'s pip (default: this Python's) from the given index options."""
    target = CACHE / python_tag(python, platform)
    wheels = sorted(target.glob("pyzmq-*.whl")) if target.is_dir() else []
    if wheels:
        return wheels[-1]
    target.mkdir(parents=True, exist_ok=True)
    argv = [pip_python or sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
            "--disable-pip-version-check", "--only-binary=:all:", "--python-version", python,
            "--implementation", "cp", "--dest", str(target)]
    for tag in PLATFORMS[platform]:
        argv += ["--platform", tag]
    argv += [*index_args, PYZMQ]
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
            if ".dist-info/" not in member:
                zf.extract(member, dest)


def vendor_offline(dest: Path) -> None:
    """Copy this interpreter's pyzmq (and its bundled libzmq) into `dest`."""
    import zmq

    package = Path(zmq.__file__).parent
    site = package.parent
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copytree(package, dest / "zmq", dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("__pycache__", "tests"))
    for pattern in ("pyzmq.libs", "pyzmq*.dylibs"):  # libzmq next to the package
        for extra in site.glob(pattern):
            shutil.copytree(extra, dest / extra.name, dirs_exist_ok=True)


def vendor_pyzmq(vendor_root: Path, pythons: Sequence[str], platforms: Sequence[str],
                 offline: bool, pip_python: str | None = None,
                 index_args: Sequence[str] = ()) -> list[str]:
    """Fill <vendor_root>/<tag>/ for each Python and platform; returns the tags."""
    if offline:
        tag = python_tag()
        vendor_offline(vendor_root / tag)
        say(f"vendored this Python's pyzmq as {tag} (offline)")
        return [tag]
    tags: list[str] = []
    for platform in platforms:
        for python in pythons:
            wheel = download_wheel(python, platform, pip_python, index_args)
            # An abi3 wheel serves every CPython from its version on: one folder that the
            # plugins' path modules look in for any Python >= 3.12.
            tag = (f"abi3-{platform}" if "-abi3-" in wheel.name
                   else python_tag(python, platform))
            if tag in tags:
                continue
            unpack_wheel(wheel, vendor_root / tag)
            tags.append(tag)
            say(f"vendored {wheel.name} as {tag}")
    return tags


def pyzmq_vendor(pythons: Sequence[str], platforms: Sequence[str], offline: bool,
                 pip_python: str | None = None, index_args: Sequence[str] = ()) -> Vendor:
    """A Vendor that puts pyzmq for these Pythons and platforms into a _vendor folder."""
    def vendor(root: Path) -> None:
        vendor_pyzmq(root, pythons, platforms, offline, pip_python, index_args)

    return vendor


# -- the plugin folder ---------------------------------------------------------------------

def copy_installer(dest: Path) -> None:
    """install.py and its package, so the plugin can install or update its backend."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in INSTALLER_FILES:
        source = HERE / name
        if source.is_dir():
            shutil.copytree(source, dest / name,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(source, dest / name)


def copy_client(lib_dir: Path) -> None:
    shutil.copytree(CLIENT_SRC, lib_dir / "dni_client",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


def copy_sources(src: Path, dest: Path) -> None:
    """The plugin's own files, without build leftovers of a source checkout."""
    shutil.copytree(src, dest, ignore=_IGNORE)


def backend_settings(backend: list[str] | None, family_paths: Sequence[str],
                     endpoint: str | None) -> dict[str, object]:
    settings: dict[str, object] = {
        "command": backend or [],
        "family_paths": [str(Path(p).absolute()) for p in family_paths]}
    if endpoint:
        settings["endpoint"] = endpoint
    return settings


def replace_dir(staged: Path, target: Path) -> None:
    """Put `staged` at `target`, replacing a previous install as a whole (no stale modules
    survive an update); the old copy is removed only once the new one is in place."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fresh = Path(tempfile.mkdtemp(prefix=f".{target.name}-new-", dir=target.parent))
    shutil.rmtree(fresh)
    shutil.copytree(staged, fresh, symlinks=False)
    old = None
    if target.exists():
        old = target.parent / f".{target.name}-old-{os.getpid()}"
        if old.exists():
            shutil.rmtree(old)
        os.replace(target, old)
    os.replace(fresh, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


# -- the command line ----------------------------------------------------------------------

def add_backend_arguments(p: argparse.ArgumentParser, what: str) -> None:
    """The options every installer has for the backend and for pyzmq: --backend,
    --no-backend, --family-path, --endpoint, --offline."""
    p.add_argument("--backend", help="the backend command (`dni`) or its Python (default: "
                   "the `dni` next to this Python, then on PATH)")
    p.add_argument("--no-backend", action="store_true", help="record no backend command")
    p.add_argument("--family-path", action="append", default=[],
                   help=f"extra family folder for the backend the {what} starts")
    p.add_argument("--endpoint", help="backend endpoint (default tcp://127.0.0.1:5557)")
    p.add_argument("--offline", action="store_true",
                   help="no downloads: vendor this Python's own pyzmq")


def check_platforms(p: argparse.ArgumentParser, platforms: Sequence[str]) -> None:
    """Exit with a usage error (status 2) for a platform tag not in PLATFORMS."""
    unknown = [x for x in platforms if x not in PLATFORMS]
    if unknown:
        p.error(f"unknown platform {unknown[0]!r}; pick from {', '.join(PLATFORMS)}")
