"""The upscale-hang diagnostics (PR-PIPE-DIAG-001), with a real backend and real hangs."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
from PIL import Image

from stablenew.jobs.spec import JobSpec
from stablenew.jobs.status import JobStatus
from stablenew.observe.events import EventKind
from tests.helpers import Waiter
from tests.pipeline.conftest import sim_faults, sim_stats

pytestmark = pytest.mark.integration


def five_images(**extra: object) -> JobSpec:
    return JobSpec.model_validate(
        {
            "prompt": "a lighthouse at dusk",
            "negative_prompt": "blurry",
            "seed": 100,
            "steps": 4,
            "width": 64,
            "height": 64,
            "images": 5,
            "img2img": {"enabled": True, "denoising_strength": 0.3},
            "upscale": {"enabled": True, "upscaler": "R-ESRGAN 4x+", "factor": 2, "tile_size": 64},
            **extra,
        }
    )


def stage_story(waiter: Waiter, job_id: str) -> list[str]:
    return [
        e.message
        for e in waiter.events
        if e.job_id == job_id and e.kind in (EventKind.STAGE_STARTED, EventKind.STAGE_FINISHED)
    ]


def test_multi_image_run_upscale_is_serial_and_honors_cancel(make_services) -> None:  # type: ignore[no-untyped-def]
    services = make_services("--step-ms", "5")
    waiter = Waiter(services.jobs)
    job_id = services.jobs.submit_pipeline_run(five_images())
    waiter.wait(EventKind.JOB_COMPLETED, job_id, timeout=60)

    stats = sim_stats(services)
    assert stats["max_concurrent_requests"] == 1
    assert stats["stages"] == {"txt2img": 5, "img2img": 5, "upscale": 5}
    story = stage_story(waiter, job_id)
    enters = [i for i, m in enumerate(story) if m.startswith("enter upscale")]
    exits = [i for i, m in enumerate(story) if m.startswith("exit upscale")]
    assert len(enters) == len(exits) == 5
    assert all(e < x < n for e, x, n in zip(enters, exits, [*enters[1:], len(story)], strict=True))
    indexes = [
        (e.stage, e.image_index)
        for e in waiter.events
        if e.job_id == job_id and e.kind == EventKind.STAGE_FINISHED
    ]
    assert indexes == [(s, i) for s in ("txt2img", "img2img", "upscale") for i in range(1, 6)]

    job = services.jobs.get_job(job_id)
    assert len(job.result.images) == 5 and len(job.result.manifests) == 5
    for image_path, manifest_path in zip(job.result.images, job.result.manifests, strict=True):
        with Image.open(image_path) as image:
            assert image.size == (128, 128)
            assert image.text["parameters"].startswith(
                "a lighthouse at dusk\nNegative prompt: blurry"
            )
            provenance = json.loads(image.text["stablenew"])
        seed = 100 + provenance["image_index"] - 1
        assert provenance == {
            "job_id": job_id,
            "image_index": provenance["image_index"],
            "seed": seed,
            "spec_sha256": job.spec.sha256(),
            "stage": "upscale",
            # the PNG rebuilds the job that makes it again
            "spec": job.spec.model_copy(update={"images": 1, "seed": seed}).model_dump(mode="json"),
        }
        manifest = json.loads(Path(manifest_path).read_text())
        assert [s["stage"] for s in manifest["stages"]] == ["txt2img", "img2img", "upscale"]
        assert manifest["seed"] == 100 + manifest["image_index"] - 1
        assert manifest["prompt"] == "a lighthouse at dusk"
        assert "sha256" in json.dumps(manifest["stages"][1]["payload"]["init_images"])

    # ... and a cancel between upscales stops the run: no further upscale reaches the backend.
    second = services.jobs.submit_pipeline_run(five_images(seed=7))

    def cancel_after_second_upscale(event) -> None:  # type: ignore[no-untyped-def]
        if event.job_id == second and event.message.startswith("exit upscale 2/5"):
            services.jobs.cancel_job(second)

    services.jobs.subscribe(cancel_after_second_upscale)
    waiter.wait(EventKind.JOB_CANCELLED, second, timeout=60)
    assert sim_stats(services)["stages"]["upscale"] == 5 + 2
    cancelled = services.jobs.get_job(second)
    assert cancelled.status == JobStatus.CANCELLED
    assert len(cancelled.result.stages["txt2img"]) == 5  # finished work stays on disk
    assert len(cancelled.result.stages["upscale"]) == 2
    assert [Path(p).stem for p in cancelled.result.images] == [
        "1_upscale",
        "2_upscale",
        "3_img2img",
        "4_img2img",
        "5_img2img",
    ]  # the furthest version of every image, each with its manifest
    assert all(Path(p).is_file() for p in cancelled.result.images + cancelled.result.manifests)


def test_upscale_stage_logs_stage_and_image_progress(make_services) -> None:  # type: ignore[no-untyped-def]
    services = make_services("--step-ms", "30")
    waiter = Waiter(services.jobs)
    job_id = services.jobs.submit_pipeline_run(five_images(steps=10))
    waiter.wait(EventKind.JOB_COMPLETED, job_id, timeout=60)
    run_log = Path(services.jobs.get_job(job_id).result.run_dir or "") / "events.jsonl"
    deadline = time.monotonic() + 10  # the run log hears job_completed after this test does
    while '"job_completed"' not in run_log.read_text():
        assert time.monotonic() < deadline
        time.sleep(0.01)
    lines = [json.loads(line) for line in run_log.read_text().splitlines()]
    story = [r["message"] for r in lines if r["event"] in ("stage_started", "stage_finished")]
    expected_starts = (
        [f"txt2img {i}/5" for i in range(1, 6)]
        + [f"img2img {i}/5" for i in range(1, 6)]
        + [f"enter upscale {i}/5: R-ESRGAN 4x+ 64x64 -> 128x128, tile 64" for i in range(1, 6)]
    )
    assert [m for m in story if not re.search(r"done in|exit upscale", m)] == expected_starts
    exits = [r for r in lines if r["message"].startswith("exit upscale")]
    assert [r["image_index"] for r in exits] == [1, 2, 3, 4, 5]
    assert all(r["fields"]["size"] == [128, 128] and r["fields"]["duration_s"] >= 0 for r in exits)
    assert all(r["fields"]["cancelled"] is False for r in exits)
    enter = next(r for r in lines if r["message"].startswith("enter upscale 1/5"))
    assert enter["fields"] | {"cancelled": False} == {
        "upscaler": "R-ESRGAN 4x+",
        "tile_size": 64,
        "source": [64, 64],
        "target": [128, 128],
        "cancelled": False,
    }
    progress = [r for r in lines if r["event"] == "progress" and r["stage"] == "txt2img"]
    assert progress and all(r["fields"]["steps"] == 10 for r in progress)
    assert lines[-1]["event"] == "job_completed"


@pytest.mark.parametrize("mode", ["honour_interrupt", "ignore_interrupt"])
def test_cancel_stops_long_running_upscale_in_bounded_time(make_services, mode) -> None:  # type: ignore[no-untyped-def]
    services = make_services()
    sim_faults(services, {"hang": {"stage": "upscale", "nth": 2, "mode": mode}})
    waiter = Waiter(services.jobs)
    job_id = services.jobs.submit_pipeline_run(five_images())
    waiter.wait(
        EventKind.STAGE_STARTED, job_id, where=lambda e: e.message.startswith("enter upscale 2/5")
    )
    # The hang freezes progress halfway; wait until the call is really stuck in the backend.
    deadline = time.monotonic() + 10
    while sim_stats(services)["stages"].get("upscale", 0) < 2:
        assert time.monotonic() < deadline
    cancelled_at = time.monotonic()
    services.jobs.cancel_job(job_id)
    waiter.wait(EventKind.JOB_CANCELLED, job_id, timeout=20)
    assert time.monotonic() - cancelled_at < 1.0 + 5.0  # cancel grace plus a generous margin
    assert services.jobs.get_job_status(job_id) == JobStatus.CANCELLED
    stats = sim_stats(services)
    assert stats["stages"]["upscale"] == 2  # no further upscale call reached the backend
