#!/usr/bin/env python3
"""Install DNI: the backend (its own Python environment, with the torch that fits this
machine) and the plugins for every Krita and GIMP 3 found. Any Python 3.9+ runs it, on
Linux, macOS and Windows.

    python installers/install.py                   # install, or upgrade in place
    python installers/install.py --dry-run         # print the plan, change nothing
    python installers/install.py --torch cpu       # cpu, cuda, rocm, mps or skip
    python installers/install.py --wheel dni-0.1.0-py3-none-any.whl
    python installers/install.py --uninstall       # remove everything it put down

The backend goes into the per-user data folder (Linux: ~/.local/share/dni, macOS:
~/Library/Application Support/dni, Windows: %LOCALAPPDATA%\\dni) or --prefix. Without
--wheel it installs the checkout it sits in, or else `dni` from the package index.
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
# dni_client: the checkout's plugin/ folder, or _lib/ of the plugin carrying this copy.
for _lib in (HERE.parent / "plugin", HERE.parent / "_lib"):
    if (_lib / "dni_client").is_dir():
        sys.path.insert(0, str(_lib))
        break

from dni_install import backend, torch_choice  # noqa: E402
from dni_install.plan import Installer, Options  # noqa: E402
from dni_install.platform import Platform  # noqa: E402


def say(message: str) -> None:
    print(f"dni-install: {message}", flush=True)


def checkout() -> Path | None:
    """The source checkout this installer sits in (None in a plugin's copy)."""
    root = HERE.parent
    pyproject = root / "pyproject.toml"
    if pyproject.is_file() and 'name = "dni"' in pyproject.read_text(encoding="utf-8"):
        return root
    return None


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--prefix", type=Path, help="the folder for the backend (default: the "
                   "per-user data folder)")
    p.add_argument("--venv", type=Path, help="the backend's environment (default: "
                   "<prefix>/venv; the install record then goes inside it)")
    p.add_argument("--develop", action="store_true", help="install this checkout editable "
                   "with its test tools (what setup.sh does for .venv)")
    p.add_argument("--wheel", type=Path, help="install the backend from this wheel file")
    p.add_argument("--index-url", help="the package index for the backend and its "
                   "dependencies (pip --index-url)")
    p.add_argument("--extra-index-url", action="append", default=[], help="another index")
    p.add_argument("--find-links", action="append", default=[],
                   help="a folder (or page) of wheels pip may use")
    p.add_argument("--torch", choices=torch_choice.VARIANTS, help="the torch build (default: "
                   "the one this machine's GPU needs)")
    p.add_argument("--torch-index-url", help="where torch comes from (overrides the choice's)")
    p.add_argument("--no-plugins", action="store_true", help="the backend only")
    p.add_argument("--point-plugin", action="append", default=[], type=Path,
                   help="an installed plugin folder to point at this backend (instead of "
                   "installing the plugins)")
    p.add_argument("--endpoint", help="backend endpoint for the plugins (default "
                   "tcp://127.0.0.1:5557)")
    p.add_argument("--family-path", action="append", default=[],
                   help="extra family folder for the backend the plugins start")
    p.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")
    p.add_argument("--uninstall", action="store_true",
                   help="remove everything an earlier run put down")
    args = p.parse_args(argv)
    if args.wheel is not None and not args.wheel.is_file():
        p.error(f"--wheel {args.wheel}: no such file")
    if args.develop and (args.wheel or args.index_url or checkout() is None):
        p.error("--develop installs the checkout this installer sits in: no --wheel or "
                "--index-url with it")
    return args


def options_from(args: argparse.Namespace) -> Options:
    sources = backend.Sources(
        wheel=args.wheel.resolve() if args.wheel else None,
        checkout=None if args.wheel or args.index_url else checkout(),
        index_url=args.index_url, extra_index_urls=args.extra_index_url,
        find_links=args.find_links, torch_index_url=args.torch_index_url, develop=args.develop)
    return Options(sources=sources, prefix=args.prefix.resolve() if args.prefix else None,
                   venv=args.venv.resolve() if args.venv else None,
                   torch=args.torch, plugins=not args.no_plugins,
                   point=[d.resolve() for d in args.point_plugin], endpoint=args.endpoint,
                   family_paths=args.family_path)


def plugin_source(sources: backend.Sources) -> Callable[[Path], object] | None:
    """Makes the checkout's plugin installer for the backend's Python, fetching pyzmq from
    the backend's sources (None without plugin sources here)."""
    if checkout() is None:
        return None
    from dni_install.plugins import CheckoutPlugins

    return lambda python: CheckoutPlugins(str(python), sources.index_args())


def cancelled(signum: int, frame: object) -> None:
    raise backend.Cancelled("cancelled")


def main(argv: list[str] | None = None) -> int:
    for name in ("SIGTERM", "SIGINT"):  # the editors' Cancel, Ctrl+C: clean up, then stop
        signal.signal(getattr(signal, name), cancelled)
    args = parse(argv)
    options = options_from(args)
    installer = Installer(Platform.current(), options, say=say,
                          plugin_source=plugin_source(options.sources))
    try:
        if args.uninstall:
            lines = installer.uninstall()
        elif args.dry_run:
            lines = ["plan (nothing changed):", *installer.plan()]
        else:
            say("plan: " + "; ".join(installer.plan()))
            lines = ["done:", *installer.install()]
    except (backend.InstallError, torch_choice.TorchError, OSError) as exc:
        print(f"dni-install: error: {exc}", file=sys.stderr, flush=True)
        return 1
    print("\n".join(f"  {line}" if i else f"dni-install: {line}" for i, line in
                    enumerate(lines)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
