"""When a preview runs: at once when the slider moves and none is being computed; while
one is, the newest settings wait and go as soon as it is back (changes in between are
merged). So the preview follows a drag as fast as the backend answers, and the backend
never works on settings the artist has already left. A late answer to an old preview is
ignored."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from dni_client.errors import FilterError
from dni_client.session import JobHandle, Session

from . import core
from .qt import QObject, QTimer

if TYPE_CHECKING:
    Shown = Callable[[core.KritaJob, JobHandle], None]


class PreviewScheduler(QObject):
    def __init__(self, parent: QObject, session: Session,
                 make_job: Callable[[], core.KritaJob | None], shown: Shown,
                 status: Callable[[str], None]) -> None:
        super().__init__(parent)
        self.session = session
        self._make_job = make_job
        self._shown = shown
        self._status = status
        self.pending: JobHandle | None = None  # the preview being computed
        self._stale = False  # the settings changed since `pending` was sent
        self._timer = QTimer(self)  # 0 ms: all changes of one event-loop pass, once
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self.run)

    def schedule(self) -> None:
        if self.pending is not None and not self.pending.done:
            self._stale = True
        else:
            self._timer.start(0)

    def run(self) -> None:
        self._stale = False
        if not self.session.connected:
            return
        try:
            job = self._make_job()
            if job is None:
                return
            handle = self.session.submit(job.spec, lambda h: self._event(job, h))
        except FilterError as exc:
            self._status(str(exc))
            return
        old, self.pending = self.pending, handle
        if old is not None and not old.done:
            self.session.cancel(old)  # superseded: the server drops it if still queued
        self._status("Updating the preview…")

    def _event(self, job: core.KritaJob, handle: JobHandle) -> None:
        if not handle.done or handle is not self.pending:
            return  # progress, or an older preview
        if self._stale:
            self.run()  # the artist has moved on: show that instead
            return
        if handle.error is not None:
            if handle.error.code not in ("cancelled", "superseded"):
                self._status(f"Preview failed: {handle.error}")
            return
        self._shown(job, handle)

    def stop(self) -> None:
        self._timer.stop()
        self._stale = False
        if self.pending is not None and not self.pending.done:
            self.session.cancel(self.pending)
