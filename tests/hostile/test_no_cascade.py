"""No cascade: a fault that repeats on every attempt, or a broken environment, pauses the queue
with the reason after at most one failed job, instead of failing the whole queue in seconds."""

from __future__ import annotations

import base64
import io
import itertools
import json
import signal
from pathlib import Path

import pytest
from PIL import Image

from stablenew.errors import CallFailed
from stablenew.jobs.cancel import CancelToken
from stablenew.jobs.spec import JobSpec
from stablenew.jobs.status import JobStatus
from stablenew.observe.events import EventKind, RecoveryData
from stablenew.queue.store import JobStore
from stablenew.webui.recovery import BackendCall, Endpoint, RecoveringBackend, RecoveryPolicy
from tests.helpers import start_worker
from tests.hostile.conftest import (
    backend_config,
    cli,
    events,
    fill,
    small,
    statuses,
    wait_for,
    write_config,
)


def _png_b64() -> str:
    buf = io.BytesIO()
    Image.new("RGB", (16, 16), "teal").save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


PNG_B64 = _png_b64()
CHAINS = {
    "txt2img": {},
    "img2img": {"img2img": {"enabled": True}},
    "adetailer": {"adetailer": {"enabled": True}},
    "upscale": {"upscale": {"enabled": True, "upscaler": "Lanczos"}},
}


def queue(home: Path, count: int, **extra: object) -> list[str]:
    store = JobStore(home / "jobs.db")
    try:
        return store.submit_many(
            [JobSpec.model_validate(small(f"job {i}", **extra)) for i in range(count)]
        )
    finally:
        store.close()


def paused(home: Path) -> str | None:
    store = JobStore(home / "jobs.db")
    try:
        return store.paused()
    finally:
        store.close()


@pytest.mark.parametrize("stage", list(CHAINS))
def test_a_backend_that_crashes_every_time_pauses_the_queue_after_one_job(
    tmp_path: Path, stage: str
) -> None:
    """The issue's repro: every fresh backend process crashes on its first call of a stage."""
    home = tmp_path / "home"
    write_config(home, backend_config("--fault", f"crash:{stage}:1"))
    ids = queue(home, 5, **CHAINS[stage])
    worker = start_worker(home)
    try:
        wait_for(lambda: paused(home), 90, "the queue to pause")
    finally:
        worker.proc.send_signal(signal.SIGTERM)
        worker.proc.wait(30)
    got = statuses(home)
    assert got.count(JobStatus.FAILED) <= 1, got
    assert got.count(JobStatus.QUEUED) >= 4 and JobStatus.COMPLETED not in got
    reason = paused(home) or ""
    assert "crash loop" in reason and "crashed 2 time(s)" in reason and "did not help" in reason
    store = JobStore(home / "jobs.db")
    failed = [j for j in store.list_jobs() if j.status == JobStatus.FAILED]
    for job in failed:  # its restart-once / retry-once was spent, with its envelope
        assert job.error is not None and job.error.attempts == 2 and job.error.restarts == 1
        assert all(Path(p).is_file() for p in job.error.artifacts)
    log = events(home)
    trips = [e for e in log if isinstance(e.data, RecoveryData) and e.data.step == "breaker_open"]
    assert len(trips) == 1 and trips[0].job_id in ids  # said, with the job it happened in
    paused_at = next(e.store_seq for e in log if e.kind == EventKind.QUEUE_PAUSED)
    starts_after = [
        e
        for e in log
        if e.kind == EventKind.BACKEND_STARTING and (e.store_seq or 0) > (paused_at or 0)
    ]
    assert not starts_after  # nothing starts it again until the user resumes (or the cooldown)


def test_a_backend_that_always_answers_garbage_pauses_the_queue_after_one_job(
    tmp_path: Path,
) -> None:
    """Found by a tester: malformed answers (the process lives on, so nothing crashes and no
    job has to start it) failed two jobs before the breaker opened on the third's restart."""
    home = tmp_path / "home"
    write_config(home, backend_config("--fault", "garbage:txt2img:1000:not_json"))
    queue(home, 5)
    worker = start_worker(home)
    try:
        wait_for(lambda: paused(home), 90, "the queue to pause")
    finally:
        worker.proc.send_signal(signal.SIGTERM)
        worker.proc.wait(30)
    got = statuses(home)
    assert got.count(JobStatus.FAILED) == 1 and got.count(JobStatus.QUEUED) == 4, got
    reason = paused(home) or ""
    assert "crash loop" in reason and "a restart did not help" in reason, reason


def test_after_the_cooldown_one_trial_then_paused_again(tmp_path: Path) -> None:
    home = tmp_path / "home"
    write_config(
        home,
        backend_config("--fault", "crash:txt2img:1") + "[recovery]\nbreaker_cooldown = 1\n",
    )
    queue(home, 3)
    worker = start_worker(home)

    def trials() -> int:
        return sum(
            1
            for e in events(home)
            if isinstance(e.data, RecoveryData) and e.data.step == "breaker_half_open"
        )

    try:
        wait_for(lambda: trials() >= 2, 90, "two half-open trials")
        wait_for(lambda: paused(home), 30, "the queue to pause again")
    finally:
        worker.proc.send_signal(signal.SIGTERM)
        worker.proc.wait(30)
    assert statuses(home).count(JobStatus.FAILED) <= 1
    log = events(home)
    opened = [
        i
        for i, e in enumerate(log)
        if isinstance(e.data, RecoveryData) and e.data.step == "breaker_open"
    ]
    starts = [i for i, e in enumerate(log) if e.kind == EventKind.BACKEND_STARTING]
    # between two openings of the breaker, exactly one trial start
    for first, second in itertools.pairwise(opened):
        assert sum(first < s < second for s in starts) == 1


def test_resuming_the_queue_tries_the_backend_again(tmp_path: Path) -> None:
    home = tmp_path / "home"
    write_config(home, backend_config("--fault", "crash:txt2img:1"))
    queue(home, 3)
    worker = start_worker(home)
    try:
        wait_for(lambda: paused(home), 90, "the queue to pause")
        before = sum(1 for e in events(home) if e.kind == EventKind.BACKEND_STARTING)
        assert cli(home, "queue", "resume").returncode == 0
        wait_for(
            lambda: sum(1 for e in events(home) if e.kind == EventKind.BACKEND_STARTING) > before,
            60,
            "a start after the resume",
        )
        wait_for(lambda: paused(home), 90, "the queue to pause again")
    finally:
        worker.proc.send_signal(signal.SIGTERM)
        worker.proc.wait(30)
    assert statuses(home).count(JobStatus.FAILED) <= 2  # one per resume at most


def test_an_unwritable_output_folder_pauses_after_two_jobs(tmp_path: Path, mount) -> None:  # type: ignore[no-untyped-def]
    home = tmp_path / "home"
    out = mount("readonly-out", readonly=True)
    write_config(home, backend_config() + f'[output]\nroot = "{out}"\n')
    queue(home, 5)
    worker = start_worker(home)
    try:
        wait_for(lambda: paused(home), 60, "the queue to pause")
    finally:
        worker.proc.send_signal(signal.SIGTERM)
        worker.proc.wait(30)
    got = statuses(home)
    assert got.count(JobStatus.FAILED) == 2 and got.count(JobStatus.QUEUED) == 3, got
    assert "the output folder cannot be written" in (paused(home) or "")
    store = JobStore(home / "jobs.db")
    error = next(j.error for j in store.list_jobs() if j.error is not None)
    assert error.reason == "output_unwritable" and str(out) in error.message


def test_a_full_output_disk_pauses_after_two_jobs_and_leaves_no_temp_files(
    tmp_path: Path, mount
) -> None:  # type: ignore[no-untyped-def]
    home = tmp_path / "home"
    out = mount("full-out", size="1m")
    (out / "2026").mkdir()
    fill(out)
    write_config(home, backend_config() + f'[output]\nroot = "{out}"\n')
    queue(home, 5, images=2)
    worker = start_worker(home)
    try:
        wait_for(lambda: paused(home), 60, "the queue to pause")
    finally:
        worker.proc.send_signal(signal.SIGTERM)
        worker.proc.wait(30)
    got = statuses(home)
    assert got.count(JobStatus.FAILED) == 2 and got.count(JobStatus.QUEUED) == 3, got
    assert "disk is full" in (paused(home) or "")
    assert not list(out.rglob("*.tmp"))  # a failed write cleans up after itself


@pytest.mark.parametrize(
    ("endpoint", "payload", "said"),
    [
        (
            Endpoint.EXTRAS,
            {"image": PNG_B64, "upscaler_1": "No Such Upscaler", "upscaling_resize": 2},
            "could not find upscaler named No Such Upscaler",
        ),
        (
            Endpoint.IMG2IMG,
            {"init_images": ["bm90IGFuIGltYWdl"], "steps": 2, "width": 64, "height": 64},
            "Invalid encoded image",
        ),
    ],
)
def test_a_deterministic_500_fails_at_once_without_a_restart(  # type: ignore[no-untyped-def]
    start_sim, tmp_path: Path, endpoint: Endpoint, payload: dict[str, object], said: str
) -> None:
    """A1111's answers a restart cannot change (reference §9) are not crashes."""
    sim = start_sim()
    backend = RecoveringBackend(sim.client, sim.manager, RecoveryPolicy(poll_interval=0.1))
    call = BackendCall(endpoint, payload, "upscale", 1, tmp_path / "failures")
    with pytest.raises(CallFailed) as failed:
        backend.call(call, CancelToken())
    report = failed.value.report
    assert (report.attempts, report.restarts) == (1, 0) and said in str(report.last)
    assert sim.manager.restarts == 0 and sim.manager.breaker.state == "closed"
    path = "/sdapi/v1/extra-single-image" if endpoint is Endpoint.EXTRAS else "/sdapi/v1/img2img"
    assert sim.stats()["endpoints"][path] == 1  # not retried


def test_a_recovered_crash_is_not_blamed_for_a_later_failure(make_services) -> None:  # type: ignore[no-untyped-def]
    from tests.helpers import Waiter
    from tests.pipeline.conftest import sim_faults

    services = make_services()
    waiter = Waiter(services.jobs)
    sim_faults(services, {"crash": {"stage": "txt2img", "nth": 1}})
    first = services.jobs.submit_pipeline_run(JobSpec.model_validate(small("first")))
    waiter.wait(EventKind.JOB_COMPLETED, first, timeout=60)  # crashed once, recovered
    sim_faults(services, {"http_error": {"stage": "txt2img", "kind": "oom"}})
    second = services.jobs.submit_pipeline_run(JobSpec.model_validate(small("second")))
    waiter.wait(EventKind.JOB_FAILED, second, timeout=60)
    error = services.jobs.get_job(second).error
    assert error is not None and "out of memory" in error.message
    tails = [Path(a).read_text() for a in error.artifacts if a.endswith("webui_tail.log")]
    assert tails and "OutOfMemoryError" in tails[0]
    assert "illegal memory access" not in tails[0]  # the old crash's output is not this one's


def test_every_recovery_step_is_in_the_jobs_own_log(make_services) -> None:  # type: ignore[no-untyped-def]
    from tests.helpers import Waiter
    from tests.pipeline.conftest import sim_faults

    services = make_services()
    waiter = Waiter(services.jobs)
    sim_faults(services, {"crash": {"stage": "txt2img", "nth": 1}})
    job_id = services.jobs.submit_pipeline_run(JobSpec.model_validate(small()))
    waiter.wait(EventKind.JOB_COMPLETED, job_id, timeout=60)
    run_dir = Path(services.jobs.get_job(job_id).result.run_dir or "")
    wait_for(lambda: '"job_completed"' in (run_dir / "events.jsonl").read_text(), 10)
    lines = [json.loads(x) for x in (run_dir / "events.jsonl").read_text().splitlines()]
    steps = [r["fields"]["step"] for r in lines if r["event"] == "recovery"]
    assert steps[:4] == ["crash_detected", "artifacts_written", "restart", "retry"]
    assert all(
        r["job_id"] == job_id and r["stage"] == "txt2img" for r in lines if r["event"] == "recovery"
    )
    backend = [r["event"] for r in lines if r["event"].startswith("backend_")]
    assert "backend_crashed" in backend and "backend_restarting" in backend
