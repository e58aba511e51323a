"""Jobs that cannot run now wait with their reason, and never hold up the jobs that can."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from stablenew.app.pool import BackendConfig
from stablenew.app.services import Services
from stablenew.jobs.status import JobStatus
from stablenew.observe.events import EventKind
from stablenew.webui.process import LaunchConfig
from tests.helpers import Waiter
from tests.pool.conftest import backend
from tests.pool.test_pool import small

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


def dead(name: str) -> BackendConfig:
    return BackendConfig(name, LaunchConfig(url="http://127.0.0.1:9", startup_timeout=1))


def note_of(services: Services, job_id: str, expected: str) -> str:
    deadline = time.monotonic() + 30
    while (note := services.jobs.get_job(job_id).note) != expected:
        assert time.monotonic() < deadline, note
        time.sleep(0.05)
    return note


def test_an_unpinned_job_runs_behind_more_pinned_jobs_than_the_window(
    make_pool, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    services = make_pool([dead("gpu1"), backend(tmp_path, "b", "--step-ms", "5")])
    waiter = Waiter(services.jobs)
    pinned = services.jobs.submit_many(
        [small(f"pinned {i}").model_copy(update={"backend": "gpu1"}) for i in range(250)]
    )
    free = services.jobs.submit_pipeline_run(small("free late"))
    waiter.wait(EventKind.JOB_COMPLETED, free, timeout=60)
    for job_id in (pinned[0], pinned[-1]):  # the ones past the window have their reason too
        note_of(services, job_id, "waiting for backend gpu1 (pinned)")
        assert services.jobs.get_job_status(job_id) == JobStatus.QUEUED


def test_a_pin_holds_in_a_pool_of_one(make_pool, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    services = make_pool([backend(tmp_path, "b", "--step-ms", "5")])
    waiter = Waiter(services.jobs)
    services.jobs.pause()
    # Queued when gpu1 was in the config; the config no longer has it.
    lost = services.jobs.store.submit(small("for gpu1").model_copy(update={"backend": "gpu1"}))
    free = services.jobs.submit_pipeline_run(small("anywhere"))
    services.jobs.resume()
    waiter.wait(EventKind.JOB_COMPLETED, free, timeout=60)
    note_of(services, lost, "no backend named gpu1 in the config")
    assert services.jobs.get_job_status(lost) == JobStatus.QUEUED


def test_an_attached_backend_restarted_with_other_models_runs_a_job_for_the_new_one(
    make_pool, start_sim, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    first = start_sim("--models", "sim-v15-base")
    port = first.url.rsplit(":", 1)[1]
    attached = BackendConfig("box", LaunchConfig(url=first.url, startup_timeout=10))
    services = make_pool([attached])
    waiter = Waiter(services.jobs)
    before = services.jobs.submit_pipeline_run(small("old model", "sim-v15-base"))
    waiter.wait(EventKind.JOB_COMPLETED, before, timeout=60)  # the owner has read its lists
    first.manager.stop(grace=3)
    start_sim("--port", port, "--models", "sim-xl-photo")  # the user's restart, other models
    # Submitted by another process, which checks against the live lists.
    after = services.jobs.store.submit(small("new model", "sim-xl-photo"))
    waiter.wait(EventKind.JOB_COMPLETED, after, timeout=60)


def test_a_job_whose_only_backend_is_set_aside_says_so(make_pool, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Found by a tester: the note blamed the healthy backend's lists ("the backend has no
    'sim-xl-photo' (did you mean ...)") instead of the backend that has it being set aside."""
    services = make_pool(
        [
            backend(
                tmp_path,
                "xl",
                "--models",
                "sim-xl-photo",
                "--fault",
                "crash:txt2img:1",
                crash_loop_limit=1,
                breaker_cooldown=3600,
            ),
            backend(tmp_path, "base", "--models", "sim-v15-base"),
        ]
    )
    job_id = services.jobs.submit_pipeline_run(small("for xl", "sim-xl-photo"))
    deadline = time.monotonic() + 60
    while not (note := services.jobs.get_job(job_id).note).startswith("waiting for backend xl"):
        assert time.monotonic() < deadline, note
        time.sleep(0.05)
    assert note.startswith("waiting for backend xl, the one that can run it: set aside ("), note
    assert "crash" in note
    assert services.jobs.get_job_status(job_id) == JobStatus.QUEUED
