"""The pipeline end to end: recovery mid-job, resume after a killed worker, guards, ADetailer."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import psutil
import pytest
from PIL import Image

from stablenew.errors import InputError
from stablenew.jobs.spec import JobSpec
from stablenew.jobs.status import JobStatus
from stablenew.observe.events import EventKind
from stablenew.pipeline import runner as pipeline_runner
from stablenew.pipeline.settings import SizeLimits
from stablenew.queue.store import JobStore
from tests.helpers import Waiter, start_worker
from tests.pipeline.conftest import sim_faults, sim_stats

pytestmark = pytest.mark.integration


def spec(**extra: object) -> JobSpec:
    base = {
        "prompt": "a quiet harbour",
        "seed": 11,
        "steps": 4,
        "width": 64,
        "height": 64,
        "images": 5,
        "img2img": {"enabled": True},
    }
    return JobSpec.model_validate(base | extra)


def test_crash_during_img2img_of_image_3_recovers_and_completes(make_services) -> None:  # type: ignore[no-untyped-def]
    services = make_services()
    sim_faults(services, {"crash": {"stage": "img2img", "nth": 3}})
    waiter = Waiter(services.jobs)
    job_id = services.jobs.submit_pipeline_run(spec())
    waiter.wait(EventKind.JOB_COMPLETED, job_id, timeout=60)
    assert services.backend.restarts == 1
    job = services.jobs.get_job(job_id)
    assert len(job.result.images) == 5
    run_dir = Path(job.result.run_dir)
    assert (run_dir / "failures" / "img2img_image3_attempt1" / "webui_tail.log").is_file()
    manifest = json.loads(Path(job.result.manifests[2]).read_text())
    assert manifest["stages"][1]["attempts"] == 2 and manifest["stages"][1]["restarts"] == 1
    kinds = waiter.kinds()
    assert "backend_crashed" in kinds and "backend_restarting" in kinds


def test_a_killed_worker_resumes_after_its_last_completed_stage(tmp_path: Path, start_sim) -> None:  # type: ignore[no-untyped-def]
    sim = start_sim("--step-ms", "40")  # the test owns the backend; the workers attach to it
    home = tmp_path / "home"
    store = JobStore(home / "jobs.db")
    job_id = store.submit(spec(steps=6))

    def worker() -> subprocess.Popen[str]:
        return start_worker(home, "--backend", sim.url).proc

    first = worker()
    deadline = time.monotonic() + 60
    while (cp := store.get(job_id).checkpoint) is None or cp.stages_done != ["txt2img"]:
        assert time.monotonic() < deadline, "the txt2img checkpoint never came"
        time.sleep(0.05)
    os.kill(first.pid, signal.SIGKILL)
    first.wait(10)
    assert store.get(job_id).status == JobStatus.RUNNING  # as the dead worker left it

    second = worker()
    try:
        deadline = time.monotonic() + 60
        while store.get(job_id).status != JobStatus.COMPLETED:
            assert time.monotonic() < deadline, store.get(job_id)
            time.sleep(0.1)
    finally:
        second.kill()
        second.wait(10)
    job = store.get(job_id)
    assert job.attempts == 2 and len(job.result.images) == 5
    stats = sim.stats()
    assert stats["completed"]["txt2img"] == 5  # not redone after the resume
    assert stats["completed"]["img2img"] >= 5
    assert all(Path(p).is_file() for p in job.result.manifests)


def test_a_stage_reads_the_same_input_from_memory_or_from_disk(make_services, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    services = make_services()
    waiter = Waiter(services.jobs)

    def final_pixels() -> list[bytes]:
        job_id = services.jobs.submit_pipeline_run(spec(images=2))
        waiter.wait(EventKind.JOB_COMPLETED, job_id, timeout=60)
        pixels = []
        for path in services.jobs.get_job(job_id).result.images:
            with Image.open(path) as image:
                pixels.append(image.tobytes())
        return pixels

    handed_on = final_pixels()  # img2img takes txt2img's output from memory
    monkeypatch.setattr(pipeline_runner, "HANDOFF_BYTES", 0)  # over the bound: from disk
    assert final_pixels() == handed_on


def test_size_guard_scales_down_and_says_so(make_services) -> None:  # type: ignore[no-untyped-def]
    limits = SizeLimits(max_upscale_megapixels=0.05, on_oversize="scale_down", tile_min=64)
    services = make_services(limits=limits)
    waiter = Waiter(services.jobs)
    job_id = services.jobs.submit_pipeline_run(
        spec(
            images=1,
            img2img={"enabled": False},
            upscale={"enabled": True, "factor": 4, "tile_size": 16},
        )
    )
    waiter.wait(EventKind.JOB_COMPLETED, job_id)
    job = services.jobs.get_job(job_id)
    with Image.open(job.result.images[0]) as image:
        assert image.size == (216, 216)  # sqrt(0.05 MP) floored to a multiple of 8, not 256
    guard = json.loads(Path(job.result.manifests[0]).read_text())["guard"]
    assert any(d.startswith("scaled down: x4 would make 256x256") for d in guard)
    assert any("tile size 16 clamped to 64" in d for d in guard)
    events = [e.message for e in waiter.events if e.kind == EventKind.GUARD]
    assert events == guard


def test_size_guard_refuses_when_told_to(make_services) -> None:  # type: ignore[no-untyped-def]
    services = make_services(limits=SizeLimits(max_upscale_megapixels=0.05, on_oversize="refuse"))
    waiter = Waiter(services.jobs)
    job_id = services.jobs.submit_pipeline_run(
        spec(images=1, img2img={"enabled": False}, upscale={"enabled": True, "factor": 4})
    )
    waiter.wait(EventKind.JOB_FAILED, job_id)
    error = services.jobs.get_job(job_id).error
    assert error is not None and error.stage == "upscale" and error.type == "UpscaleRefused"
    assert "over the 0.05 MP limit" in error.message
    assert "upscale" not in sim_stats(services)["stages"]


def test_adetailer_stage_and_model_switch(make_services) -> None:  # type: ignore[no-untyped-def]
    services = make_services()
    waiter = Waiter(services.jobs)
    job_id = services.jobs.submit_pipeline_run(
        spec(
            images=2,
            img2img={"enabled": False},
            model="sim-xl-photo",
            adetailer={"enabled": True, "hands": {"model": "hand_yolov8n.pt"}},
        )
    )
    waiter.wait(EventKind.JOB_COMPLETED, job_id)
    job = services.jobs.get_job(job_id)
    assert services.backend.client().get_options()["sd_model_checkpoint"].startswith("sim-xl-photo")
    with Image.open(job.result.images[0]) as image:
        text = image.text["parameters"]
    assert (
        "ADetailer model: face_yolov8n.pt" in text
        and "ADetailer model 2nd: hand_yolov8n.pt" in text
    )
    assert "Model: sim-xl-photo" in text
    assert sim_stats(services)["stages"] == {"txt2img": 2, "adetailer": 2}


def test_unknown_names_are_refused_at_submit_with_suggestions(make_services) -> None:  # type: ignore[no-untyped-def]
    services = make_services()
    with pytest.raises(InputError) as refused:
        services.jobs.submit_pipeline_run(spec(images=1, model="sim-xl-fotos", sampler="Eular a"))
    message = str(refused.value)
    assert "model: the backend has no 'sim-xl-fotos' (did you mean 'sim-xl-photo'" in message
    assert "sampler: the backend has no 'Eular a' (did you mean 'Euler a'" in message
    assert "17711fac2e" not in message and "nothing was queued" in message
    assert services.jobs.list_jobs() == []
    legacy = spec(images=1, sampler="DPM++ 2M Karras", prompt="a <lora:add_detail:0.5> fox")
    services.jobs.submit_pipeline_run(legacy)  # A1111 splits the legacy name: accepted


def test_names_queued_while_the_backend_was_away_fail_before_the_first_call(make_services) -> None:  # type: ignore[no-untyped-def]
    services = make_services()
    waiter = Waiter(services.jobs)
    services.jobs.validate = None  # as when the backend could not be asked at submit time
    job_id = services.jobs.submit_pipeline_run(spec(images=1, model="no-such-model"))
    waiter.wait(EventKind.JOB_FAILED, job_id)
    error = services.jobs.get_job(job_id).error
    assert error is not None and error.stage == "setup"
    assert "model: the backend has no 'no-such-model'" in error.message
    assert sim_stats(services)["stages"] == {}  # nothing was generated with something else


def test_a_backend_orphaned_by_kill_9_is_reaped_at_the_next_start(tmp_path: Path) -> None:
    first = start_worker(tmp_path).proc
    pid = int((tmp_path / "backend.pid").read_text().split()[0])
    os.kill(first.pid, signal.SIGKILL)
    first.wait(10)
    orphan = psutil.Process(pid)
    assert orphan.is_running()  # nobody stopped it: the worker died without cleaning up
    second = start_worker(tmp_path).proc
    assert not orphan.is_running() or orphan.status() == psutil.STATUS_ZOMBIE
    new_pid = int((tmp_path / "backend.pid").read_text().split()[0])
    assert new_pid != pid
    family = [psutil.Process(second.pid), psutil.Process(new_pid)]
    second.send_signal(signal.SIGTERM)
    assert second.wait(30) == 0
    _, alive = psutil.wait_procs(family, timeout=10)
    assert not alive and not (tmp_path / "backend.pid").exists()
