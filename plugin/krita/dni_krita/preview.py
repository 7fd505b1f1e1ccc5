"""When a preview runs: at once when the slider moves and none is being computed; while
one is, the newest settings wait and go as soon as it is back (changes in between are
merged). So the preview follows a drag as fast as the backend answers, and the backend
never works on settings the artist has already left. A late answer to an old preview is
ignored.

While nothing else is asked for, previews of the same area at other strengths are
rendered ahead (`ahead_job`), so that a later drag can be shown at once from them
(dni_client.preview_cache); a slider move drops such a job in favour of the real one."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from dni_client.errors import FilterError
from dni_client.session import JobHandle, Session

from . import core
from .qt import QObject, QTimer

if TYPE_CHECKING:
    Shown = Callable[[core.KritaJob, JobHandle], None]
    MakeJob = Callable[[], "core.KritaJob | None"]


class PreviewScheduler(QObject):
    def __init__(self, parent: QObject, session: Session, make_job: MakeJob, shown: Shown,
                 status: Callable[[str], None], ahead_job: MakeJob | None = None,
                 ahead_done: Shown | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self._make_job = make_job
        self._shown = shown
        self._status = status
        self._ahead_job, self._ahead_done = ahead_job, ahead_done
        self.pending: JobHandle | None = None  # the preview being computed
        self._ahead = False  # `pending` is rendered ahead, not asked for
        self._stale = False  # the settings changed since `pending` was sent
        self._timer = QTimer(self)  # 0 ms: all changes of one event-loop pass, once
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self.run)

    def _busy(self) -> bool:
        return self.pending is not None and not self.pending.done

    def schedule(self, needed: bool = True) -> None:
        """The settings changed. `needed`: False when the editor already shows their
        exact picture (from the cache); then only the rendering ahead goes on."""
        if self._busy() and self._ahead:
            self._drop_pending()
        if not needed:
            if self._busy():
                self._drop_pending()  # its answer is for settings already left
            self._stale = False
            self._timer.stop()
            self._next_ahead()
        elif self._busy():
            self._stale = True
        else:
            self._timer.start(0)

    def _drop_pending(self) -> None:
        assert self.pending is not None
        self.session.cancel(self.pending)  # the server drops it if still queued
        self.pending, self._ahead = None, False

    def run(self) -> None:
        self._stale = False
        if not self.session.connected:
            return
        try:
            handle = self._send(self._make_job)
        except FilterError as exc:
            self._status(str(exc))
            return
        if handle is None:
            return
        old, self.pending, self._ahead = self.pending, handle, False
        if old is not None and not old.done:
            self.session.cancel(old)  # superseded: the server drops it if still queued
        self._status("Updating the preview…")

    def _next_ahead(self) -> None:
        if self._ahead_job is None or self._busy() or not self.session.connected:
            return
        try:
            handle = self._send(self._ahead_job)
        except FilterError:
            return  # only a head start: the real preview reports problems
        if handle is not None:
            self.pending, self._ahead = handle, True

    def _send(self, make_job: MakeJob) -> JobHandle | None:
        """Make a job and submit it, its events to `_event`; None when there is nothing
        to preview. FilterError when it cannot be made or sent."""
        job = make_job()
        if job is None:
            return None
        return self.session.submit(job.spec, lambda h: self._event(job, h))

    def _event(self, job: core.KritaJob, handle: JobHandle) -> None:
        if not handle.done or handle is not self.pending:
            return  # progress, or an older preview
        if self._ahead:
            self._ahead = False
            if handle.error is None:
                if self._ahead_done is not None:
                    self._ahead_done(job, handle)
                self._next_ahead()  # after a failure, not again: it would fail the same way
            return
        if self._stale:
            self.run()  # the artist has moved on: show that instead
            return
        if handle.error is not None:
            if handle.error.code not in ("cancelled", "superseded"):
                self._status(f"Preview failed: {handle.error}")
            return
        self._shown(job, handle)
        self._next_ahead()

    def stop(self) -> None:
        self._timer.stop()
        self._stale = False
        if self._busy():
            self._drop_pending()
