"""The plugin's one connection to the backend: connect, start it if needed, run jobs.

Nothing here blocks for long: `tick()` does one step of connecting (a TCP probe, or a check
on the starting backend) and hands out whatever events have arrived. The Krita side calls
`tick()` from a QTimer on the GUI thread, so callbacks may use the Krita API. Scripts wait
with `wait_connected()` / `wait_job()`, which keep Krita's event loop turning.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from dni_client import launcher

from .settings import Settings

STATE_IDLE = "idle"
STATE_STARTING = "starting"
STATE_CONNECTED = "connected"
STATE_ERROR = "error"

if TYPE_CHECKING:
    Handler = Callable[[str, dict[str, Any], bytes | None], None]  # kind, header, pixels


class BackendError(Exception):
    """The backend cannot be reached or a job failed; the message is for the user."""

    def __init__(self, message: str, code: str = "error") -> None:
        super().__init__(message)
        self.code = code


def _client_class() -> Any:
    from dni_client import Client

    return Client


class Connection:
    def __init__(self, settings: Settings, *, client_class: Any = None,
                 backend_class: Any = None) -> None:
        self.settings = settings
        self.state = STATE_IDLE
        self.message = "Not connected."
        self.info: dict[str, Any] = {}
        self.families: list[dict[str, Any]] = []
        self.client: Any = None
        self.backend: Any = None
        self._client_class = client_class
        self._backend_class = backend_class or launcher.Backend
        self._handlers: dict[str, Handler] = {}
        self.listeners: list[Callable[[], None]] = []  # called on state changes
        self.jobs_running = 0

    # -- state -----------------------------------------------------------------------------

    def _set(self, state: str, message: str) -> None:
        changed = (state, message) != (self.state, self.message)
        self.state, self.message = state, message
        if changed:
            for listener in list(self.listeners):
                try:
                    listener()
                except Exception:
                    pass

    def family(self, name: str) -> dict[str, Any]:
        for fam in self.families:
            if fam.get("name") == name:
                return fam
        known = ", ".join(sorted(f.get("name", "?") for f in self.families)) or "none"
        raise BackendError(f"The backend has no family named '{name}' (installed: {known}).",
                           "bad_family")

    # -- connecting ------------------------------------------------------------------------

    def reset(self) -> None:
        """Forget the client (e.g. after the settings changed)."""
        self._fail_all("The connection was reset.", "connection_lost")
        if self.client is not None:
            try:
                self.client.close()
            except Exception:
                pass
        self.client = None
        self._set(STATE_IDLE, "Not connected.")

    def _open_client(self) -> None:
        s = self.settings
        cls = self._client_class or _client_class()
        # A short timeout for the greeting: whatever holds the port answers at once or is
        # not a DNI backend, and this runs on Krita's GUI thread.
        kwargs: dict[str, Any] = {"timeout": min(3.0, s.timeout)}
        if s.server_public_key:
            kwargs["server_public_key"] = s.server_public_key
            if s.client_keys_dir:
                kwargs["client_keys_dir"] = s.client_keys_dir
        client = cls(s.endpoint, **kwargs)
        try:
            self.info = client.hello()
            self.families = list(client.families())
        except Exception as exc:
            client.close()
            raise BackendError(f"Something answers at {s.endpoint} but it is not a working "
                               f"DNI backend: {exc}") from None
        client.timeout = s.timeout  # jobs: silence means lost after this long
        self.client = client
        self.settings.cache_families(self.families)
        device = self.info.get("device") or ", ".join(map(str, self.info.get("devices") or []))
        self._set(STATE_CONNECTED, f"Connected to {s.endpoint}"
                  + (f" ({device})" if device else "") + f", {len(self.families)} families.")

    def step(self) -> bool:
        """One non-blocking step towards a connection; True when connected."""
        if self.state == STATE_CONNECTED and self.client is not None:
            if self.backend is not None and not self.backend.running():
                self._backend_died()
                return False
            return True
        s = self.settings
        try:
            if launcher.port_open(s.endpoint):
                self._open_client()
                return True
            if self.backend is not None and self.backend.running():
                if self.backend.ready():
                    self._open_client()
                    return True
                return False
            if not s.autostart:
                raise BackendError(f"Nothing answers at {s.endpoint}. Start `dni serve` "
                                   "there, or switch on 'start the backend' in the DNI "
                                   "settings.")
            if not launcher.parse_endpoint(s.endpoint).local:
                raise BackendError(f"Nothing answers at {s.endpoint}. Start `dni serve "
                                   f"--endpoint {s.endpoint}` on that machine, or check the "
                                   "address in the DNI settings.")
            command = launcher.find_backend(s.backend_settings())
            if command is None:
                raise BackendError(
                    "The DNI backend (`dni`) was not found. Install it, then run "
                    "`python installers/install_krita_plugin.py --backend /path/to/dni`, or "
                    "enter the command in the DNI settings.", "no_backend")
            self.backend = self._backend_class(
                command, s.endpoint, family_paths=s.family_paths,
                log_path=os.path.join(s.config_dir, "backend.log"))
            self.backend.start()
            self._set(STATE_STARTING, f"Starting the DNI backend ({command[0]})…")
            return False
        except (BackendError, launcher.LaunchError) as exc:
            self.backend = None if self.backend is None or not self.backend.running() \
                else self.backend
            self._set(STATE_ERROR, str(exc))
            raise BackendError(str(exc)) from None

    def _backend_died(self) -> None:
        code = self.backend.process.returncode if getattr(self.backend, "process", None) \
            else None
        tail = self.backend.log_tail() if hasattr(self.backend, "log_tail") else ""
        self.backend = None
        if self.client is not None:
            self.client.close()
        self.client = None
        lines = [ln for ln in tail.strip().splitlines() if not ln.startswith("listening on")]
        why = f"exit code {code}" if code is not None else "it exited"
        message = f"The DNI backend stopped ({why})."
        if lines:
            message += " Its last words: " + " / ".join(lines[-3:])[-300:]
        self._fail_all(message, "backend_died")
        self._set(STATE_ERROR, message + " It will be started again for the next job.")

    def wait_connected(self, timeout: float = launcher.START_TIMEOUT,
                       pump: Callable[[], None] | None = None) -> None:
        """Block (keeping the editor's events flowing) until connected; BackendError."""
        deadline = time.monotonic() + timeout
        while not self.step():
            if time.monotonic() > deadline:
                raise BackendError(f"The DNI backend did not answer within {timeout:.0f} s.")
            _idle(pump, 0.1)

    # -- jobs ------------------------------------------------------------------------------

    def submit(self, kwargs: dict[str, Any], handler: Handler) -> str:
        if not self.step():
            raise BackendError(self.message)
        try:
            job_id = self.client.submit(**kwargs)
        except Exception as exc:
            raise BackendError(f"Could not send the job: {exc}") from None
        self._handlers[job_id] = handler
        return job_id

    def cancel(self, job_id: str) -> None:
        if self.client is not None and job_id in self._handlers:
            try:
                self.client.cancel(job_id)
            except Exception:
                pass

    def busy(self) -> bool:
        return bool(self._handlers)

    def tick(self) -> None:
        """Connecting steps and event delivery; call every few tens of ms (GUI thread)."""
        if self.state == STATE_STARTING:
            try:
                self.step()
            except BackendError:
                pass
        if self.client is None:
            return
        if self.backend is not None and not self.backend.running():
            self._backend_died()
            return
        try:
            events = self.client.poll(0)
        except Exception as exc:
            self._fail_all(f"Lost the connection to the backend: {exc}", "connection_lost")
            return
        for event in events:
            handler = self._handlers.get(event.job_id)
            if handler is None:
                continue  # a superseded preview we no longer wait for
            if event.kind in ("result", "error"):
                del self._handlers[event.job_id]
            if event.kind == "error" and event.header.get("code") == "connection_lost":
                self._set(STATE_ERROR, "The backend stopped answering.")
                self.state = STATE_IDLE  # try again on the next job
                if self.client is not None:
                    self.client.close()
                self.client = None
            try:
                handler(event.kind, event.header, event.pixels)
            except Exception:
                import traceback

                traceback.print_exc()

    def _fail_all(self, message: str, code: str) -> None:
        handlers, self._handlers = self._handlers, {}
        for job_id, handler in handlers.items():
            try:
                handler("error", {"id": job_id, "code": code, "message": message}, None)
            except Exception:
                pass

    def shutdown(self) -> None:
        """Editor quits: close the socket and stop a backend we started."""
        self._handlers.clear()
        if self.client is not None:
            try:
                self.client.close()
            except Exception:
                pass
            self.client = None
        if self.backend is not None:
            self.backend.stop()
            self.backend = None


def _idle(pump: Callable[[], None] | None, seconds: float) -> None:
    if pump is not None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            pump()
            time.sleep(0.01)
    else:
        time.sleep(seconds)


class Waiter:
    """Collects one job's end for a blocking caller."""

    def __init__(self, on_progress: Callable[[float], Any] | None = None) -> None:
        self.done = False
        self.kind = ""
        self.header: dict[str, Any] = {}
        self.pixels: bytes | None = None
        self.on_progress = on_progress

    def __call__(self, kind: str, header: dict[str, Any], pixels: bytes | None) -> None:
        if kind == "progress":
            if self.on_progress is not None:
                self.on_progress(float(header.get("fraction") or 0.0))
            return
        self.done, self.kind, self.header, self.pixels = True, kind, header, pixels


def wait_job(conn: Connection, waiter: Waiter, job_id: str, timeout: float,
             pump: Callable[[], None] | None = None) -> Waiter:
    deadline = time.monotonic() + timeout
    while not waiter.done:
        conn.tick()
        if waiter.done:
            break
        if time.monotonic() > deadline:
            conn.cancel(job_id)
            raise BackendError(f"The job took longer than {timeout:.0f} s and was cancelled.",
                               "timeout")
        _idle(pump, 0.02)
    return waiter
