"""The job queue: one FIFO shared by all workers, with per-connection caps and byte
accounting, and what liveness needs: each job's latest progress and when its client last
heard of it.

The I/O thread adds, cancels and forgets jobs; the workers take them. Every method takes
the one lock itself, so callers never hold it (and never send while holding it).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from dni_client import protocol as P

from .limits import Limits
from .parsing import Client

JobKey = tuple[Client, str]  # job ids are the client's: unique per client only


class State(Enum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"


class Cancel(Enum):
    """What a cancel request did."""

    UNQUEUED = "unqueued"    # the job was still queued: it is gone now
    SIGNALLED = "signalled"  # the job is running: it stops before its next tile
    UNKNOWN = "unknown"      # finished already, or never here (behind a broker)


@dataclass(eq=False)  # jobs are compared by identity (deque.remove)
class Tracked:
    """Work a client waits for, in a thread off the I/O loop (a run, a family install):
    its progress, repeated as a sign of life, and whether its client is still there."""

    request: Any                     # a RunRequest or an InstallRequest: client and id
    instance: str = ""               # the server's instance id, in every progress event
    cancel: threading.Event = field(default_factory=threading.Event)
    vanished: bool = False           # its client is gone: drop whatever it produces
    # The latest progress, repeated as a sign of life, and when the client last heard of
    # the job. The worker writes them, the I/O thread reads them: plain attributes.
    fraction: float = 0.0
    stage: str = "queued"
    last_word: float = field(default_factory=lambda: time.monotonic())

    @property
    def id(self) -> str:
        return self.request.id

    @property
    def client(self) -> Client:
        return self.request.client

    @property
    def key(self) -> JobKey:
        return self.request.client, self.request.id

    def progress(self, fraction: float, stage: str, **extra: Any) -> dict[str, Any]:
        """A progress header; it is the latest word about the job from now on."""
        self.fraction, self.stage, self.last_word = fraction, stage, time.monotonic()
        return {"kind": P.KIND_PROGRESS, "id": self.id, "fraction": fraction, "stage": stage,
                "instance": self.instance, **extra}

    def alive(self) -> dict[str, Any]:
        """The sign of life: the latest progress again, marked as a repeat."""
        return self.progress(self.fraction, self.stage, alive=True)


@dataclass(eq=False)
class Job(Tracked):
    """A run request (its `request` is a RunRequest)."""

    state: State = State.QUEUED
    tiles_after_cancel: int = 0
    nbytes: int = field(init=False)  # counted once: the frames are emptied when done

    def __post_init__(self) -> None:
        self.nbytes = sum(len(frame) for frame in self.request.frames.values())

    @property
    def connection(self) -> Client:
        return self.request.connection

    def release(self) -> None:
        """Done with the pixels: let go of the received frames (up to a GiB each)."""
        self.request.frames.clear()
        self.state = State.DONE


class JobQueue:
    def __init__(self, limits: Limits, stopping: threading.Event) -> None:
        self._limits = limits
        self._stopping = stopping  # set from a signal handler: takes no lock
        self._cond = threading.Condition()
        self._queue: deque[Job] = deque()
        self._jobs: dict[JobKey, Job] = {}  # queued and running: until the reply is sent
        self._queued_bytes = 0
        # The in-flight budget (max_queue_bytes): a job's bytes count from add() until
        # its reply has gone out or will never go (forget), not only while it queues.
        self._held_bytes = 0
        self._next_sweep = 0.0  # liveness: when quiet() looks at the jobs again

    # -- the I/O thread ----------------------------------------------------------------

    def check_new(self, key: JobKey) -> None:
        """A job id may be reused once its job has ended, not before. The refusal has its
        own code, so that the client can tell it from the end of the job with that id."""
        with self._cond:
            if key in self._jobs:
                raise P.ProtocolError("duplicate_id", f"job id {key[1]!r} is in use by your "
                                      "queued or running job; that job goes on")

    def supersede_previews(self, client: Client) -> list[Job]:
        """Remove the client's queued previews: in a slider drag only the newest matters."""
        with self._cond:
            old = [job for job in self._queue if job.client == client and job.request.preview]
            for job in old:
                self._unqueue(job)
            return old

    def add(self, job: Job) -> int:
        """Queue a job; its position (1 = next). ProtocolError `busy` if it does not fit."""
        with self._cond:
            # Per connection, not per claimed identity: extra routing frames that a
            # client makes up do not buy it another share of the queue.
            mine = sum(1 for queued in self._queue if queued.connection == job.connection)
            if (len(self._queue) >= self._limits.max_queue
                    or mine >= self._limits.max_queue_per_client
                    or self._held_bytes + job.nbytes > self._limits.max_queue_bytes):
                raise P.ProtocolError("busy", f"the queue is full ({len(self._queue)} jobs, "
                                      f"{mine} of them yours); try again later")
            self._queue.append(job)
            self._queued_bytes += job.nbytes
            self._held_bytes += job.nbytes
            self._jobs[job.key] = job
            self._cond.notify()
            return len(self._queue)

    def cancel(self, key: JobKey) -> Cancel:
        with self._cond:
            job = self._jobs.get(key)
            if job is None:
                return Cancel.UNKNOWN
            if job.state is State.QUEUED:
                self._unqueue(job)
                return Cancel.UNQUEUED
            job.cancel.set()
            return Cancel.SIGNALLED

    def drop_client(self, client: Client) -> int:
        """The client's peer is gone: drop its queued jobs, cancel its running one; how
        many. The peer (the first routing id) is what the ROUTER failed to reach, so every
        job that came over it goes, whatever routing frames followed."""
        with self._cond:
            dropped = [job for job in self._jobs.values()
                       if job.client[0] == client[0] and not job.vanished]
            for job in dropped:
                job.vanished = True
                job.cancel.set()
                if job.state is State.QUEUED:
                    self._unqueue(job)
            return len(dropped)

    def forget(self, job: Job) -> None:
        """Its terminal reply went out (or its client is gone): the id is free again."""
        with self._cond:
            if self._jobs.get(job.key) is job:
                del self._jobs[job.key]
                self._held_bytes -= job.nbytes

    def close(self) -> list[Job]:
        """Stopping: empty the queue (returns what was queued), cancel the running jobs
        and wake every worker so that it can see the stop."""
        with self._cond:
            queued = list(self._queue)
            for job in queued:
                self._unqueue(job)
            for job in self._jobs.values():
                job.cancel.set()
            self._cond.notify_all()
            return queued

    def known(self, client: Client, ids: Iterable[str]) -> dict[str, str | None]:
        """For a ping: the state of each of the client's jobs named, None if not here."""
        with self._cond:
            found = {job_id: self._jobs.get((client, job_id)) for job_id in ids}
            return {job_id: job.state.value if job else None for job_id, job in found.items()}

    def quiet(self, interval: float) -> list[Job]:
        """Jobs whose client has heard nothing about them for `interval` seconds (their
        client gets a sign of life); looks at most four times per interval."""
        now = time.monotonic()
        with self._cond:
            if now < self._next_sweep:
                return []
            self._next_sweep = now + interval / 4
            return [job for job in self._jobs.values()
                    if not job.vanished and now - job.last_word >= interval]

    def active(self) -> list[Job]:
        """The queued and running jobs (diagnostics and tests)."""
        with self._cond:
            return list(self._jobs.values())

    def counts(self) -> tuple[int, int, int]:
        """(queued jobs, running jobs, queued bytes), for `stats`."""
        with self._cond:
            running = sum(1 for job in self._jobs.values() if job.state is State.RUNNING)
            return len(self._queue), running, self._queued_bytes

    # -- the workers -------------------------------------------------------------------

    def take(self) -> Job | None:
        """The next job, waiting for one; None once the server is stopping."""
        with self._cond:
            while not self._queue and not self._stopping.is_set():
                self._cond.wait()
            if self._stopping.is_set():
                return None
            job = self._queue.popleft()
            self._queued_bytes -= job.nbytes
            job.state = State.RUNNING
            return job

    # -- with the lock held ------------------------------------------------------------

    def _unqueue(self, job: Job) -> None:
        self._queue.remove(job)
        self._queued_bytes -= job.nbytes
        self._held_bytes -= job.nbytes
        del self._jobs[job.key]
        job.release()
