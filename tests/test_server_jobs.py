"""The job queue on its own: caps, byte accounting, superseding, cancel and vanished
clients, without sockets (the workers' side is one `take` call)."""

from __future__ import annotations

import threading

import pytest

from dni.server.jobs import Cancel, Job, JobQueue, State
from dni.server.limits import Limits
from dni.server.parsing import RunRequest
from dni_client import protocol as P

ALICE = (b"alice",)
BOB = (b"bob",)


def job(client: tuple[bytes, ...], job_id: str, preview: bool = False, size: int = 4,
        via_broker: bool = False) -> Job:
    return Job(RunRequest(client=client, op="run", id=job_id, family="tiny", width=size,
                          height=1, layout="grey8", frames={"pixels": bytes(size)},
                          strength=0.5, preview=preview, via_broker=via_broker), "inst-1")


@pytest.fixture
def stopping() -> threading.Event:
    return threading.Event()


@pytest.fixture
def jobs(stopping: threading.Event) -> JobQueue:
    return JobQueue(Limits(max_queue=4, max_queue_per_client=3, max_queue_bytes=100),
                    stopping)


def busy(jobs: JobQueue, new: Job) -> None:
    with pytest.raises(P.ProtocolError) as info:
        jobs.add(new)
    assert info.value.code == "busy"


def test_fifo_with_positions_and_byte_accounting(jobs: JobQueue) -> None:
    first, second = job(ALICE, "1", size=10), job(BOB, "2", size=20)
    assert (jobs.add(first), jobs.add(second)) == (1, 2)
    assert jobs.counts() == (2, 0, 30)
    assert jobs.take() is first and first.state is State.RUNNING
    assert jobs.counts() == (1, 1, 20)
    first.release()
    assert first.request.frames == {} and first.nbytes == 10  # the pixels are let go of
    jobs.forget(first)
    assert jobs.counts() == (1, 0, 20)


def test_caps_per_client_overall_and_in_bytes(jobs: JobQueue) -> None:
    for index in range(3):
        jobs.add(job(ALICE, f"a{index}"))
    busy(jobs, job(ALICE, "a3"))            # three per client
    jobs.add(job(BOB, "b0"))
    busy(jobs, job(BOB, "b1"))              # four in all
    other = JobQueue(Limits(max_queue_bytes=10), threading.Event())
    other.add(job(ALICE, "big", size=8))
    busy(other, job(BOB, "more", size=3))   # ten bytes in all


def test_a_job_id_is_in_use_until_its_job_is_forgotten(jobs: JobQueue) -> None:
    running = job(ALICE, "same")
    jobs.add(running)
    jobs.check_new((BOB, "same"))           # ids are per client
    with pytest.raises(P.ProtocolError) as info:
        jobs.check_new((ALICE, "same"))
    # Its own code: the client must not take it for the end of the job with that id.
    assert info.value.code == "duplicate_id" and "goes on" in info.value.message
    jobs.take()
    with pytest.raises(P.ProtocolError):
        jobs.check_new((ALICE, "same"))     # running: still in use
    jobs.forget(running)
    jobs.check_new((ALICE, "same"))


def test_the_cap_counts_connections_not_claimed_routing_frames(jobs: JobQueue) -> None:
    """Made-up routing frames after the peer's own id do not buy another share."""
    for index in range(3):
        jobs.add(job((b"mallory", b"fake%d" % index), f"m{index}"))
    busy(jobs, job((b"mallory", b"fake9"), "m9"))
    busy(jobs, job((b"mallory",), "m10"))
    jobs.add(job(BOB, "b0"))                # other peers keep theirs


def test_behind_a_broker_each_client_has_its_own_share() -> None:
    jobs = JobQueue(Limits(max_queue=10, max_queue_per_client=2), threading.Event())
    broker = b"\0broker"
    for client in (b"c1", b"c2"):
        for index in range(2):
            jobs.add(job((broker, client, b"fake%d" % index), f"{index}", via_broker=True))
        busy(jobs, job((broker, client, b"fake9"), "9", via_broker=True))
    assert jobs.counts()[0] == 4


def test_a_gone_peer_loses_the_jobs_of_every_envelope(jobs: JobQueue) -> None:
    mine = [job((b"peer", b"x"), "1"), job((b"peer",), "2")]
    for new in (*mine, job(BOB, "3")):
        jobs.add(new)
    assert jobs.drop_client((b"peer",)) == 2
    assert all(j.vanished for j in mine)


def test_known_says_which_of_a_clients_jobs_are_here(jobs: JobQueue) -> None:
    running, queued = job(ALICE, "1"), job(ALICE, "2")
    jobs.add(running)
    jobs.add(queued)
    jobs.take()
    assert jobs.known(ALICE, ["1", "2", "3"]) == {"1": "running", "2": "queued", "3": None}
    assert jobs.known(BOB, ["1"]) == {"1": None}        # ids are per client
    assert jobs.known((ALICE[0], b"x"), ["1"]) == {"1": None}


def test_quiet_jobs_get_their_latest_progress_again(jobs: JobQueue,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    now = [100.0]
    monkeypatch.setattr("dni.server.jobs.time.monotonic", lambda: now[0])
    talking, silent, gone = job(ALICE, "1"), job(ALICE, "2"), job(BOB, "3")
    for new in (talking, silent, gone):
        jobs.add(new)
    assert talking.progress(0.25, "inference") == {
        "kind": "progress", "id": "1", "fraction": 0.25, "stage": "inference",
        "instance": "inst-1"}
    jobs.drop_client(BOB)
    now[0] += 1.0
    assert jobs.quiet(1.0) == [talking, silent]  # a vanished client is not told
    assert jobs.quiet(1.0) == []                  # looks again only a quarter later
    assert talking.alive() == {"kind": "progress", "id": "1", "fraction": 0.25,
                               "stage": "inference", "instance": "inst-1", "alive": True}
    now[0] += 0.5
    assert jobs.quiet(1.0) == [silent]            # its sign of life was not sent
    silent.alive()
    now[0] += 0.5
    assert jobs.quiet(1.0) == [talking]           # a second since its last word


def test_a_preview_supersedes_only_its_clients_queued_previews(jobs: JobQueue) -> None:
    running = job(ALICE, "p0", preview=True)
    jobs.add(running)
    jobs.take()
    final = job(ALICE, "final")
    old = job(ALICE, "p1", preview=True)
    bobs = job(BOB, "p1", preview=True)
    for queued in (final, old, bobs):
        jobs.add(queued)
    assert jobs.supersede_previews(ALICE) == [old]
    assert old.state is State.DONE and old.request.frames == {}
    assert {j.id for j in jobs.active()} == {"p0", "final", "p1"}  # bob's p1 stays
    assert jobs.counts() == (2, 1, 8)


def test_cancel_unqueues_a_queued_job_and_signals_a_running_one(jobs: JobQueue) -> None:
    running, queued = job(ALICE, "1"), job(ALICE, "2")
    jobs.add(running)
    jobs.add(queued)
    jobs.take()
    assert jobs.cancel((ALICE, "2")) is Cancel.UNQUEUED
    assert jobs.counts() == (0, 1, 0) and not queued.cancel.is_set()
    assert jobs.cancel((BOB, "1")) is Cancel.UNKNOWN  # only its own client may cancel
    assert not running.cancel.is_set()
    assert jobs.cancel((ALICE, "1")) is Cancel.SIGNALLED and running.cancel.is_set()
    assert jobs.cancel((ALICE, "nope")) is Cancel.UNKNOWN


def test_a_vanished_client_loses_its_jobs(jobs: JobQueue) -> None:
    running, queued, bobs = job(ALICE, "1"), job(ALICE, "2"), job(BOB, "3")
    for new in (running, queued, bobs):
        jobs.add(new)
    jobs.take()
    assert jobs.drop_client(ALICE) == 2
    assert running.vanished and running.cancel.is_set()
    assert queued.vanished and queued.state is State.DONE
    assert [j.id for j in jobs.active()] == ["1", "3"]  # the running one until it ends
    assert jobs.counts() == (1, 1, 4)


def test_close_returns_the_queued_jobs_and_cancels_the_running(
        jobs: JobQueue, stopping: threading.Event) -> None:
    running, queued = job(ALICE, "1"), job(BOB, "2")
    jobs.add(running)
    jobs.add(queued)
    jobs.take()
    stopping.set()
    assert jobs.close() == [queued]
    assert running.cancel.is_set() and jobs.counts() == (0, 1, 0)
    assert jobs.take() is None


def test_take_waits_for_a_job_or_the_stop(jobs: JobQueue, stopping: threading.Event) -> None:
    taken: list[Job | None] = []
    first_taken = threading.Event()

    def work() -> None:
        taken.append(jobs.take())
        first_taken.set()
        taken.append(jobs.take())

    worker = threading.Thread(target=work)
    worker.start()
    new = job(ALICE, "1")
    jobs.add(new)
    assert first_taken.wait(10)
    stopping.set()
    jobs.close()  # wakes the waiting worker
    worker.join(10)
    assert not worker.is_alive() and taken == [new, None]
