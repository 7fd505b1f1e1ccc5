"""The `dni get` and `dni remove` subcommands: install a family from the catalogue (or
from files downloaded by hand) into the per-user family folder, and take it out again.

`register(subparsers)` adds them to the `dni` command's parser.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from . import catalogue, install
from .errors import DNIError


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("get", help="download a family from the catalogue and install it")
    p.add_argument("name", nargs="?", help="family name (see `dni get --list`)")
    p.add_argument("--list", action="store_true", help="list the catalogue's families")
    p.add_argument("--json", action="store_true", help="with --list: machine-readable")
    p.add_argument("--catalogue", type=Path, metavar="FILE",
                   help=f"use this catalogue instead of the built-in one (or set "
                        f"{catalogue.CATALOGUE_ENV})")
    p.add_argument("--from", dest="sources", type=Path, action="append", default=[],
                   metavar="FILE_OR_FOLDER",
                   help="install files you downloaded yourself (repeatable); each is "
                        "checked against the catalogue's SHA-256")
    p.set_defaults(handler=cmd_get)

    p = subparsers.add_parser("remove", help="delete a family installed with `dni get`")
    p.add_argument("name")
    p.set_defaults(handler=cmd_remove)


def _byte_bar(total: int, description: str):  # noqa: ANN202 - tqdm type
    from tqdm import tqdm

    # disable=None: quiet when stderr is not a terminal (scripts, CI logs).
    return tqdm(total=total, desc=description, unit="B", unit_scale=True, unit_divisor=1024,
                disable=None, leave=False)


def _print_list(entries: list[catalogue.Entry], as_json: bool) -> None:
    from .registry import user_family_dir

    root = user_family_dir()
    listed = [dict(e.to_dict(), installed=install.installed(root, e.name)) for e in entries]
    if as_json:
        print(json.dumps(listed, indent=2))
        return
    for e in listed:
        mark = "installed" if e["installed"] else f"{e['size'] / 2**20:.0f} MiB"
        print(f"{e['name']:20} {e['task']:14} {mark:>10}  {e['licence']:14} "
              f"{e['axis']['low']} -> {e['axis']['high']}")


def cmd_get(args: argparse.Namespace) -> int:
    entries = catalogue.load(catalogue.catalogue_path(args.catalogue))
    if args.list:
        _print_list(entries, args.json)
        return 0
    if not args.name:
        raise DNIError("name a family to get (see `dni get --list`)")
    entry = catalogue.find(entries, args.name)
    with _byte_bar(entry.size, entry.name) as bar:
        manifest = install.install(entry, sources=args.sources, progress=bar.update)
    print(f"installed {entry.name} in {manifest.folder} ({entry.licence}, {entry.homepage})")
    for label, median, verdict in install.correlation_verdicts(manifest):
        print(f"filter correlation (paper eq. 3) of {label!r} against "
              f"{manifest.members[0].label!r}: median {median:.3f} -> {verdict}")
    print(f"try it: dni apply IMAGE -o OUT.png --family {entry.name} --strength 0.5")
    return 0


def cmd_remove(args: argparse.Namespace) -> int:
    folder = install.remove(args.name)
    print(f"removed {args.name} ({folder})", file=sys.stdout)
    return 0
