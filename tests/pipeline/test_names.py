"""Every name a job gives the backend is checked (and spelled as the backend spells it) before
it is queued: A1111 matches names exactly and silently generates with something else."""

from __future__ import annotations

import json

import httpx
import pytest

from stablenew.errors import InputError
from stablenew.jobs.spec import JobSpec
from stablenew.observe.events import EventKind
from tests.helpers import Waiter

pytestmark = pytest.mark.integration


def spec(**extra: object) -> JobSpec:
    return JobSpec.model_validate({"prompt": "a fox", "seed": 3, "steps": 2} | extra)


def sent(url: str, endpoint: str) -> list[dict]:  # type: ignore[type-arg]
    received = httpx.get(f"{url}/sim/requests", timeout=5).json()
    return [json.loads(r["body"]) for r in received if r["endpoint"] == endpoint]


def test_names_in_the_wrong_case_are_queued_and_sent_in_the_backends_spelling(
    make_services,
) -> None:  # type: ignore[no-untyped-def]
    services = make_services()
    waiter = Waiter(services.jobs)
    job_id = services.jobs.submit_pipeline_run(
        spec(
            prompt="a fox <lora:ADD_DETAIL:0.5> <embedding:easynegative>",
            model="SIM-XL-PHOTO",
            sampler="euler a",
            scheduler="EXPONENTIAL",
            vae="SIM-XL-VAE.safetensors",
            upscale={"enabled": True, "upscaler": "lanczos", "factor": 2},
            width=64,
            height=64,
        )
    )
    stored = services.jobs.get_job(job_id).spec  # what is queued is what the backend uses
    assert (stored.model, stored.sampler, stored.scheduler) == (
        "sim-xl-photo",
        "Euler a",
        "Exponential",
    )
    assert stored.vae == "sim-xl-vae.safetensors" and stored.upscale.upscaler == "Lanczos"
    assert stored.prompt == "a fox <lora:add_detail:0.5> <embedding:EasyNegative>"
    waiter.wait(EventKind.JOB_COMPLETED, job_id, timeout=60)
    (body,) = sent(services.backend.url, "/sdapi/v1/txt2img")
    assert (body["sampler_name"], body["scheduler"]) == ("Euler a", "Exponential")
    legacy = services.jobs.submit_pipeline_run(spec(sampler="dpm++ 2m karras"))
    assert services.jobs.get_job(legacy).spec.sampler == "DPM++ 2M Karras"


def test_unknown_model_and_vae_overrides_are_refused_at_submit(make_services) -> None:  # type: ignore[no-untyped-def]
    services = make_services()
    overrides = {"sd_model_checkpoint": "no-such-model", "sd_vae": "no-such-vae"}
    with pytest.raises(InputError) as refused:
        services.jobs.submit_pipeline_run(spec(txt2img={"override_settings": overrides}))
    message = str(refused.value)
    assert "txt2img.override_settings.sd_model_checkpoint: the backend has no 'no-such-model'" in (
        message
    )
    assert "txt2img.override_settings.sd_vae: the backend has no 'no-such-vae'" in message
    with pytest.raises(InputError, match=r"img2img\.override_settings\.sd_model_checkpoint"):
        services.jobs.submit_pipeline_run(
            spec(img2img={"enabled": True, "override_settings": {"sd_model_checkpoint": "x"}})
        )
    assert services.jobs.list_jobs() == []
    fixed = services.jobs.submit_pipeline_run(
        spec(txt2img={"override_settings": {"sd_model_checkpoint": "SIM-XL-PHOTO"}})
    )
    stored = services.jobs.get_job(fixed).spec.txt2img.override_settings
    assert stored["sd_model_checkpoint"] == "sim-xl-photo"


def test_model_overrides_queued_while_the_backend_was_away_fail_before_the_first_call(
    make_services,
) -> None:  # type: ignore[no-untyped-def]
    """With one backend nothing else could ever run it: it fails at setup, saying which name,
    before anything is sent (in a pool it waits for a backend that has it)."""
    services = make_services()
    waiter = Waiter(services.jobs)
    services.jobs.validate = None  # as when the backend could not be asked at submit time
    job_id = services.jobs.submit_pipeline_run(
        spec(txt2img={"override_settings": {"sd_model_checkpoint": "no-such-model"}})
    )
    waiter.wait(EventKind.JOB_FAILED, job_id, timeout=60)
    error = services.jobs.get_job(job_id).error
    assert error is not None and error.stage == "setup"
    assert "sd_model_checkpoint: the backend has no 'no-such-model'" in error.message
    assert sent(services.backend.url, "/sdapi/v1/txt2img") == []


def test_adetailer_names_are_checked_and_its_embeddings_rendered(make_services) -> None:  # type: ignore[no-untyped-def]
    services = make_services()
    waiter = Waiter(services.jobs)
    face = {
        "model": "face_yolov8z.pt",
        "prompt": "detailed face <lora:nope_lora:0.5> <embedding:EasyNegative>",
        "negative_prompt": "<embedding:nope_emb>",
        "sampler": "Nope",
        "checkpoint": "nosuch",
    }
    bad = spec(prompt="face <embedding:EasyNegative>", adetailer={"enabled": True, "face": face})
    with pytest.raises(InputError) as refused:
        services.jobs.submit_pipeline_run(bad)
    message = str(refused.value)
    for problem in (
        "adetailer.face.prompt: LoRA: the backend has no 'nope_lora'",
        "adetailer.face.negative_prompt: embedding: the backend has no 'nope_emb'",
        "adetailer.face.sampler: the backend has no 'Nope'",
        "adetailer.face.checkpoint: the backend has no 'nosuch'",
        "adetailer.face.model: the backend has no 'face_yolov8z.pt'",  # its detection model
    ):
        assert problem in message
    assert services.jobs.list_jobs() == []
    good = face | {
        "model": "FACE_YOLOV8N.PT",
        "prompt": "detailed face <lora:add_detail:0.5> <embedding:easynegative>",
        "negative_prompt": "<embedding:badhandv4>",
        "sampler": "euler a",
        "checkpoint": "SIM-V15-BASE",
    }
    job_id = services.jobs.submit_pipeline_run(
        spec(adetailer={"enabled": True, "face": good}, width=64, height=64)
    )
    waiter.wait(EventKind.JOB_COMPLETED, job_id, timeout=60)
    (body,) = sent(services.backend.url, "/sdapi/v1/img2img")
    tab = body["alwayson_scripts"]["ADetailer"]["args"][2]
    assert tab["ad_prompt"] == "detailed face <lora:add_detail:0.5> EasyNegative"
    assert tab["ad_negative_prompt"] == "badhandv4"
    assert (tab["ad_sampler"], tab["ad_checkpoint"]) == ("Euler a", "sim-v15-base")
    assert tab["ad_model"] == "face_yolov8n.pt"


def test_an_unknown_hires_upscaler_is_refused_at_submit(make_services) -> None:  # type: ignore[no-untyped-def]
    services = make_services()
    with pytest.raises(InputError) as refused:
        services.jobs.submit_pipeline_run(
            spec(txt2img={"enable_hr": True, "hr_upscaler": "Latentt"})
        )
    assert "txt2img.hr_upscaler: the backend has no 'Latentt' (did you mean 'Latent'" in str(
        refused.value
    )
    assert services.jobs.list_jobs() == []
    for name, spelled in (
        ("latent (bicubic)", "Latent (bicubic)"),
        ("r-esrgan 4x+", "R-ESRGAN 4x+"),
    ):
        job_id = services.jobs.submit_pipeline_run(
            spec(txt2img={"enable_hr": True, "hr_upscaler": name})
        )
        assert services.jobs.get_job(job_id).spec.txt2img.hr_upscaler == spelled
