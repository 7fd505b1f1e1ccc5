"""Family manifests: a folder with `family.toml` and one weight file per member.

Example (see docs/families.md for every field)::

    name = "denoise"
    task = "denoise"
    title = "Denoise"
    architecture = "dni-denoise-unet" # or "auto": detected by spandrel
    scale = 1
    tile_pad = 32                     # context per tile side, px (default 16)
    [architecture_options]
    features = 48
    [axis]
    name = "noise level"
    low = "gentle (sigma 15)"
    high = "strong (sigma 50)"
    [[members]]
    label = "sigma 15"
    file = "sigma15.safetensors"
    position = 15
    [[presets]]
    name = "Light"
    strength = 0.2

Direction convention: members are ordered by `position`; strength 0 is the first member,
strength 1 the last (the slider's low end is `axis.low`). Weights are given per member
in that order. `descending = true` under [axis] orders them from the highest position
down, for axes whose gentle end has the high numbers (JPEG quality).
"""

from __future__ import annotations

import math
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dni_client import filters
from dni_client.mixing import Preset

from .errors import FamilyError

MANIFEST_NAME = "family.toml"
WEIGHT_SUFFIXES = (".safetensors", ".pth", ".pt", ".ckpt")
# Pixels of context each tile gets on every side; nets that see further can ask for more.
DEFAULT_TILE_PAD = 16
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


@dataclass(frozen=True)
class Member:
    label: str
    file: Path
    position: float


@dataclass(frozen=True)
class Manifest:
    name: str
    task: str
    title: str
    description: str
    architecture: str
    architecture_options: dict[str, Any]
    scale: int
    axis_name: str
    low_label: str
    high_label: str
    members: tuple[Member, ...]
    presets: tuple[Preset, ...] = field(default=())
    folder: Path = Path(".")
    tile_pad: int = DEFAULT_TILE_PAD
    # What the axis positions measure in an image ("noise-sigma"): lets `auto` estimate
    # the strength (dni.auto_strength); None for axes no image says anything about.
    axis_measures: str | None = None

    @property
    def positions(self) -> list[float]:
        return [m.position for m in self.members]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary, as `dni families --json` and the server report it."""
        return {
            "name": self.name,
            "task": self.task,
            "title": self.title,
            "description": self.description,
            "architecture": self.architecture,
            "scale": self.scale,
            "axis": {"name": self.axis_name, "low": self.low_label, "high": self.high_label,
                     **({"measures": self.axis_measures} if self.axis_measures else {})},
            "members": [{"label": m.label, "position": m.position} for m in self.members],
            "presets": [
                {k: v for k, v in (("name", p.name), ("strength", p.strength),
                                   ("weights", list(p.weights) if p.weights else None))
                 if v is not None}
                for p in self.presets
            ],
        }


def valid_family_name(name: str) -> bool:
    """Family names double as folder names: no path separators, no '..'."""
    return bool(_NAME_RE.match(name)) and ".." not in name


def _require(table: dict[str, Any], key: str, kind: type, where: str) -> Any:
    if key not in table:
        raise FamilyError(f"{where}: missing required field '{key}'")
    value = table[key]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise FamilyError(f"{where}: field '{key}' must be {kind.__name__}")
    return value


def _number(value: Any, what: str, where: str) -> float:
    """A finite float from a TOML value, or FamilyError: TOML allows inf, nan and whole
    numbers of any length, none of which is a position or a strength."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise FamilyError(f"{where}: {what} must be a number, not {value!r}"[:300])
    try:
        number = float(value)
    except OverflowError:
        raise FamilyError(f"{where}: {what} is a number too large to use") from None
    if not math.isfinite(number):
        raise FamilyError(f"{where}: {what} must be a finite number")
    return number


def _read_toml(folder: Path) -> dict[str, Any]:
    path = folder / MANIFEST_NAME
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FamilyError(f"{folder}: no {MANIFEST_NAME} in this folder") from None
    # ValueError covers TOMLDecodeError and whole numbers over Python's digit limit.
    except (ValueError, UnicodeDecodeError) as exc:
        raise FamilyError(f"{path}: not valid TOML ({exc})") from None


def _check_header(data: dict[str, Any], where: str) -> None:
    """The family-wide fields: name, task, architecture and its options, scale, tile_pad."""
    name = _require(data, "name", str, where)
    if not valid_family_name(name):
        raise FamilyError(f"{where}: family name {name!r} must be lower-case letters, digits, "
                          "'.', '_' or '-'")
    task = data.get("task", "other")
    if task not in filters.tasks():
        raise FamilyError(f"{where}: task {task!r} is not one of {', '.join(filters.tasks())}")
    _require(data, "architecture", str, where)
    if not isinstance(data.get("architecture_options", {}), dict):
        raise FamilyError(f"{where}: architecture_options must be a table")
    scale = data.get("scale", 1)
    if not isinstance(scale, int) or scale < 1 or scale > 16:
        raise FamilyError(f"{where}: scale must be a whole number from 1 to 16")
    tile_pad = data.get("tile_pad", DEFAULT_TILE_PAD)
    if not isinstance(tile_pad, int) or isinstance(tile_pad, bool) or not 0 <= tile_pad <= 256:
        raise FamilyError(f"{where}: tile_pad must be a whole number of pixels from 0 to 256")


def _members(folder: Path, raw_members: Any, where: str, descending: bool = False
             ) -> list[Member]:
    """The members, ordered by position, rising or `descending` (strength 0 is the
    first)."""
    if not isinstance(raw_members, list) or len(raw_members) < 2:
        raise FamilyError(f"{where}: a family needs at least two [[members]]")
    members = []
    for index, raw in enumerate(raw_members):
        mwhere = f"{where}: member {index + 1}"
        label = _require(raw, "label", str, mwhere)
        file = (folder / _require(raw, "file", str, mwhere)).resolve()
        if file.parent != folder.resolve() or not file.name.endswith(WEIGHT_SUFFIXES):
            raise FamilyError(f"{mwhere}: file must be a {'/'.join(WEIGHT_SUFFIXES)} file "
                              "inside the family folder")
        position = _number(raw.get("position", index), "position", mwhere)
        members.append(Member(label=label, file=file, position=position))
    members.sort(key=lambda m: m.position, reverse=descending)
    if len({m.position for m in members}) != len(members):
        raise FamilyError(f"{where}: two members share one position")
    return members


def _descending(axis: Any, where: str) -> bool:
    value = axis.get("descending", False) if isinstance(axis, dict) else False
    if not isinstance(value, bool):
        raise FamilyError(f"{where}: axis.descending must be true or false")
    return value


def _measures(axis: Any, where: str) -> str | None:
    value = axis.get("measures") if isinstance(axis, dict) else None
    if value is not None and not (isinstance(value, str) and _NAME_RE.match(value)):
        raise FamilyError(f"{where}: axis.measures must be a short lower-case name such as "
                          "\"noise-sigma\"")
    return value


def _presets(raw_presets: Any, where: str) -> list[Preset]:
    if not isinstance(raw_presets, list) or not all(isinstance(p, dict) for p in raw_presets):
        raise FamilyError(f"{where}: presets must be [[presets]] tables")
    presets = []
    for raw in raw_presets:
        name = _require(raw, "name", str, f"{where}: preset")
        pwhere = f"{where}: preset {name!r}"
        weights = raw.get("weights")
        if weights is not None and not isinstance(weights, list):
            raise FamilyError(f"{pwhere}: weights must be a list of numbers")
        presets.append(Preset(
            name=name,
            strength=_number(raw["strength"], "strength", pwhere) if "strength" in raw
            else None,
            weights=tuple(_number(w, "every weight", pwhere) for w in weights)
            if weights is not None else None,
            builtin=True,
        ))
    return presets


def load_manifest(folder: Path) -> Manifest:
    where = str(folder / MANIFEST_NAME)
    data = _read_toml(folder)
    _check_header(data, where)
    axis = data.get("axis", {})
    members = _members(folder, data.get("members"), where, _descending(axis, where))
    return Manifest(
        name=data["name"],
        task=data.get("task", "other"),
        title=str(data.get("title", data["name"])),
        description=str(data.get("description", "")),
        architecture=data["architecture"],
        architecture_options=data.get("architecture_options", {}),
        scale=data.get("scale", 1),
        axis_name=str(axis.get("name", "strength")),
        low_label=str(axis.get("low", members[0].label)),
        high_label=str(axis.get("high", members[-1].label)),
        members=tuple(members),
        presets=tuple(_presets(data.get("presets", []), where)),
        folder=folder,
        tile_pad=data.get("tile_pad", DEFAULT_TILE_PAD),
        axis_measures=_measures(axis, where),
    )


def member_file_problems(manifest: Manifest) -> list[str]:
    """What is visibly wrong with the member files, from their first bytes only (loading
    the weights is what finds the rest): for listings, which must stay fast."""
    problems = []
    for member in manifest.members:
        problem = _file_problem(member.file)
        if problem:
            problems.append(f"member {member.label!r}: {member.file.name} {problem}")
    return problems


def _file_problem(path: Path) -> str | None:
    try:
        with path.open("rb") as handle:
            head = handle.read(9)
            size = path.stat().st_size
    except FileNotFoundError:
        return "is missing"
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"
    if path.suffix == ".safetensors":
        # An 8-byte little-endian header length, then the JSON header.
        length = int.from_bytes(head[:8], "little") if len(head) == 9 else 0
        ok = head[8:9] == b"{" and 0 < length <= size - 8
    else:  # torch.save: a zip archive, or the legacy format's pickle
        ok = head.startswith((b"PK\x03\x04", b"\x80"))
    return None if ok else "is not a weight file (damaged or of another kind)"

