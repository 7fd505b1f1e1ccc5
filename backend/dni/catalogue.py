"""The catalogue of families `dni get` can download: `catalogue.toml` beside this module,
or the file named by `--catalogue` or the DNI_CATALOGUE environment variable (mirrors,
tests).

Each `[[families]]` entry is a family manifest (the fields of family.toml) plus, per
member, `url` (one mirror or a list), `sha256` and `size` of the published file, and per
family `licence` and `homepage` (docs/families.md, "The catalogue"). The manifest part is
checked by the same code as any family.toml when it is installed (manifest.py).
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import DNIError
from .manifest import WEIGHT_SUFFIXES, valid_family_name

CATALOGUE_ENV = "DNI_CATALOGUE"
# Keys the catalogue adds to a family manifest: not written into family.toml.
FAMILY_EXTRA_KEYS = ("licence", "homepage")
MEMBER_EXTRA_KEYS = ("url", "sha256", "size")
_SHA256_RE = re.compile(r"[0-9a-f]{64}")
_FILE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,127}")


class CatalogueError(DNIError):
    """The catalogue file is missing, not TOML, or an entry is incomplete."""


@dataclass(frozen=True)
class Download:
    """One member's published file."""

    label: str
    file: str                 # its name inside the family folder
    urls: tuple[str, ...]     # mirrors, tried in order
    sha256: str
    size: int


@dataclass(frozen=True)
class Entry:
    """One family the catalogue offers."""

    name: str
    title: str
    task: str
    description: str
    licence: str
    homepage: str
    downloads: tuple[Download, ...]
    manifest: dict[str, Any]  # the family.toml fields, without the catalogue's own

    @property
    def size(self) -> int:
        return sum(d.size for d in self.downloads)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary: what `dni get --list --json` and the server's
        `catalogue` op report."""
        axis = self.manifest.get("axis", {})
        return {
            "name": self.name, "title": self.title, "task": self.task,
            "description": self.description, "licence": self.licence,
            "homepage": self.homepage, "size": self.size,
            "scale": self.manifest.get("scale", 1),
            "axis": {"name": str(axis.get("name", "strength")), "low": str(axis.get("low", "")),
                     "high": str(axis.get("high", ""))},
            "members": [{"label": d.label, "file": d.file, "size": d.size}
                        for d in self.downloads],
        }

    def manifest_text(self) -> str:
        """The family.toml to install with the files."""
        return to_toml(self.manifest)


def builtin_path() -> Path:
    return Path(__file__).with_name("catalogue.toml")


def catalogue_path(explicit: Path | None = None) -> Path:
    """--catalogue, else DNI_CATALOGUE, else the built-in catalogue."""
    if explicit is not None:
        return explicit
    env = os.environ.get(CATALOGUE_ENV)
    return Path(env) if env else builtin_path()


def load(path: Path) -> list[Entry]:
    """Every entry of the catalogue at `path`; CatalogueError naming the first problem."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CatalogueError(f"{path}: no such catalogue file") from None
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise CatalogueError(f"{path}: not a readable TOML catalogue ({exc})") from None
    raw_families = data.get("families")
    if not isinstance(raw_families, list) or not all(isinstance(f, dict) for f in raw_families):
        raise CatalogueError(f"{path}: expected a list of [[families]] tables")
    entries = [_entry(raw, f"{path}: family {index + 1}")
               for index, raw in enumerate(raw_families)]
    names = [e.name for e in entries]
    duplicate = next((n for n in names if names.count(n) > 1), None)
    if duplicate:
        raise CatalogueError(f"{path}: family {duplicate!r} is listed twice")
    return entries


def find(entries: list[Entry], name: str) -> Entry:
    for entry in entries:
        if entry.name == name:
            return entry
    known = ", ".join(e.name for e in entries) or "none"
    raise CatalogueError(f"the catalogue has no family {name!r} (it offers: {known})")


def _text(table: dict[str, Any], key: str, where: str) -> str:
    value = table.get(key)
    if not isinstance(value, str) or not value.strip():
        raise CatalogueError(f"{where}: '{key}' must be a non-empty string")
    return value


def _entry(raw: dict[str, Any], where: str) -> Entry:
    name = _text(raw, "name", where)
    if not valid_family_name(name):
        raise CatalogueError(f"{where}: family name {name!r} must be lower-case letters, "
                             "digits, '.', '_' or '-'")
    where = f"{where} ({name})"
    members = raw.get("members")
    if not isinstance(members, list) or len(members) < 2 \
            or not all(isinstance(m, dict) for m in members):
        raise CatalogueError(f"{where}: a family needs at least two [[families.members]]")
    downloads = tuple(_download(m, f"{where}: member {i + 1}") for i, m in enumerate(members))
    files = [d.file for d in downloads]
    if len(set(files)) != len(files):
        raise CatalogueError(f"{where}: two members share one file name")
    manifest = {k: v for k, v in raw.items() if k not in FAMILY_EXTRA_KEYS}
    manifest["members"] = [{k: v for k, v in m.items() if k not in MEMBER_EXTRA_KEYS}
                           for m in members]
    return Entry(name=name, title=str(raw.get("title", name)), task=str(raw.get("task", "other")),
                 description=str(raw.get("description", "")),
                 licence=_text(raw, "licence", where), homepage=_text(raw, "homepage", where),
                 downloads=downloads, manifest=manifest)


def _download(raw: dict[str, Any], where: str) -> Download:
    file = _text(raw, "file", where)
    if not _FILE_RE.fullmatch(file) or not file.endswith(WEIGHT_SUFFIXES):
        raise CatalogueError(f"{where}: file {file!r} must be a plain "
                             f"{'/'.join(WEIGHT_SUFFIXES)} file name")
    urls = raw.get("url")
    urls = [urls] if isinstance(urls, str) else urls
    if not isinstance(urls, list) or not urls or not all(
            isinstance(u, str) and u.startswith(("https://", "http://")) for u in urls):
        raise CatalogueError(f"{where}: 'url' must be an http(s) address or a list of them")
    sha256 = raw.get("sha256")
    if not isinstance(sha256, str) or not _SHA256_RE.fullmatch(sha256.lower()):
        raise CatalogueError(f"{where}: 'sha256' must be 64 hexadecimal digits")
    size = raw.get("size")
    if isinstance(size, bool) or not isinstance(size, int) or size <= 0:
        raise CatalogueError(f"{where}: 'size' must be the file's size in bytes")
    return Download(label=str(raw.get("label", file)), file=file, urls=tuple(urls),
                    sha256=sha256.lower(), size=size)


# -- writing family.toml -----------------------------------------------------------------

def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        # A JSON string is a valid TOML basic string (the same escapes).
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list) and not any(isinstance(v, dict) for v in value):
        return "[" + ", ".join(_scalar(v) for v in value) + "]"
    raise CatalogueError(f"cannot write {value!r} into a family manifest")


def to_toml(data: dict[str, Any], prefix: str = "") -> str:
    """TOML for a manifest's kinds of values: scalars, lists of scalars, tables and
    arrays of tables (tomllib only reads)."""
    lines: list[str] = []
    nested: list[str] = []
    for key, value in data.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            nested.append(f"\n[{path}]\n" + to_toml(value, f"{path}."))
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            nested += [f"\n[[{path}]]\n" + to_toml(item, f"{path}.") for item in value]
        else:
            lines.append(f"{key} = {_scalar(value)}\n")
    return "".join(lines) + "".join(nested)
