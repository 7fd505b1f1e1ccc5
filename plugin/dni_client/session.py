"""The plugin's one link to the backend: connect (starting `dni serve` when needed), send
jobs, hand their events back, and tell listeners what changed.

Nothing here blocks for long: `step()` does one step of connecting (a TCP probe, or a look
at the starting backend) and `tick()` delivers whatever events arrived. A GUI host calls
`tick()` from a timer on its GUI thread, so callbacks may use the editor's API; scripts
and GIMP (which has no event loop of ours) use the blocking `run()`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import launcher, messages
from .client import Client, ClientError, Event, Result
from .errors import BackendError, FilterError
from .families import FamilyInfo, family_named
from .greeting import Greeting
from .job import JobSpec
from .settings import BackendSettings

log = logging.getLogger("dni_client")

STATE_IDLE = "idle"
STATE_CONNECTING = "connecting"  # the endpoint is being probed (off the GUI thread)
STATE_STARTING = "starting"
STATE_CONNECTED = "connected"
STATE_ERROR = "error"
GREET_EVERY_S = 0.2  # while a backend starts, probe its port this often

if TYPE_CHECKING:  # collections.abc.Callable[...] fails at run time on Python 3.8
    ClientFactory = Callable[..., Client]
    Pump = Callable[[], None]


class Signal:
    """Callbacks told of a change. One that fails is logged and never stops the others
    (a broken docker must not break the dialog)."""

    def __init__(self) -> None:
        self._slots: list[Callable[..., None]] = []

    def connect(self, slot: Callable[..., None]) -> None:
        if slot not in self._slots:
            self._slots.append(slot)

    def disconnect(self, slot: Callable[..., None]) -> None:
        if slot in self._slots:
            self._slots.remove(slot)

    def emit(self, *args: Any) -> None:
        for slot in list(self._slots):
            try:
                slot(*args)
            except Exception:  # noqa: BLE001 - a listener's bug: log it, tell the others
                log.exception("DNI: a listener failed")


class JobHandle:
    """A job in flight: its progress, then exactly one of `result` and `error`."""

    def __init__(self, spec: JobSpec, on_event: Callable[[JobHandle], None] | None) -> None:
        self.spec = spec
        self.id = ""
        self.fraction = 0.0
        self.stage = ""
        self.done = False
        self.result: Result | None = None
        self.error: FilterError | None = None
        self._on_event = on_event

    def _deliver(self, event: Event) -> None:
        if event.kind == "progress":
            self.fraction, self.stage = event.fraction, event.stage
        else:
            self.done = True
            if event.kind == "result":
                self.result = Result.from_event(event)
            else:
                self.error = BackendError(messages.job_failed(event.code, event.message),
                                          event.code)
        if self._on_event is not None:
            self._on_event(self)

    def _fail(self, code: str, detail: str) -> None:
        self._deliver(Event("error", self.id, {"code": code, "message": detail}))


def _zmq_client(endpoint: str, **options: Any) -> Client:
    from .zmq_client import ZmqClient  # pyzmq: only once a connection is wanted

    return ZmqClient(endpoint, **options)


class Session:
    def __init__(self, settings: BackendSettings, *, installer: str,
                 client_factory: ClientFactory | None = None,
                 backend_factory: Callable[..., Any] = launcher.Backend,
                 detached_backend: bool = False) -> None:
        self.settings = settings
        self.installer = installer  # named in messages: "run installers/<this> ..."
        self.state = STATE_IDLE
        self.message = "Not connected."
        self.info: dict[str, Any] = {}
        self._restart = False  # our backend died: start it again at the next tick
        self.families: list[FamilyInfo] = []
        self.client: Client | None = None
        self.backend: Any = None
        self.current: JobHandle | None = None  # the full-size job in flight, if any
        self.state_changed = Signal()  # ()
        self.job_changed = Signal()  # (JobHandle): progress and end of full-size jobs
        self._client_factory = client_factory or _zmq_client
        self._backend_factory = backend_factory
        self._detached = detached_backend
        self._jobs: dict[str, JobHandle] = {}
        self._installs: dict[str, Callable[[Event], None]] = {}  # install id -> listener
        self._waiting: list[JobHandle] = []  # full-size jobs sent once connected
        self._greeting: Greeting | None = None  # a probe of the endpoint in flight
        self._last_greeting = -GREET_EVERY_S

    # -- state -----------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self.state == STATE_CONNECTED and self.client is not None

    def _set(self, state: str, message: str) -> None:
        changed = (state, message) != (self.state, self.message)
        self.state, self.message = state, message
        if changed:
            self.state_changed.emit()

    def family(self, name: str) -> FamilyInfo:
        return family_named(self.families, name)

    # -- connecting ------------------------------------------------------------------------

    def reset(self) -> None:
        """Forget the connection (the settings changed): pending jobs end as lost, and a
        backend we started for another endpoint is stopped, so that the next step starts
        or reaches one at the endpoint the settings name now."""
        self._fail_all("connection_lost", "the connection was reset")
        self._fail_waiting(BackendError(messages.job_failed("connection_lost")))
        self._close_client()
        self._greeting = None
        if self.backend is not None and self.backend.endpoint != self.settings.endpoint:
            if not self._detached:
                self.backend.stop()
            self.backend = None
        self._set(STATE_IDLE, "Not connected.")

    def _close_client(self) -> None:
        if self.client is not None:
            self.client.close()
        self.client = None

    def _adopt(self, greeting: Greeting) -> None:
        """The connection a greeting made becomes the session's."""
        self.client = greeting.client
        self.info = greeting.info
        self.families = [FamilyInfo.from_dict(f) for f in greeting.families]
        self._set(STATE_CONNECTED, messages.ready(len(self.families), self.device))

    @property
    def device(self) -> str:
        """Where the backend computes ("cpu", "cuda:0", …), once connected."""
        info = self.info or {}
        return str(info.get("device") or ", ".join(map(str, info.get("devices") or [])))

    @property
    def details(self) -> str:
        """The technical side, for an Advanced section: endpoint and device."""
        return f"Backend at {self.settings.endpoint}" + (
            f" ({self.device})" if self.device else "")

    def step(self) -> bool:
        """One non-blocking step towards a connection; True when connected. BackendError
        (and the error state) when it cannot work."""
        if self.connected:
            if self.backend is not None and not self._detached and not self.backend.running():
                self._backend_died()
                return False
            return True
        try:
            return self._connect_step()
        except (BackendError, launcher.LaunchError) as exc:
            if self.backend is not None and not self.backend.running():
                self.backend = None
            error = BackendError(str(exc), getattr(exc, "code", None) or "no_backend")
            self._fail_waiting(error)
            self._set(STATE_ERROR, str(exc))
            raise error from None

    def _connect_step(self) -> bool:
        """Greet the endpoint on a thread; act on the answer at a later step."""
        greeting = self._greeting
        if greeting is None or greeting.endpoint != self.settings.endpoint:
            if time.monotonic() - self._last_greeting >= GREET_EVERY_S:
                self._last_greeting = time.monotonic()
                self._greeting = Greeting(self.settings, self._client_factory)
                if self.state != STATE_STARTING:
                    self._set(STATE_CONNECTING, "Connecting to the DNI backend…")
            return False
        if not greeting.done:
            return False
        self._greeting = None
        if greeting.error is not None:
            raise greeting.error
        if greeting.client is not None:
            self._adopt(greeting)
            return True
        return self._nothing_listens()

    def _nothing_listens(self) -> bool:
        s = self.settings
        if self.backend is not None:
            self.backend.ready()  # raises LaunchError if ours died or never came up
            return False  # still starting: greet again at a later step
        local = launcher.parse_endpoint(s.endpoint).local
        if not s.autostart or not local:
            raise BackendError(messages.nothing_answers(s.endpoint, local))
        command = launcher.find_backend(s.backend_record())
        if command is None:
            raise BackendError(messages.backend_not_found(self.installer), "no_backend")
        self.backend = self._backend_factory(
            command, s.endpoint, family_paths=s.family_paths, log_path=s.log_path,
            detached=self._detached)
        self.backend.start()
        self._set(STATE_STARTING, "Starting the DNI backend…")
        return False

    def _backend_died(self) -> None:
        text = messages.backend_stopped(self.backend.returncode(), self.backend.log_tail())
        self.backend = None
        self._close_client()
        self._fail_all("backend_died", text)
        self._set(STATE_ERROR, text + " It is being started again.")
        # Start it again at the next tick, not at the next job: the artist may open a
        # dialog now, and it needs the families (listeners see the error first).
        self._restart = True

    def wait_connected(self, timeout: float = launcher.START_TIMEOUT,
                       pump: Pump | None = None) -> None:
        """Block (keeping the editor's events flowing) until connected; BackendError."""
        deadline = time.monotonic() + timeout
        while not self.step():
            if time.monotonic() > deadline:
                raise BackendError(messages.start_timeout(timeout, self.settings.log_path))
            _idle(pump, 0.1)

    # -- jobs ------------------------------------------------------------------------------

    def submit(self, spec: JobSpec, on_event: Callable[[JobHandle], None] | None = None
               ) -> JobHandle:
        """Send a job; its events go to on_event. While the backend is (re)starting a
        full-size job waits and goes out once connected (the artist pressed Apply: that
        should happen, not a warning); a preview is only worth sending now. BackendError
        when the backend cannot be reached."""
        handle = JobHandle(spec, on_event)
        if self.step() and self.client is not None:
            self._send(handle)
        elif spec.preview:
            raise BackendError(self.message)
        else:
            self._waiting.append(handle)
        if not spec.preview:
            self.current = handle
            self.job_changed.emit(handle)
        return handle

    def _send(self, handle: JobHandle) -> None:
        assert self.client is not None
        try:
            handle.id = self.client.submit(**handle.spec.request())
        except ClientError as exc:
            raise BackendError(f"Could not send the job: {exc}") from None
        self._jobs[handle.id] = handle

    def _send_waiting(self) -> None:
        waiting, self._waiting = self._waiting, []
        for handle in waiting:
            try:
                self._send(handle)
            except BackendError as exc:
                self._end(handle, exc)

    def _fail_waiting(self, error: FilterError) -> None:
        waiting, self._waiting = self._waiting, []
        for handle in waiting:
            self._end(handle, error)

    def _end(self, handle: JobHandle, error: FilterError) -> None:
        """A job that never reached the backend ends with this error."""
        handle.done, handle.error = True, error
        if self.current is handle:
            self.current = None
        if handle._on_event is not None:
            handle._on_event(handle)
        if not handle.spec.preview:
            self.job_changed.emit(handle)

    def cancel(self, handle: JobHandle) -> None:
        if handle in self._waiting:
            self._waiting.remove(handle)
            self._end(handle, BackendError(messages.job_failed("cancelled"), "cancelled"))
        elif self.client is not None and handle.id in self._jobs:
            self.client.cancel(handle.id)

    def tick(self) -> None:
        """Connecting steps and event delivery; call every few tens of ms (GUI thread)."""
        if self.state in (STATE_CONNECTING, STATE_STARTING) or self._waiting or self._restart:
            try:
                self.step()
            except BackendError:
                self._restart = False  # starting it failed: the message says why
            if self.state != STATE_ERROR:
                self._restart = False  # on its way
        if self._waiting and self.connected:
            self._send_waiting()
        if self.client is None:
            return
        if self.backend is not None and not self._detached and not self.backend.running():
            self._backend_died()
            return
        try:
            events = self.client.poll(0)
        except ClientError as exc:
            self._fail_all("connection_lost", str(exc))
            return
        for event in events:
            self._dispatch(event)

    def _dispatch(self, event: Event) -> None:
        if event.job_id in self._installs:
            self._install_event(event)
            return
        handle = self._jobs.get(event.job_id)
        if handle is None:
            return  # a superseded preview nobody waits for
        if event.kind != "progress":
            del self._jobs[event.job_id]
        self._deliver(handle, event)
        if event.kind == "error" and event.code == "connection_lost":
            # The client gave this job up (the server went silent or was restarted): the
            # other jobs went with that server too. Start afresh at the next step.
            self._fail_all("connection_lost", event.message)
            self._close_client()
            self._set(STATE_IDLE, "The backend stopped answering.")

    def _deliver(self, handle: JobHandle, event: Event) -> None:
        try:
            handle._deliver(event)
        finally:
            if not handle.spec.preview:
                if handle.done and self.current is handle:
                    self.current = None
                self.job_changed.emit(handle)

    # -- getting families (the catalogue) ---------------------------------------------------

    def catalogue(self) -> list[dict[str, Any]]:
        """The families the backend can download; BackendError if it cannot say."""
        if not self.step() or self.client is None:
            raise BackendError(self.message)
        try:
            return self.client.catalogue()
        except ClientError as exc:
            raise BackendError(f"Could not read the catalogue: {exc}") from None

    def install(self, family: str, on_event: Callable[[Event], None]) -> str:
        """Start installing a catalogue family; its events (progress, then "installed" or
        "error") go to on_event from tick(). The family list is refreshed once installed."""
        if not self.step() or self.client is None:
            raise BackendError(self.message)
        try:
            install_id = self.client.install(family)
        except ClientError as exc:
            raise BackendError(f"Could not start the download: {exc}") from None
        self._installs[install_id] = on_event
        return install_id

    def cancel_install(self, install_id: str) -> None:
        if self.client is not None and install_id in self._installs:
            self.client.cancel(install_id)

    def _install_event(self, event: Event) -> None:
        listener = self._installs[event.job_id]
        if event.kind != "progress":
            del self._installs[event.job_id]
        if event.kind == "installed" and self.client is not None:
            try:
                self.families = [FamilyInfo.from_dict(f) for f in self.client.families()]
            except ClientError as exc:
                log.warning("DNI: could not refresh the family list: %s", exc)
            self.state_changed.emit()
        listener(event)

    def _fail_all(self, code: str, detail: str) -> None:
        installs, self._installs = self._installs, {}
        for install_id, listener in installs.items():
            listener(Event("error", install_id, {"code": code, "message": detail}))
        handles, self._jobs = self._jobs, {}
        for handle in handles.values():
            self._deliver(handle, Event("error", handle.id, {"code": code, "message": detail}))

    def run(self, spec: JobSpec, *, timeout: float = 600.0, pump: Pump | None = None,
            on_progress: Callable[[float, str], Any] | None = None) -> Result:
        """Run a job and wait for it (scripts, GIMP); BackendError if it fails.
        on_progress(fraction, stage) returning True cancels the job."""
        self.wait_connected(pump=pump)
        cancelled = False

        def progress(handle: JobHandle) -> None:
            nonlocal cancelled
            if (not handle.done and on_progress is not None and not cancelled
                    and on_progress(handle.fraction, handle.stage)):
                cancelled = True
                self.cancel(handle)

        handle = self.submit(spec, progress)
        deadline = time.monotonic() + timeout
        while not handle.done:
            self.tick()
            if handle.done:
                break
            if time.monotonic() > deadline:
                self.cancel(handle)
                raise BackendError(messages.job_failed("timeout"), "timeout")
            _idle(pump, 0.02)
        if handle.error is not None:
            raise handle.error
        assert handle.result is not None
        return handle.result

    def shutdown(self) -> None:
        """The editor quits: close the socket and stop a backend started with it."""
        self._jobs.clear()
        self._waiting.clear()
        self._close_client()
        if self.backend is not None and not self._detached:
            self.backend.stop()
        self.backend = None


def _idle(pump: Pump | None, seconds: float) -> None:
    if pump is None:
        time.sleep(seconds)
        return
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pump()
        time.sleep(0.01)
