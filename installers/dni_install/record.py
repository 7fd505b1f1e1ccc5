"""The install record: every file and folder the installer put down (and the kritarc lines
it set), kept next to the backend, so that `--uninstall` removes exactly those and a
re-run (an upgrade) adds to the same list."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class InstallRecord:
    path: Path
    version: str = ""
    paths: list[str] = field(default_factory=list)  # files and folders written
    kritarcs: list[str] = field(default_factory=list)  # kritarc files with our enable line
    details: dict[str, Any] = field(default_factory=dict)  # torch, editors: for the summary

    @classmethod
    def load(cls, path: Path) -> InstallRecord:
        """The record at `path`, or an empty one when there is none (a first install)."""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return cls(path)
        if not isinstance(data, dict):
            return cls(path)
        return cls(path, str(data.get("version", "")),
                   [str(p) for p in data.get("paths", [])],
                   [str(p) for p in data.get("kritarcs", [])],
                   dict(data.get("details", {})))

    def add(self, path: Path) -> None:
        if str(path) not in self.paths:
            self.paths.append(str(path))

    def add_kritarc(self, path: Path) -> None:
        if str(path) not in self.kritarcs:
            self.kritarcs.append(str(path))

    def save(self) -> None:
        """Atomically: a crash mid-write leaves the previous record."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = {"version": self.version, "paths": self.paths, "kritarcs": self.kritarcs,
                "details": self.details}
        fd, tmp = tempfile.mkstemp(prefix=".record-", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(data, f, indent=2)
                f.write("\n")
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def remove_path(path: Path) -> bool:
    """Remove a file, link or folder; True when something was there."""
    if path.is_symlink() or path.is_file():
        path.unlink()
        return True
    if path.is_dir():
        shutil.rmtree(path)
        return True
    return False
