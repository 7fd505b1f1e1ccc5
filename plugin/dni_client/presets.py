"""Presets: the family's own (from its manifest, read-only) plus the user's (saved as JSON).

The host passes the file path (Krita: its resource folder; GIMP: its profile), so that a
preset survives plugin updates and stays with the user's other editor settings. The file
is rewritten atomically: a crash mid-save never loses the presets already there.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Sequence
from typing import Any, NamedTuple

FILE_VERSION = 1
MAX_NAME = 80
_TOLERANCE = 1e-4


class PresetError(Exception):
    """A preset the user cannot save, rename or delete; the message says why."""


class Preset(NamedTuple):
    name: str
    strength: float | None = None
    weights: tuple[float, ...] | None = None
    builtin: bool = False  # from the family's manifest: cannot be renamed or deleted

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name}
        if self.strength is not None:
            out["strength"] = self.strength
        if self.weights is not None:
            out["weights"] = list(self.weights)
        return out


def _clean_name(name: str) -> str:
    name = " ".join(str(name).split())
    if not name:
        raise PresetError("A preset needs a name.")
    if len(name) > MAX_NAME:
        raise PresetError(f"Preset names are at most {MAX_NAME} characters.")
    return name


def validate(strength: float | None, weights: Sequence[float] | None,
             members: int | None = None) -> tuple[float | None, tuple[float, ...] | None]:
    """(strength, weights) checked the way the engine will check them."""
    if (strength is None) == (weights is None):
        raise PresetError("A preset holds either a strength or weights.")
    if strength is not None:
        s = float(strength)
        if not math.isfinite(s) or not 0.0 <= s <= 1.0:
            raise PresetError(f"Strength must be between 0 and 1, not {strength}.")
        return s, None
    assert weights is not None
    w = tuple(float(v) for v in weights)
    if members is not None and len(w) != members:
        raise PresetError(f"This family has {members} members; the preset has {len(w)} "
                          "weights.")
    if any(not math.isfinite(v) or v < 0 for v in w):
        raise PresetError("Weights must be numbers of at least 0.")
    if abs(math.fsum(w) - 1.0) > _TOLERANCE:
        raise PresetError(f"Weights must sum to 1 (they sum to {math.fsum(w):g}).")
    return None, w


def family_presets(family: dict[str, Any]) -> list[Preset]:
    """The presets a family's manifest ships (as `Client.families()` reports them)."""
    out = []
    for raw in family.get("presets") or []:
        try:
            weights = raw.get("weights")
            strength, w = validate(raw.get("strength"), weights,
                                   len(family.get("members") or []) or None)
            out.append(Preset(str(raw["name"]), strength, w, True))
        except (PresetError, KeyError, TypeError, ValueError):
            continue  # a broken manifest preset is the backend's problem, not a crash here
    return out


class PresetStore:
    """The user's presets, per family, in one JSON file."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self._data: dict[str, list[dict[str, Any]]] = {}
        self.problem: str | None = None  # why the file could not be read, if it couldn't
        self._load()

    def _load(self) -> None:
        try:
            with open(self.path, encoding="utf-8") as f:
                raw = json.load(f)
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            # Keep the unreadable file (renamed) instead of overwriting it on the next save.
            self.problem = f"could not read {self.path}: {exc}"
            try:
                os.replace(self.path, self.path + ".broken")
            except OSError:
                pass
            return
        families = raw.get("families") if isinstance(raw, dict) else None
        if not isinstance(families, dict):
            return
        for family, items in families.items():
            if isinstance(family, str) and isinstance(items, list):
                self._data[family] = [i for i in items if isinstance(i, dict) and "name" in i]

    def _save(self) -> None:
        folder = os.path.dirname(self.path) or "."
        os.makedirs(folder, exist_ok=True)
        payload = {"version": FILE_VERSION, "families": self._data}
        fd, tmp = tempfile.mkstemp(prefix=".presets-", suffix=".json", dir=folder)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(payload, f, indent=2, sort_keys=True)
                f.write("\n")
            os.replace(tmp, self.path)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise

    def user_presets(self, family_name: str, members: int | None = None) -> list[Preset]:
        out = []
        for raw in self._data.get(family_name, []):
            try:
                strength, weights = validate(raw.get("strength"), raw.get("weights"), members)
            except (PresetError, TypeError, ValueError):
                continue  # e.g. weights saved for a family that has since changed
            out.append(Preset(str(raw["name"]), strength, weights, False))
        return out

    def presets(self, family: dict[str, Any]) -> list[Preset]:
        """The family's presets first, then the user's, in the order they were saved."""
        members = len(family.get("members") or []) or None
        return family_presets(family) + self.user_presets(str(family["name"]), members)

    def _builtin_names(self, family: dict[str, Any] | None) -> set:
        return {p.name for p in family_presets(family)} if family else set()

    def save(self, family_name: str, name: str, *, strength: float | None = None,
             weights: Sequence[float] | None = None, members: int | None = None,
             family: dict[str, Any] | None = None) -> Preset:
        """Save (or overwrite) a user preset."""
        name = _clean_name(name)
        if name in self._builtin_names(family):
            raise PresetError(f"'{name}' is one of the family's presets; pick another name.")
        s, w = validate(strength, weights, members)
        preset = Preset(name, s, w, False)
        items = self._data.setdefault(family_name, [])
        for i, raw in enumerate(items):
            if raw.get("name") == name:
                items[i] = preset.to_json()
                break
        else:
            items.append(preset.to_json())
        self._save()
        return preset

    def rename(self, family_name: str, old: str, new: str, *,
               family: dict[str, Any] | None = None) -> None:
        new = _clean_name(new)
        items = self._data.get(family_name, [])
        if old in self._builtin_names(family) and not any(i["name"] == old for i in items):
            raise PresetError(f"'{old}' comes with the family and cannot be renamed.")
        if new != old and (new in self._builtin_names(family)
                           or any(i.get("name") == new for i in items)):
            raise PresetError(f"A preset named '{new}' exists already.")
        for raw in items:
            if raw.get("name") == old:
                raw["name"] = new
                self._save()
                return
        raise PresetError(f"There is no preset named '{old}'.")

    def delete(self, family_name: str, name: str, *,
               family: dict[str, Any] | None = None) -> None:
        items = self._data.get(family_name, [])
        kept = [raw for raw in items if raw.get("name") != name]
        if len(kept) == len(items):
            if name in self._builtin_names(family):
                raise PresetError(f"'{name}' comes with the family and cannot be deleted.")
            raise PresetError(f"There is no preset named '{name}'.")
        if kept:
            self._data[family_name] = kept
        else:
            del self._data[family_name]
        self._save()
