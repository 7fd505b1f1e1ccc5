"""The user's presets, per family, in one JSON file; the family's own presets come from
its manifest (`FamilyInfo.presets`) and are read-only.

The host passes the file path (Krita: its resource folder; GIMP: its profile), so that a
preset survives plugin updates and stays with the user's other editor settings. The file
is rewritten atomically: a crash mid-save never loses the presets already there.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from . import mixing
from .errors import MixError
from .mixing import Preset

if TYPE_CHECKING:
    from .families import FamilyInfo

FILE_VERSION = 1
MAX_NAME = 80


class PresetError(MixError):
    """A preset the user cannot save, rename or delete; the message says why."""


def _clean_name(name: str) -> str:
    name = " ".join(str(name).split())
    if not name:
        raise PresetError("A preset needs a name.")
    if len(name) > MAX_NAME:
        raise PresetError(f"Preset names are at most {MAX_NAME} characters.")
    return name


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

    def user_presets(self, family: FamilyInfo) -> list[Preset]:
        out = []
        for raw in self._data.get(family.name, []):
            try:
                strength, weights = mixing.check_amount(raw.get("strength"), raw.get("weights"),
                                                        len(family.members))
            except MixError:
                continue  # e.g. weights saved for a family that has since changed
            out.append(Preset(str(raw["name"]), strength, weights, False))
        return out

    def presets(self, family: FamilyInfo) -> list[Preset]:
        """The family's presets first, then the user's, in the order they were saved."""
        return list(family.presets) + self.user_presets(family)

    def save(self, family: FamilyInfo, name: str, *, strength: float | None = None,
             weights: Sequence[float] | None = None) -> Preset:
        """Save (or overwrite) a user preset."""
        name = _clean_name(name)
        if name in {p.name for p in family.presets}:
            raise PresetError(f"'{name}' is one of the family's presets; pick another name.")
        try:
            s, w = mixing.check_amount(strength, weights, len(family.members))
        except MixError as exc:
            raise PresetError(f"This preset cannot be saved: {exc}.") from None
        preset = Preset(name, s, w, False)
        items = self._data.setdefault(family.name, [])
        for i, raw in enumerate(items):
            if raw.get("name") == name:
                items[i] = preset.to_json()
                break
        else:
            items.append(preset.to_json())
        self._save()
        return preset

    def rename(self, family: FamilyInfo, old: str, new: str) -> None:
        new = _clean_name(new)
        builtin = {p.name for p in family.presets}
        items = self._data.get(family.name, [])
        if old in builtin and not any(i.get("name") == old for i in items):
            raise PresetError(f"'{old}' comes with the family and cannot be renamed.")
        if new != old and (new in builtin or any(i.get("name") == new for i in items)):
            raise PresetError(f"A preset named '{new}' exists already.")
        for raw in items:
            if raw.get("name") == old:
                raw["name"] = new
                self._save()
                return
        raise PresetError(f"There is no preset named '{old}'.")

    def delete(self, family: FamilyInfo, name: str) -> None:
        items = self._data.get(family.name, [])
        kept = [raw for raw in items if raw.get("name") != name]
        if len(kept) == len(items):
            if name in {p.name for p in family.presets}:
                raise PresetError(f"'{name}' comes with the family and cannot be deleted.")
            raise PresetError(f"There is no preset named '{name}'.")
        if kept:
            self._data[family.name] = kept
        else:
            del self._data[family.name]
        self._save()
