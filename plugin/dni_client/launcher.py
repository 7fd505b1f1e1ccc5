"""Find and start the local backend (`dni serve`) for an editor plugin.

An editor's embedded Python is a hostile parent for a torch process: Krita injects its own
PYTHONPATH (and AppImages LD_LIBRARY_PATH), a virtualenv on PATH can leak in, and the
plugin cannot know where the user installed the backend. So the installer records the
backend command in `backend.json` (see settings), the child gets a cleaned environment,
and its lifetime is the editor's or, detached, its own. Start-up failures become a message
that says what to do (messages). Pure Python 3.8+, no pyzmq needed (readiness is a TCP probe).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from . import messages
from .protocol import DEFAULT_ENDPOINT

START_TIMEOUT = 120.0  # first start imports torch and may compile kernels: be patient

# Variables that make a child Python pick up the editor's interpreter or libraries.
_STRIP_VARS = (
    "PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "PYTHONEXECUTABLE", "PYTHONUSERBASE",
    "PYTHONNOUSERSITE", "PYTHONSAFEPATH", "VIRTUAL_ENV", "VIRTUAL_ENV_PROMPT",
    "__PYVENV_LAUNCHER__", "CONDA_PREFIX", "CONDA_DEFAULT_ENV", "LD_LIBRARY_PATH",
    "LD_PRELOAD", "DYLD_LIBRARY_PATH", "DYLD_FRAMEWORK_PATH", "DYLD_INSERT_LIBRARIES",
    "QT_PLUGIN_PATH", "QML2_IMPORT_PATH", "QT_QPA_PLATFORM_PLUGIN_PATH",
)


class LaunchError(Exception):
    """The backend could not be started; the message says why and what to do."""


class Endpoint(NamedTuple):
    scheme: str
    host: str
    port: int

    @property
    def local(self) -> bool:
        return self.scheme == "ipc" or self.host in ("127.0.0.1", "localhost", "::1", "*")


def parse_endpoint(endpoint: str) -> Endpoint:
    """tcp://HOST:PORT or ipc://PATH (port 0)."""
    if endpoint.startswith("ipc://"):
        return Endpoint("ipc", endpoint[len("ipc://"):], 0)
    if not endpoint.startswith("tcp://"):
        raise LaunchError(f"The endpoint {endpoint!r} should look like tcp://127.0.0.1:5557.")
    rest = endpoint[len("tcp://"):]
    host, sep, port = rest.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise LaunchError(f"The endpoint {endpoint!r} needs a port, as in tcp://127.0.0.1:5557.")
    return Endpoint("tcp", host.strip("[]"), int(port))


def port_open(endpoint: str, timeout: float = 0.2) -> bool:
    """Whether something accepts connections at the endpoint (cheap; not a DNI check)."""
    ep = parse_endpoint(endpoint)
    if ep.scheme == "ipc":
        return os.path.exists(ep.host)
    host = "127.0.0.1" if ep.host in ("*", "localhost") else ep.host
    try:
        with socket.create_connection((host, ep.port), timeout=timeout):
            return True
    except OSError:
        return False


def _is_venv_bin(folder: str) -> bool:
    return os.path.isfile(os.path.join(os.path.dirname(folder.rstrip("/\\")), "pyvenv.cfg"))


def clean_environment(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The editor's environment minus what would hijack the backend's Python."""
    env = dict(os.environ if base is None else base)
    appdir = env.get("APPDIR")
    for name in _STRIP_VARS:
        env.pop(name, None)
    parts = []
    for entry in env.get("PATH", "").split(os.pathsep):
        if not entry or _is_venv_bin(entry):
            continue
        if appdir and os.path.abspath(entry).startswith(os.path.abspath(appdir)):
            continue  # an AppImage's private bin folder
        parts.append(entry)
    env["PATH"] = os.pathsep.join(parts) or os.defpath
    return env


def find_backend(settings: Mapping[str, Any], env: Mapping[str, str] | None = None
                 ) -> list[str] | None:
    """The command that runs the backend: the recorded one if it still exists, else `dni`
    on the (cleaned) PATH, else None."""
    command = settings.get("command")
    if isinstance(command, str):
        command = [command]
    if isinstance(command, list) and command and all(isinstance(c, str) for c in command):
        exe = command[0]
        if os.path.isabs(exe) and os.path.isfile(exe):
            return list(command)
        found = shutil.which(exe, path=(env or clean_environment()).get("PATH"))
        if found:
            return [found] + list(command[1:])
    found = shutil.which("dni", path=(env or clean_environment()).get("PATH"))
    return [found] if found else None


def serve_command(command: Sequence[str], endpoint: str,
                  family_paths: Sequence[str] = (), extra: Sequence[str] = ()) -> list[str]:
    argv = list(command) + ["serve", "--endpoint", endpoint]
    for path in family_paths:
        argv += ["--family-path", str(path)]
    return argv + list(extra)


# -- lifetime ----------------------------------------------------------------------------

def _linux_die_with_parent() -> Any:
    """A preexec_fn asking the kernel to SIGTERM the child when the editor dies (even on
    a crash). ctypes is loaded here, in the parent: importing between fork and exec could
    deadlock on a lock another editor thread holds."""
    try:
        import ctypes

        prctl = ctypes.CDLL("libc.so.6", use_errno=True).prctl
    except (ImportError, OSError, AttributeError):
        return None

    def set_death_signal() -> None:
        prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG

    return set_death_signal


def _windows_kill_on_close(pid: int) -> Any:
    """A job object that kills the backend when the editor's handle to it closes."""
    try:
        import ctypes
        from ctypes import wintypes

        kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)  # type: ignore[attr-defined]
        job = kernel32.CreateJobObjectW(None, None)

        class _Limits(ctypes.Structure):
            _fields_ = [("PerProcessUserTimeLimit", ctypes.c_int64),
                        ("PerJobUserTimeLimit", ctypes.c_int64),
                        ("LimitFlags", wintypes.DWORD),
                        ("MinimumWorkingSetSize", ctypes.c_size_t),
                        ("MaximumWorkingSetSize", ctypes.c_size_t),
                        ("ActiveProcessLimit", wintypes.DWORD),
                        ("Affinity", ctypes.c_size_t),
                        ("PriorityClass", wintypes.DWORD),
                        ("SchedulingClass", wintypes.DWORD)]

        class _Counters(ctypes.Structure):
            _fields_ = [(n, ctypes.c_uint64) for n in
                        ("ReadOps", "WriteOps", "OtherOps", "ReadBytes", "WriteBytes",
                         "OtherBytes")]

        class _Extended(ctypes.Structure):
            _fields_ = [("Basic", _Limits), ("Io", _Counters),
                        ("ProcessMemoryLimit", ctypes.c_size_t),
                        ("JobMemoryLimit", ctypes.c_size_t),
                        ("PeakProcessMemoryUsed", ctypes.c_size_t),
                        ("PeakJobMemoryUsed", ctypes.c_size_t)]

        info = _Extended()
        info.Basic.LimitFlags = 0x2000  # JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE
        kernel32.SetInformationJobObject(job, 9, ctypes.byref(info), ctypes.sizeof(info))
        handle = kernel32.OpenProcess(0x1F0FFF, False, pid)
        kernel32.AssignProcessToJobObject(job, handle)
        kernel32.CloseHandle(handle)
        return job
    except (ImportError, OSError, AttributeError, ValueError):
        return None  # best effort: stop() on quit still ends the backend


# -- the backend process -----------------------------------------------------------------

class Backend:
    """One `dni serve` child process started by an editor.

    attached (Krita): it dies with the editor (Linux: the kernel's parent-death signal;
    Windows: a job object; everywhere: `stop()` on quit). detached (GIMP, which starts a
    new plug-in process for every filter call): it outlives the caller, so the next call
    finds the networks loaded, and its pid goes to `pid_path` so it can be stopped.
    """

    def __init__(self, command: Sequence[str], endpoint: str = DEFAULT_ENDPOINT, *,
                 family_paths: Sequence[str] = (), extra_args: Sequence[str] = (),
                 log_path: str | None = None, env: Mapping[str, str] | None = None,
                 detached: bool = False, pid_path: str | None = None) -> None:
        ep = parse_endpoint(endpoint)
        if not ep.local:
            raise LaunchError(f"{endpoint} is another machine: start `dni serve` there; the "
                              "plugin only starts a backend on this computer.")
        self.endpoint = endpoint
        self.argv = serve_command(command, endpoint, family_paths, extra_args)
        self.env = dict(env) if env is not None else clean_environment()
        self.log_path = log_path or os.path.join(tempfile.gettempdir(),
                                                 f"dni-serve-{os.getpid()}.log")
        self.detached = detached
        self.pid_path = pid_path
        self.process: subprocess.Popen | None = None
        self._job: Any = None
        self._started = 0.0

    def _popen_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {}
        if os.name == "nt":
            # CREATE_NO_WINDOW: no console pops up; detached adds DETACHED_PROCESS and
            # CREATE_NEW_PROCESS_GROUP.
            options["creationflags"] = 0x08000000 | (0x00000208 if self.detached else 0)
        else:
            options["start_new_session"] = True  # Ctrl+C in a terminal editor: not the backend
        if sys.platform.startswith("linux") and not self.detached:
            options["preexec_fn"] = _linux_die_with_parent()
        return options

    def start(self) -> None:
        """Start the child (returns at once; poll `ready()`)."""
        if self.process is not None and self.process.poll() is None:
            return
        os.makedirs(os.path.dirname(self.log_path) or ".", exist_ok=True)
        with open(self.log_path, "wb") as log:
            try:
                # close_fds: the child must not hold the editor's pipes open.
                self.process = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL,
                                                stdout=log, stderr=subprocess.STDOUT,
                                                env=self.env, close_fds=True,
                                                **self._popen_options())
            except FileNotFoundError:
                raise LaunchError(f"The DNI backend command {self.argv[0]!r} does not exist. "
                                  "Install the backend, or set its command in the DNI "
                                  "settings.") from None
            except OSError as exc:
                raise LaunchError(f"The DNI backend command cannot be run: {exc}.") from None
        self._started = time.monotonic()
        if os.name == "nt" and not self.detached:
            self._job = _windows_kill_on_close(self.process.pid)
        if self.pid_path:
            self._write_pid()

    def _write_pid(self) -> None:
        assert self.process is not None and self.pid_path is not None
        try:
            with open(self.pid_path, "w", encoding="ascii") as f:
                f.write(f"{self.process.pid}\n")
        except OSError:
            pass  # only a convenience for stopping it by hand

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def returncode(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def log_tail(self, limit: int = 4000) -> str:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - limit))
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def ready(self) -> bool:
        """Non-blocking: True once the endpoint accepts connections; LaunchError if the
        child died or took longer than START_TIMEOUT."""
        if self.process is None:
            raise LaunchError("The backend was not started.")
        code = self.process.poll()
        if code is not None:
            raise LaunchError(messages.start_failed(self.log_tail(), self.endpoint, code))
        if port_open(self.endpoint):
            return True
        if time.monotonic() - self._started > START_TIMEOUT:
            self.stop()
            raise LaunchError(messages.start_timeout(START_TIMEOUT, self.log_path))
        return False

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        """Blocking version of `ready()` for scripts and tests."""
        deadline = time.monotonic() + timeout
        while not self.ready():
            if time.monotonic() > deadline:
                self.stop()
                raise LaunchError(messages.start_timeout(timeout, self.log_path))
            time.sleep(0.1)

    def stop(self, grace: float = 3.0) -> None:
        """Terminate the child (and wait briefly); safe to call twice."""
        proc, self.process = self.process, None
        if proc is None or proc.poll() is not None:
            return
        try:
            proc.terminate()
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            try:
                proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                pass
        except OSError:
            pass
