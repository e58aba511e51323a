"""Many backends, one queue: real reference-backend processes, each its own model set."""

from __future__ import annotations

import collections
import json
import os
import signal
import time
from pathlib import Path

import httpx
import pytest

from stablenew.app.metrics import Metrics
from stablenew.app.placement import PoolPolicy
from stablenew.app.pool import BackendConfig
from stablenew.app.services import Services
from stablenew.errors import InputError
from stablenew.jobs.spec import JobSpec
from stablenew.jobs.status import BackendState, JobStatus
from stablenew.observe.events import (
    BackendData,
    EventKind,
    JobLifecycleLogEvent,
    JobStartedData,
    RecoveryData,
)
from stablenew.webui.process import LaunchConfig
from tests.helpers import Waiter
from tests.pool.conftest import backend

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

MODELS = ("sim-v15-base", "sim-xl-photo", "anime_sim-toon-mix", "sim-v15-landscape")


def small(prompt: str, model: str | None = None, **extra: object) -> JobSpec:
    return JobSpec.model_validate(
        {
            "prompt": prompt,
            "steps": 2,
            "width": 64,
            "height": 64,
            "seed": 1,
            "model": model,
            **extra,
        }
    )


def stats(services: Services, name: str) -> dict[str, object]:
    url = next(b.url for b in services.backends if b.name == name)
    return httpx.get(f"{url}/sim/stats", timeout=5).json()


def started_on(waiter: Waiter) -> dict[str, list[str]]:
    """job id -> the backends it started on, in order."""
    on: dict[str, list[str]] = collections.defaultdict(list)
    for event in waiter.events:
        if event.kind == EventKind.JOB_STARTED and isinstance(event.data, JobStartedData):
            on[event.job_id or ""].append(event.data.backend)
    return on


def test_four_backends_forty_jobs_each_once_never_on_a_backend_without_its_model(
    make_pool, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    sets = {"a": MODELS[:2], "b": MODELS[1:3], "c": MODELS[2:], "d": (MODELS[0], MODELS[3])}
    services = make_pool(
        [
            backend(tmp_path, name, "--models", ",".join(models), "--step-ms", "20")
            for name, models in sets.items()
        ]
    )
    waiter = Waiter(services.jobs)
    ids = services.jobs.submit_many([small(f"job {i}", MODELS[i % 4]) for i in range(40)])
    for job_id in ids:
        waiter.wait(EventKind.JOB_COMPLETED, job_id, timeout=240)
    on = started_on(waiter)
    assert all(len(on[i]) == 1 for i in ids)  # every job ran exactly once
    for job_id in ids:
        job = services.jobs.get_job(job_id)
        (where,) = on[job_id]
        assert job.spec.model in sets[where], (job.spec.model, where)
        manifest = json.loads(Path(job.result.manifests[0]).read_text())
        assert manifest["stages"][0]["backend"]["name"] == where  # the manifest says which
    assert len({b for b in on.values() for b in b}) == 4  # every backend worked
    for name in sets:
        assert stats(services, name)["max_concurrent_requests"] == 1  # one call at a time each


def test_a_killed_backend_is_set_aside_and_its_job_finishes_elsewhere(
    make_pool, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    services = make_pool(
        [
            backend(
                tmp_path, "fragile", "--step-ms", "150", crash_loop_limit=1, breaker_cooldown=3
            ),
            backend(tmp_path, "steady", "--step-ms", "150"),
        ],
        pool=PoolPolicy(affinity=False),
    )
    waiter = Waiter(services.jobs)
    spec = small(
        "survive a dead backend", images=2, steps=6, img2img={"enabled": True}, backend=None
    )
    job_id = services.jobs.submit_pipeline_run(spec.model_copy(update={"backend": "fragile"}))
    waiter.wait(
        EventKind.STAGE_FINISHED,
        job_id,
        timeout=60,
        where=lambda e: e.stage == "txt2img" and e.image_index == 2,
    )
    pid = int((tmp_path / "backend-fragile.pid").read_text().split()[0])
    os.kill(pid, signal.SIGKILL)  # mid img2img of image 1
    # The pin would keep it waiting for the dead backend: unpin it, as a user would.
    waiter.wait(EventKind.JOB_RECOVERED, job_id, timeout=60)
    services.jobs.edit(job_id, spec)
    waiter.wait(EventKind.JOB_COMPLETED, job_id, timeout=120)
    assert started_on(waiter)[job_id] == ["fragile", "steady"]
    trail = [e for e in waiter.events if e.job_id == job_id]
    txt2img_starts = [
        e for e in trail if e.kind == EventKind.STAGE_STARTED and e.stage == "txt2img"
    ]
    assert len(txt2img_starts) == 2  # txt2img was not redone on the second backend
    assert stats(services, "steady")["stages"] == {"img2img": 2}
    # The dead backend gets one trial after its cooldown; the pool never paused.
    waiter.wait(
        EventKind.RECOVERY,
        timeout=30,
        where=lambda e: (
            isinstance(e.data, RecoveryData)
            and e.data.step == "breaker_half_open"
            and e.data.backend == "fragile"
        ),
    )
    assert services.jobs.paused() is None


def test_a_job_pinned_to_a_down_backend_waits_with_its_reason(make_pool, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    down = BackendConfig(
        "gpu1", LaunchConfig(url="http://127.0.0.1:9", startup_timeout=1), frozenset({"big"})
    )
    services = make_pool([backend(tmp_path, "gpu0"), down])
    waiter = Waiter(services.jobs)
    pinned = services.jobs.submit_pipeline_run(
        small("only on gpu1").model_copy(update={"backend": "big"})
    )
    free = services.jobs.submit_many([small(f"anywhere {i}") for i in range(3)])
    for job_id in free:
        waiter.wait(EventKind.JOB_COMPLETED, job_id, timeout=60)
    deadline = time.monotonic() + 20
    while "waiting for backend big" not in services.jobs.get_job(pinned).note:
        assert time.monotonic() < deadline, services.jobs.get_job(pinned).note
        time.sleep(0.05)
    job = services.jobs.get_job(pinned)
    assert job.status == JobStatus.QUEUED
    statuses = {s.name: s for s in services.backend_statuses()}
    assert (
        statuses["gpu1"].state == BackendState.FAILED
        and statuses["gpu0"].state == BackendState.READY
    )


def test_affinity_is_bounded_by_fairness(make_pool, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """One rare-model job among 200 common-model jobs: both backends have the common model
    loaded, so affinity would pass the rare one over until the end; the bound stops that."""
    services = make_pool(
        [
            backend(tmp_path, "a", "--model-load-ms", "200"),
            backend(tmp_path, "b", "--model-load-ms", "200"),
        ],
        pool=PoolPolicy(max_skips=10, max_wait=600),
    )
    waiter = Waiter(services.jobs)
    services.jobs.pause()
    ahead = services.jobs.submit_many([small(f"common {i}", MODELS[0]) for i in range(5)])
    rare = services.jobs.submit_pipeline_run(small("the rare one", MODELS[3]))
    behind = services.jobs.submit_many([small(f"common {i}", MODELS[0]) for i in range(5, 200)])
    services.jobs.resume()
    waiter.wait(EventKind.JOB_COMPLETED, rare, timeout=120)
    order = [e.job_id for e in waiter.events if e.kind == EventKind.JOB_STARTED]
    passed_over = order.index(rare) - len(ahead)
    assert 0 < passed_over <= 10 + 2  # affinity did act; the bound, plus two just claimed
    for job_id in ahead + behind:
        waiter.wait(EventKind.JOB_COMPLETED, job_id, timeout=240)
    loads = sum(int(stats(services, n)["model_loads"]) for n in ("a", "b"))  # type: ignore[arg-type]
    assert loads <= 2 + 2 + 1  # start-up loads, the rare model once, back to the common one


def test_pause_cancel_and_reorder_with_two_backends(make_pool, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    services = make_pool(
        [backend(tmp_path, "a", "--step-ms", "100"), backend(tmp_path, "b", "--step-ms", "100")]
    )
    waiter = Waiter(services.jobs)
    metrics = Metrics(services.jobs, services.backends)
    services.jobs.pause()
    ids = services.jobs.submit_many([small(f"job {i}", steps=10) for i in range(5)])
    services.jobs.move(ids[4], "front")
    services.jobs.resume()

    def started() -> list[str]:
        """In the order the store recorded the claims (two runners publish them in a race)."""
        starts = [e for e in waiter.events if e.kind == EventKind.JOB_STARTED]
        return [e.job_id or "" for e in sorted(starts, key=lambda e: e.store_seq or 0)]

    deadline = time.monotonic() + 30
    while len(started()) < 2:
        assert time.monotonic() < deadline, "two backends never both started a job"
        time.sleep(0.05)
    # The manual order holds: the job moved to the front is among the first two claimed (which
    # of the two runners records its start first is a race, so no order between those two).
    first_two = started()[:2]
    assert set(first_two) == {ids[4], ids[0]}, first_two
    running = ids[0]
    services.jobs.pause()  # nothing new starts; the two running jobs go on
    services.jobs.cancel_job(running)
    waiter.wait(EventKind.JOB_CANCELLED, running, timeout=30)
    waiter.wait(EventKind.JOB_COMPLETED, ids[4], timeout=30)
    assert len(started()) == 2
    assert [services.jobs.get_job_status(i) for i in ids if i not in (ids[4], running)] == [
        JobStatus.QUEUED
    ] * 3
    text = metrics.render().decode()  # what /metrics shows: labelled by backend
    for name in ("a", "b"):
        assert f'stablenew_backend_state{{backend="{name}",state="READY"}} 1.0' in text
    assert 'stablenew_stage_duration_seconds_count{backend="' in text


def test_submit_checks_names_against_every_backend_and_pins_against_names_and_labels(
    make_pool, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    services = make_pool(
        [
            backend(tmp_path, "a", "--models", MODELS[0]),
            backend(tmp_path, "b", "--models", MODELS[3], labels=("landscape",)),
        ]
    )
    for name in ("a", "b"):
        deadline = time.monotonic() + 30
        while services.catalog.lists(backend=name) is None:
            assert time.monotonic() < deadline, f"backend {name} never answered"
            time.sleep(0.05)
    services.jobs.pause()
    # Only b has the landscape model: accepted, as a pool of its own would.
    services.jobs.submit_pipeline_run(small("valley", MODELS[3]))
    with pytest.raises(InputError, match="nothing was queued"):
        services.jobs.submit_pipeline_run(small("nowhere", "sim-does-not-exist"))
    # Pinned to a: a has not got the landscape model, though b has.
    with pytest.raises(InputError, match="sim-v15-landscape"):
        services.jobs.submit_pipeline_run(
            small("pinned wrong", MODELS[3]).model_copy(update={"backend": "a"})
        )
    services.jobs.submit_pipeline_run(
        small("pinned by label", MODELS[3]).model_copy(update={"backend": "landscape"})
    )
    with pytest.raises(InputError, match="no backend is named or labelled 'gpu9'"):
        services.jobs.submit_pipeline_run(small("lost").model_copy(update={"backend": "gpu9"}))
    assert len(services.jobs.list_jobs()) == 2


def test_restarting_a_set_aside_backend_puts_it_back_in_the_pool(make_pool, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    services = make_pool(
        [
            backend(tmp_path, "fragile", crash_loop_limit=1, breaker_cooldown=3600),
            backend(tmp_path, "steady"),
        ],
        pool=PoolPolicy(affinity=False),
    )
    waiter = Waiter(services.jobs)
    fragile = next(b for b in services.backends if b.name == "fragile")
    httpx.post(
        f"{fragile.url}/sim/faults", json={"crash": {"stage": "txt2img", "nth": 1}}, timeout=5
    ).raise_for_status()
    first = services.jobs.submit_pipeline_run(
        small("crash it").model_copy(update={"backend": "fragile"})
    )
    waiter.wait(
        EventKind.RECOVERY,
        timeout=60,
        where=lambda e: isinstance(e.data, RecoveryData) and e.data.step == "breaker_open",
    )
    deadline = time.monotonic() + 30
    while fragile.status().held is None:  # the pool sets it aside
        assert time.monotonic() < deadline, "the crash-looping backend was not set aside"
        time.sleep(0.05)
    fragile.restart()  # the user's Restart (GUI, API, CLI): the cause is fixed
    assert fragile.status().held is None
    waiter.wait(EventKind.JOB_COMPLETED, first, timeout=60)  # pinned: only fragile can run it
    assert started_on(waiter)[first][-1] == "fragile"


def test_another_backends_crash_is_not_written_into_a_jobs_events(
    make_pool, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """Found by a tester: killing the idle backend a while a job ran on b wrote a's
    backend_crashed/starting/ready into the b job's run-folder events.jsonl, with its job_id."""
    services = make_pool(
        [
            backend(tmp_path, "a", "--step-ms", "100"),
            backend(tmp_path, "b", "--step-ms", "100"),
        ]
    )
    waiter = Waiter(services.jobs)
    job_id = services.jobs.submit_pipeline_run(
        small("on b", images=4, steps=20).model_copy(update={"backend": "b"})
    )
    waiter.wait(EventKind.STAGE_STARTED, job_id, timeout=60)
    os.kill(int((tmp_path / "backend-a.pid").read_text().split()[0]), signal.SIGKILL)

    def of_a(event: JobLifecycleLogEvent) -> bool:
        return isinstance(event.data, BackendData) and event.data.backend == "a"

    waiter.wait(EventKind.BACKEND_CRASHED, timeout=60, where=of_a)
    assert services.jobs.get_job_status(job_id) == JobStatus.RUNNING  # a died while b worked
    waiter.wait(EventKind.BACKEND_READY, timeout=60, where=of_a)
    waiter.wait(EventKind.JOB_COMPLETED, job_id, timeout=120)
    a_events = [e for e in waiter.events if of_a(e)]
    assert a_events and all(e.job_id is None for e in a_events), a_events
    run_log = Path(services.jobs.get_job(job_id).result.run_dir or "") / "events.jsonl"
    assert "backend a" not in run_log.read_text(encoding="utf-8")


def test_a_name_no_backend_has_is_refused_with_what_the_pool_has(make_pool, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Found by a tester: the refusal listed only the first backend's models ("the backend has
    no 'nope' (it has sim-v15-base) (on any of the 2 backends)")."""
    services = make_pool(
        [
            backend(tmp_path, "a", "--models", MODELS[0]),
            backend(tmp_path, "b", "--models", MODELS[1]),
        ]
    )
    for name in ("a", "b"):
        deadline = time.monotonic() + 30
        while services.catalog.lists(backend=name) is None:
            assert time.monotonic() < deadline, f"backend {name} never answered"
            time.sleep(0.05)
    with pytest.raises(InputError) as refused:
        services.jobs.submit_pipeline_run(small("nowhere", "nope"))
    assert "model: the pool (2 backends) has no 'nope'" in str(refused.value), refused.value
    assert MODELS[0] in str(refused.value) and MODELS[1] in str(refused.value), refused.value
    assert services.jobs.list_jobs() == []


def test_failure_artifacts_are_named_by_backend(make_pool, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Found by a tester: a pool's failure artifacts were in failures/txt2img_image1_attempt1,
    named by no backend (and a job resumed on another backend has an attempt 1 there too)."""
    services = make_pool(
        [
            backend(tmp_path, "flaky", "--fault", "http_error:txt2img:1"),
            backend(tmp_path, "steady"),
        ]
    )
    waiter = Waiter(services.jobs)
    job_id = services.jobs.submit_pipeline_run(
        small("a 500 each time").model_copy(update={"backend": "flaky"})
    )
    waiter.wait(EventKind.JOB_FAILED, job_id, timeout=60)  # each new process answers 500 once
    failures = Path(services.jobs.get_job(job_id).result.run_dir or "") / "failures"
    assert [p.name for p in failures.iterdir()] == ["flaky"]
    assert (failures / "flaky" / "txt2img_image1_attempt1" / "stage_failure_payload.json").is_file()
