"""Family installs the editors ask for (`install` op): each runs in a thread of its own,
off the I/O loop, and reports through the outbox like a worker's job: progress events
(downloaded bytes), then one `installed` reply or an error. `cancel` with the install's
id stops it before its next chunk; what was downloaded stays for the next attempt.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dni_client import protocol as P

from .. import catalogue, install
from .failures import describe
from .jobs import Tracked
from .outbox import Outbox, Outgoing, Post
from .parsing import Client, InstallRequest

log = logging.getLogger("dni.server")

_PROGRESS_EVERY_S = 0.25  # downloads report per chunk: a few events a second is enough


@dataclass(eq=False)
class InstallJob(Tracked):
    """One install in flight (its `request` is an InstallRequest)."""


class Installs:
    def __init__(self, outbox: Outbox, instance: str,
                 root: Callable[[], Path | None] = lambda: None) -> None:
        self._outbox = outbox
        self._instance = instance
        self._root = root  # the family folder to install into (None: the user's)
        self._lock = threading.Lock()
        self._running: dict[tuple[Client, str], InstallJob] = {}

    def start(self, request: InstallRequest) -> InstallJob:
        """Start an install; ProtocolError if this id is in use or the family is being
        installed already."""
        job = InstallJob(request, self._instance)
        with self._lock:
            if job.key in self._running:
                raise P.ProtocolError("duplicate_id", f"id {request.id!r} is in use by your "
                                      "install; that install goes on")
            if any(j.request.family == request.family for j in self._running.values()):
                raise P.ProtocolError("busy", f"{request.family} is being installed already")
            self._running[job.key] = job
        threading.Thread(target=self._run, args=(job,), daemon=True,
                         name=f"dni-install-{request.family}").start()
        return job

    def cancel(self, key: tuple[Client, str]) -> bool:
        with self._lock:
            job = self._running.get(key)
        if job is not None:
            job.cancel.set()
        return job is not None

    def known(self, client: Client, ids: Iterable[str]) -> dict[str, str]:
        """For a ping: the ids among `ids` that are this client's running installs."""
        with self._lock:
            return {i: "running" for i in ids if (client, i) in self._running}

    def quiet(self, interval: float) -> list[InstallJob]:
        now = time.monotonic()
        with self._lock:
            return [j for j in self._running.values() if now - j.last_word >= interval]

    def drop_client(self, client: Client) -> None:
        """Nobody will read the replies; the install itself goes on (the files are wanted
        whoever asked)."""
        with self._lock:
            for job in self._running.values():
                if job.client[0] == client[0]:
                    job.vanished = True

    def stop(self) -> None:
        with self._lock:
            for job in self._running.values():
                job.cancel.set()

    # -- the install's thread ----------------------------------------------------------

    def _run(self, job: InstallJob) -> None:
        with self._outbox.poster() as post:
            try:
                header = self._install(job, post)
            # Whatever goes wrong, the client gets one error reply and the server goes on.
            except Exception as exc:  # noqa: BLE001
                failure = describe(exc)
                if failure.unexpected:
                    log.error("install %s failed: %s", job.id, traceback.format_exc())
                header = {"kind": P.KIND_ERROR, "code": failure.code, "message": failure.message}
            finally:
                with self._lock:
                    self._running.pop(job.key, None)
            header["id"] = job.id
            post(Outgoing(job, header, terminal=True))

    def _install(self, job: InstallJob, post: Post) -> dict[str, Any]:
        entry = catalogue.find(catalogue.load(catalogue.catalogue_path()), job.request.family)
        done = 0
        last = 0.0

        def progress(nbytes: int) -> None:
            nonlocal done, last
            done += nbytes
            if time.monotonic() - last >= _PROGRESS_EVERY_S:
                last = time.monotonic()
                header = job.progress(round(min(done / entry.size, 1.0), 4), "downloading",
                                      bytes=done, total=entry.size)
                post(Outgoing(job, header))

        post(Outgoing(job, job.progress(0.0, "started", total=entry.size)))
        manifest = install.install(entry, root=self._root(), progress=progress,
                                   cancelled=job.cancel.is_set)
        post(Outgoing(job, job.progress(1.0, "checking")))
        verdicts = install.correlation_verdicts(manifest)
        return {"kind": P.KIND_INSTALLED, "family": entry.name,
                "verdicts": [{"member": label, "median": round(median, 4), "verdict": verdict}
                             for label, median, verdict in verdicts]}
