"""The machine as the installer sees it: operating system, CPU, environment variables,
home folder, programs on PATH and what they print. Tests build one over a fake folder
tree (`root`) with their own `which` and `run`."""

from __future__ import annotations

import os
import platform as _platform
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path


def _run_quietly(argv: Sequence[str]) -> str | None:
    """A probe's stdout, or None when it cannot run, fails or hangs."""
    try:
        done = subprocess.run(list(argv), capture_output=True, text=True, timeout=30,
                              stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


@dataclass
class Platform:
    system: str  # "linux", "darwin" or "win32" (sys.platform's spelling)
    machine: str  # "x86_64", "arm64", "AMD64", ...
    home: Path
    env: Mapping[str, str] = field(default_factory=dict)
    root: Path = Path("/")  # where absolute system paths (/usr, /opt, /Applications) live
    # Annotations stay strings (Python 3.9 runs this too).
    which: Callable[[str], str | None] = shutil.which
    run: Callable[[Sequence[str]], str | None] = _run_quietly

    @classmethod
    def current(cls) -> Platform:
        system = "win32" if sys.platform.startswith("win") else sys.platform
        system = "linux" if system.startswith("linux") else system
        return cls(system=system, machine=_platform.machine(), home=Path.home(),
                   env=dict(os.environ))

    @property
    def windows(self) -> bool:
        return self.system == "win32"

    @property
    def macos(self) -> bool:
        return self.system == "darwin"

    @property
    def linux(self) -> bool:
        return not (self.windows or self.macos)

    @property
    def arm(self) -> bool:
        return self.machine.lower() in ("arm64", "aarch64")

    def system_path(self, path: str) -> Path:
        """An absolute system path ('/opt/rocm') inside this platform's root."""
        return self.root.joinpath(*Path(path).parts[1:]) if path.startswith("/") else Path(path)

    def env_path(self, name: str, fallback: Path) -> Path:
        """A folder named by an environment variable, or the fallback when it is unset."""
        value = self.env.get(name)
        return Path(value) if value else fallback
