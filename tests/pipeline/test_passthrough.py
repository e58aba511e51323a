"""Extensions through the queue: ControlNet-shaped arguments reach the backend unchanged, the
manifest and the PNG carry them with images by hash, and two out-of-memory failures in a row
pause the queue."""

from __future__ import annotations

import base64
import hashlib
import io
import json
from pathlib import Path

import httpx
import pytest
from PIL import Image

from stablenew.jobs.references import restore
from stablenew.jobs.spec import JobSpec
from stablenew.jobs.status import JobStatus
from stablenew.observe.events import EventKind
from tests.helpers import Waiter
from tests.pipeline.conftest import sim_faults

pytestmark = pytest.mark.integration


def png_b64(colour: str) -> tuple[str, bytes]:
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), colour).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode(), buf.getvalue()


def test_controlnet_arguments_arrive_byte_for_byte(make_services) -> None:  # type: ignore[no-untyped-def]
    services = make_services()
    waiter = Waiter(services.jobs)
    image, raw = png_b64("purple")
    unit = {
        "enabled": True,
        "module": "canny",
        "model": "control_v11p_sd15_canny [d14c016b]",
        "weight": 0.85,
        "image": image,
        "resize_mode": "Crop and Resize",
        "guidance_start": 0.0,
        "guidance_end": 1.0,
        "pixel_perfect": True,
        "control_mode": "Balanced",
    }
    scripts = {"ControlNet": {"args": [unit]}, "Regional Prompter": {"args": [False, "Matrix"]}}
    spec = JobSpec.model_validate(
        {
            "prompt": "a tower",
            "steps": 2,
            "width": 64,
            "height": 64,
            "txt2img": {
                "alwayson_scripts": scripts,
                "override_settings": {"eta_noise_seed_delta": 31337},
            },
        }
    )
    url = services.backend.url
    httpx.delete(f"{url}/sim/requests", timeout=5)
    job_id = services.jobs.submit_pipeline_run(spec)
    waiter.wait(EventKind.JOB_COMPLETED, job_id, timeout=60)
    received = httpx.get(f"{url}/sim/requests", timeout=5).json()
    (txt2img,) = [r for r in received if r["endpoint"] == "/sdapi/v1/txt2img"]
    body = json.loads(txt2img["body"])
    assert body["alwayson_scripts"] == scripts  # unchanged, image and all
    assert body["override_settings"]["eta_noise_seed_delta"] == 31337
    assert body["override_settings"]["CLIP_stop_at_last_layers"] == 1

    job = services.jobs.get_job(job_id)
    manifest = json.loads(Path(job.result.manifests[0]).read_text())
    sent = manifest["stages"][0]["payload"]["alwayson_scripts"]["ControlNet"]["args"][0]["image"]
    assert sent == {"bytes": len(raw), "sha256": hashlib.sha256(raw).hexdigest()}
    with Image.open(job.result.images[0]) as png:
        chunk = json.loads(png.text["stablenew"])
    assert len(png.text["stablenew"]) < 4000  # the PNG carries a reference, not the image
    inputs = Path(job.result.run_dir or "") / "inputs"
    rebuilt, missing = restore(chunk["spec"], lambda sha: (inputs / sha).read_bytes())
    made = job.spec.model_copy(update={"seed": job.result.seeds[0]})  # the image's own seed
    assert missing == [] and JobSpec.model_validate(rebuilt) == made


def test_two_out_of_memory_failures_in_a_row_pause_the_queue(make_services) -> None:  # type: ignore[no-untyped-def]
    services = make_services()
    waiter = Waiter(services.jobs)
    sim_faults(services, {"http_error": {"stage": "txt2img", "kind": "oom", "count": 10}})
    ids = services.jobs.submit_many(
        [JobSpec(prompt=f"too big {i}", steps=2, width=64, height=64) for i in range(4)]
    )
    waiter.wait(EventKind.QUEUE_PAUSED, timeout=60)
    statuses = [services.jobs.get_job_status(i) for i in ids]
    assert statuses == [JobStatus.FAILED] * 2 + [JobStatus.QUEUED] * 2
    assert "ran out of memory" in (services.jobs.paused() or "")
    assert services.backend.restarts == 0  # out of memory is not a crash


def test_live_previews_while_a_stage_samples(make_services) -> None:  # type: ignore[no-untyped-def]
    services = make_services("--step-ms", "40")
    waiter = Waiter(services.jobs)
    spec = JobSpec(prompt="a slow sunrise", steps=40, width=64, height=64)
    job_id = services.jobs.submit_pipeline_run(spec)
    seen = waiter.wait(
        EventKind.PROGRESS,
        job_id,
        timeout=60,
        where=lambda e: getattr(e.data, "preview", 0) >= 1,
    )
    latest = services.previews.latest(job_id)
    assert latest is not None and latest.number >= seen.data.preview  # type: ignore[union-attr]
    with Image.open(io.BytesIO(latest.image)) as image:
        assert image.size[0] > 0
    waiter.wait(EventKind.JOB_COMPLETED, job_id, timeout=60)
    assert services.previews.latest(job_id) is None  # dropped with the job
    run_dir = Path(services.jobs.get_job(job_id).result.run_dir or "")
    assert sorted(p.name for p in run_dir.iterdir()) == [
        "1_txt2img.json",
        "1_txt2img.png",
        "events.jsonl",
    ]  # never written into the run folder
