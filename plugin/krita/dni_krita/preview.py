"""When the dialog's preview runs: debounced after slider moves, one preview in flight, a
newer one cancelling the older, and a late answer to an old preview ignored."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from dni_client.errors import FilterError
from dni_client.session import JobHandle, Session

from . import core
from .qt import QObject, QTimer

if TYPE_CHECKING:
    Shown = Callable[[core.KritaJob, JobHandle], None]

DEBOUNCE_MS = 250  # after the last change
MAX_WAIT_MS = 1000  # at most, while the slider keeps moving


class PreviewScheduler(QObject):
    def __init__(self, parent: QObject, session: Session,
                 make_job: Callable[[], core.KritaJob | None], shown: Shown,
                 status: Callable[[str], None]) -> None:
        super().__init__(parent)
        self.session = session
        self._make_job = make_job
        self._shown = shown
        self._status = status
        self.pending: JobHandle | None = None  # the newest preview sent
        self._first_change = 0.0
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self.run)

    def schedule(self) -> None:
        """Restart the countdown on every change, but never wait longer than MAX_WAIT_MS."""
        now = time.monotonic()
        if not self._timer.isActive():
            self._first_change = now
        waited_ms = (now - self._first_change) * 1000.0
        self._timer.start(int(max(0, min(DEBOUNCE_MS, MAX_WAIT_MS - waited_ms))))

    def run(self) -> None:
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
            return  # progress, or an older preview: a newer one is on its way
        if handle.error is not None:
            if handle.error.code not in ("cancelled", "superseded"):
                self._status(f"Preview failed: {handle.error}")
            return
        self._shown(job, handle)

    def stop(self) -> None:
        self._timer.stop()
        if self.pending is not None and not self.pending.done:
            self.session.cancel(self.pending)
