"""Installing or updating the backend from inside an editor, for both hosts.

`decide` says whether to offer an install (no backend found) or an update (the backend
answers with another release than the plugin's); the host shows the offer and, only on
the artist's click, starts an `InstallRun`: the installer (`_installer/install.py`, which
every installed plugin carries) as a child process, given a wheel file or a package index.
The host polls it from its GUI timer for output lines and a progress fraction; everything
also goes to a log file. Pure Python 3.8+; nothing here downloads anything by itself.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from . import launcher
from .settings import BACKEND_RECORD, read_json
from .version import VERSION

INSTALL = "install"
UPDATE = "update"
INSTALLER_DIR = "_installer"  # inside an installed plugin folder
STEP = re.compile(r"\[(\d+)/(\d+)\]")  # install.py's step lines: "[2/5] installing torch"
MIN_PYTHON = (3, 9)  # what install.py itself needs (it finds a newer one for the backend)


@dataclass(frozen=True)
class Offer:
    kind: str  # INSTALL or UPDATE
    message: str  # what the artist reads next to the button
    backend_version: str | None = None


def backend_version(hello: Mapping[str, Any]) -> str | None:
    """The backend's release from a `hello` reply ('server': 'dni X' before `version`)."""
    version = hello.get("version")
    if isinstance(version, str) and version:
        return version
    server = hello.get("server")
    if isinstance(server, str) and server.startswith("dni "):
        return server[len("dni "):]
    return None


def decide(hello: Mapping[str, Any] | None, backend_found: bool,
           plugin_version: str = VERSION) -> Offer | None:
    """INSTALL when there is no backend to start and none answered; UPDATE when the one
    that answered is another release; None when nothing needs doing."""
    if hello is None:
        if backend_found:
            return None  # there is one; it has not answered yet, or failed for other reasons
        return Offer(INSTALL, "The DNI backend is not installed. Install it now? It downloads "
                     "about 1 GB (PyTorch) into your user folder; this can take several "
                     "minutes.")
    version = backend_version(hello)
    if version == plugin_version:
        return None
    return Offer(UPDATE, f"The DNI backend is version {version or 'unknown'} and this plugin "
                 f"is {plugin_version}. Update the backend to {plugin_version}?", version)


def offer_for(session: Any) -> Offer | None:
    """`decide` for a host's Session: its hello when connected, else whether its settings
    name a backend command that exists."""
    hello = session.info if session.connected else None
    found = launcher.find_backend(session.settings.backend_record()) is not None
    return decide(hello, found)


def adopt_new_backend(session: Any, plugin_dir: str) -> None:
    """After a successful run: read the plugin's backend.json again (the installer pointed
    it at the new backend) and reconnect, so the next filter starts that backend."""
    session.settings.installed = read_json(os.path.join(plugin_dir, BACKEND_RECORD))
    session.reset()


def installer_path(plugin_dir: str) -> str | None:
    """The installer an installed plugin carries (None when it has none)."""
    path = os.path.join(plugin_dir, INSTALLER_DIR, "install.py")
    return path if os.path.isfile(path) else None


def find_python(env: Mapping[str, str] | None = None) -> str | None:
    """A Python 3.9+ to run the installer with: an editor's own interpreter is the editor
    itself (sys.executable is krita or gimp), so look on the cleaned PATH."""
    path = (env or launcher.clean_environment()).get("PATH")
    names = [f"python3.{minor}" for minor in (14, 13, 12, 11, 10, 9)] + ["python3", "python"]
    for name in names:
        exe = shutil.which(name, path=path)
        if exe and _version(exe) >= MIN_PYTHON:
            return exe
    launcher_exe = shutil.which("py", path=path)  # Windows' Python launcher
    return launcher_exe if launcher_exe and _version(launcher_exe) >= MIN_PYTHON else None


def _version(python: str) -> tuple[int, int]:
    try:
        out = subprocess.run([python, "-c", "import sys; print(*sys.version_info[:2])"],
                             capture_output=True, text=True, timeout=30,
                             stdin=subprocess.DEVNULL, env=launcher.clean_environment())
        major, minor = out.stdout.split()
        return int(major), int(minor)
    except (OSError, subprocess.SubprocessError, ValueError):
        return (0, 0)


_NO_WINDOW = 0x08000000  # Windows: no console window pops up over the editor


def _own_group() -> dict[str, Any]:
    """Popen options that start the installer in its own process group, so that cancel
    reaches pip too (and Ctrl+C in a terminal editor does not reach the installer)."""
    if os.name == "nt":
        return {"creationflags": _NO_WINDOW | 0x00000200}  # CREATE_NEW_PROCESS_GROUP
    return {"start_new_session": True}


@dataclass
class InstallRequest:
    """What the artist clicked: install from this wheel or this index, for these plugins."""

    installer: str  # install.py
    python: str  # the Python that runs it
    wheel: str | None = None
    index_url: str | None = None
    point: Sequence[str] = ()  # installed plugin folders to point at the new backend
    prefix: str | None = None  # default: the per-user data folder
    extra_args: Sequence[str] = field(default_factory=list)  # --torch cpu, ...

    def argv(self) -> list[str]:
        argv = [self.python, "-u", self.installer, "--no-plugins"]
        if self.wheel:
            argv += ["--wheel", self.wheel]
        if self.index_url:
            argv += ["--index-url", self.index_url]
        if self.prefix:
            argv += ["--prefix", self.prefix]
        for folder in self.point:
            argv += ["--point-plugin", folder]
        return argv + list(self.extra_args)


class InstallRun:
    """The installer running as a child process. `poll()` (from the host's GUI timer)
    returns the output lines that came since the last call; `progress` is the fraction of
    the installer's steps begun; every line also goes to `log_path`."""

    def __init__(self, request: InstallRequest, log_path: str,
                 env: Mapping[str, str] | None = None) -> None:
        self.request = request
        self.log_path = log_path
        self.env = dict(env) if env is not None else launcher.clean_environment()
        self.env["PYTHONUNBUFFERED"] = "1"
        self.progress = 0.0
        self.lines: list[str] = []  # everything, for the dialog's details
        self._new: list[str] = []
        self._lock = threading.Lock()
        self._process: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None

    def start(self) -> None:
        os.makedirs(os.path.dirname(self.log_path) or ".", exist_ok=True)
        try:
            self._process = subprocess.Popen(
                self.request.argv(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, text=True, encoding="utf-8", errors="replace",
                env=self.env, close_fds=True, **_own_group())
        except OSError as exc:
            raise launcher.LaunchError(f"The installer could not start: {exc}.") from None
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        with open(self.log_path, "a", encoding="utf-8") as log:
            log.write("$ " + " ".join(self.request.argv()) + "\n")
            for raw in self._process.stdout:
                line = raw.rstrip("\n")
                log.write(line + "\n")
                log.flush()
                with self._lock:
                    self.lines.append(line)
                    self._new.append(line)
                    step = STEP.search(line)
                    if step:
                        done, total = int(step.group(1)), int(step.group(2))
                        self.progress = max(self.progress, (done - 1) / max(total, 1))

    def poll(self) -> list[str]:
        """New output lines (non-blocking)."""
        with self._lock:
            new, self._new = self._new, []
        if self.finished() and self.returncode == 0:
            self.progress = 1.0
        return new

    def finished(self) -> bool:
        done = self._process is not None and self._process.poll() is not None
        if done and self._reader is not None:
            self._reader.join(timeout=5)  # the last lines are in
        return done

    @property
    def returncode(self) -> int | None:
        return None if self._process is None else self._process.poll()

    def failure(self) -> str | None:
        """Plain words for the artist when it failed (None while running or after success)."""
        if not self.finished() or self.returncode == 0:
            return None
        ours = [line.split("error:", 1)[1].strip() for line in self.lines if "error:" in line]
        causes = [line.strip() for line in self.lines if line.strip().startswith("ERROR:")]
        said = " ".join(x.rstrip(":") + "." for x in (ours[-1:] + causes[-1:]))  # pip's
        return f"The installation failed. {said} The whole log is in {self.log_path}." \
            if said else f"The installation failed; see {self.log_path}."

    def cancel(self) -> None:
        """End the installer and what it started (pip): the whole process group."""
        process = self._process
        if process is None or process.poll() is not None:
            return
        if os.name == "nt":
            subprocess.run(["taskkill", "/T", "/F", "/PID", str(process.pid)],
                           capture_output=True, creationflags=_NO_WINDOW)
        else:
            os.killpg(process.pid, signal.SIGTERM)  # the installer removes what it began
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()

    def wait(self, timeout: float) -> int:
        """Blocking, for scripts and tests."""
        assert self._process is not None
        try:
            code = self._process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.cancel()
            raise
        self.finished()
        return code
