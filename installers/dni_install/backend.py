"""The backend's virtualenv: create it (or keep the one there, for an upgrade in place),
install the chosen torch, then the `dni` package from a wheel, a checkout or an index, and
read back what ended up there. The pip command lines are built by pure functions, so the
plan can print them (--dry-run) and tests can read them."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from . import locations
from .platform import Platform
from .torch_choice import PACKAGES, TorchChoice

PACKAGE = "dni"
Say = Callable[[str], None]


class InstallError(Exception):
    """A step failed; the message says which and why, in plain words."""


class Cancelled(InstallError):
    """The installer was asked to stop (SIGTERM: the editor's Cancel)."""


@dataclass
class Sources:
    """Where the backend comes from: a wheel file, a checkout, or the package index."""

    wheel: Path | None = None
    checkout: Path | None = None
    index_url: str | None = None  # pip --index-url (a local or private index)
    extra_index_urls: list[str] = field(default_factory=list)
    find_links: list[str] = field(default_factory=list)
    torch_index_url: str | None = None  # beats the torch choice's index (Installer.torch)
    develop: bool = False  # the checkout, editable, with its test tools (setup.sh)

    def requirement(self) -> list[str]:
        if self.wheel is not None:
            return [str(self.wheel)]
        if self.checkout is not None and self.develop:
            return ["--editable", f"{self.checkout}[test]"]
        if self.checkout is not None:
            return [str(self.checkout)]
        return [PACKAGE]

    def describe(self) -> str:
        if self.wheel is not None:
            return f"the wheel {self.wheel}"
        if self.checkout is not None:
            return f"the checkout {self.checkout}" + (" (editable, with the test tools)"
                                                     if self.develop else "")
        return f"the package `{PACKAGE}` from {self.index_url or 'PyPI'}"

    def index_args(self) -> list[str]:
        return (["--index-url", self.index_url] if self.index_url else []) + self.more_args()

    def more_args(self) -> list[str]:
        """The extra indexes and wheel folders (everything but the main index)."""
        args: list[str] = []
        for url in self.extra_index_urls:
            args += ["--extra-index-url", url]
        for link in self.find_links:
            args += ["--find-links", link]
        return args


def pip(python: Path) -> list[str]:
    return [str(python), "-m", "pip", "--disable-pip-version-check"]


def venv_command(python: str, venv: Path) -> list[str]:
    return [python, "-m", "venv", str(venv)]


def torch_command(python: Path, choice: TorchChoice, sources: Sources) -> list[str] | None:
    """pip install torch torchvision from the choice's index (None: --torch skip)."""
    if choice.variant == "skip":
        return None
    argv = pip(python) + ["install", *PACKAGES]
    index = choice.index_url
    if index:
        # The torch index mirrors torch's own dependencies; the rest of the sources stay
        # reachable for them too.
        argv += ["--index-url", index]
        if sources.index_url:
            argv += ["--extra-index-url", sources.index_url]
        argv += sources.more_args()
    else:
        argv += sources.index_args()
    return argv


def package_command(python: Path, sources: Sources) -> list[str]:
    """pip install --upgrade the backend; the torch just installed satisfies its needs
    (pip's default upgrade strategy leaves satisfied dependencies alone)."""
    return pip(python) + ["install", "--upgrade", *sources.requirement()] + sources.index_args()


def run_step(argv: Sequence[str], say: Say, what: str) -> None:
    """Run one command, passing its output on line by line (the editors' progress reads
    it); InstallError with its last lines when it fails."""
    say(f"{what}: {' '.join(argv)}")
    try:
        proc = subprocess.Popen(list(argv), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, text=True, bufsize=1)
    except OSError as exc:
        raise InstallError(f"{what} could not start: {exc}") from None
    tail: list[str] = []
    assert proc.stdout is not None
    try:
        for line in proc.stdout:
            line = line.rstrip()
            if line:
                print(f"    {line}", flush=True)
                tail = (tail + [line])[-15:]
    except BaseException:
        proc.terminate()  # cancelled: pip stops too
        proc.wait()
        raise
    if proc.wait() != 0:
        raise InstallError(f"{what} failed (exit {proc.returncode}):\n" + "\n".join(tail))


def venv_works(venv: Path, p: Platform) -> bool:
    python = locations.venv_python(venv, p)
    return python.is_file() and p.run([str(python), "-c", "import sys"]) is not None


def venv_state(venv: Path, p: Platform) -> str:
    """'missing', 'working', 'broken' (a virtualenv whose Python no longer runs: made
    again) or 'foreign' (a folder with other things in it: never touched)."""
    if not venv.exists() or (venv.is_dir() and not any(venv.iterdir())):
        return "missing"
    if venv_works(venv, p):
        return "working"
    return "broken" if (venv / "pyvenv.cfg").is_file() else "foreign"


def installed_versions(venv: Path, p: Platform) -> str:
    """'dni 0.1.0, torch 2.13.0+cpu (cuda: no)' read from the venv itself."""
    code = ("import dni, torch; print('dni %s, torch %s (cuda: %s, mps: %s)' % (dni.__version__,"
            " torch.__version__, 'yes' if torch.cuda.is_available() else 'no', 'yes' if "
            "getattr(torch.backends, 'mps', None) and torch.backends.mps.is_available() "
            "else 'no'))")
    out = p.run([str(locations.venv_python(venv, p)), "-c", code])
    if out is None:
        raise InstallError(f"the backend in {venv} does not import (dni, torch): see the pip "
                           "messages above")
    return out.strip()


MIN_PYTHON = (3, 11)  # the backend's requires-python


def base_python(p: Platform, current: str = sys.executable,
                current_version: tuple[int, int] = (sys.version_info[0], sys.version_info[1])
                ) -> str:
    """The Python the backend's virtualenv is made from: this one when new enough, else a
    newer one on PATH (python3.13, ..., or Windows' `py` launcher's)."""
    if current_version >= MIN_PYTHON:
        return current
    for minor in (14, 13, 12, 11):
        exe = p.which(f"python3.{minor}")
        if exe:
            return exe
    launcher = p.which("py") if p.windows else None
    for minor in (14, 13, 12, 11) if launcher else ():
        out = p.run([launcher, f"-3.{minor}", "-c", "import sys; print(sys.executable)"])
        if out and out.strip():
            return out.strip()
    have = ".".join(map(str, current_version))
    raise InstallError(f"DNI's backend needs Python {MIN_PYTHON[0]}.{MIN_PYTHON[1]} or newer "
                       f"and only Python {have} was found. Install a newer Python (python.org),"
                       " then run this installer with it.")
