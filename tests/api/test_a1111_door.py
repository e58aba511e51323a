"""A1111 bodies as JobSpecs: A1111's defaults, images = batch_size x n_iter, the checkpoint
override as the model, nothing dropped in silence; and the door's answers in process."""

from __future__ import annotations

import base64
import io
from typing import Any

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from stablenew.api.a1111 import translate
from stablenew.errors import InputError, SpecError


def png(width: int = 32, height: int = 32) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), "white").save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def test_a1111_defaults_fill_what_the_body_leaves_out() -> None:
    spec = translate("txt2img", {"prompt": "a cat"}).spec
    assert (spec.steps, spec.sampler, spec.scheduler) == (50, "Euler", "Automatic")
    assert (spec.width, spec.height, spec.cfg_scale, spec.seed, spec.images) == (
        512,
        512,
        7.0,
        -1,
        1,
    )
    assert spec.stages() == ["txt2img"] and spec.provenance.source == "api"


def test_fields_map_onto_the_job() -> None:
    body: dict[str, Any] = {
        "prompt": "a cat",
        "negative_prompt": "blurry",
        "seed": 42,
        "sampler_name": "DPM++ 2M",
        "scheduler": "Karras",
        "steps": 20,
        "cfg_scale": 6.5,
        "width": 768,
        "height": 512,
        "batch_size": 2,
        "n_iter": 3,
        "enable_hr": True,
        "hr_scale": 1.5,
        "hr_upscaler": "Lanczos",
        "override_settings": {
            "sd_model_checkpoint": "sim-xl-photo",
            "sd_vae": "vae-ft-mse",
            "CLIP_stop_at_last_layers": 2,
            "eta_noise_seed_delta": 31337,
        },
        "alwayson_scripts": {
            "ControlNet": {"args": [{"enabled": False}]},
            "ADetailer": {"args": [True, False, {"ad_model": "face_yolov8n.pt", "ad_steps": 9}]},
        },
    }
    done = translate("txt2img", body)
    spec = done.spec
    assert spec.images == 6 and spec.model == "sim-xl-photo" and spec.vae == "vae-ft-mse"
    assert spec.clip_skip == 2 and spec.sampler == "DPM++ 2M" and spec.scheduler == "Karras"
    assert spec.txt2img.enable_hr and spec.txt2img.hr_scale == 1.5
    assert spec.txt2img.hr_denoising_strength == 0.75  # A1111's default, not StableNew's
    assert spec.txt2img.override_settings == {"eta_noise_seed_delta": 31337}
    assert spec.txt2img.alwayson_scripts == {"ControlNet": {"args": [{"enabled": False}]}}
    assert spec.adetailer.enabled and spec.adetailer.face is not None
    assert spec.adetailer.face.model == "face_yolov8n.pt" and spec.adetailer.face.steps is None
    assert done.warnings == []


def test_nothing_is_dropped_in_silence() -> None:
    done = translate(
        "txt2img",
        {
            "prompt": "x",
            "width": 500,
            "styles": ["my style"],
            "restore_faces": False,  # A1111's default: asks for nothing
            "send_images": True,
            "script_name": "x/y/z plot",
            "made_up": {"a": 1},
        },
    )
    assert done.spec.width == 496
    assert done.warnings == [
        "width: 500 -> 496 (A1111 rounds down to 8 too)",
        "styles: ['my style'] is not supported by StableNew; kept in the job's metadata,"
        " the job runs without it",
        "script_name: 'x/y/z plot' is not supported by StableNew; kept in the job's metadata,"
        " the job runs without it",
        "made_up: not an A1111 txt2img field; kept in the job's metadata",
    ]
    kept = done.spec.metadata["a1111"]
    assert kept["request"]["made_up"] == {"a": 1} and kept["request"]["styles"] == ["my style"]
    assert kept["unmapped"] == ["styles", "script_name", "made_up"]


def test_img2img_keeps_the_init_images_resized_as_a1111_does() -> None:
    done = translate(
        "img2img",
        {
            "prompt": "p",
            "init_images": [png(40, 20)],
            "width": 64,
            "height": 64,
            "n_iter": 2,
            "denoising_strength": 0.3,
        },
    )
    spec = done.spec
    assert spec.stages() == ["img2img"] and spec.images == 2 and len(spec.inputs) == 2
    assert spec.inputs[0].sha256 == spec.inputs[1].sha256 and spec.img2img.denoising_strength == 0.3
    with Image.open(io.BytesIO(done.inputs[0])) as image:
        assert image.size == (64, 64)
    assert "init_images" not in spec.metadata["a1111"]["request"]


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"prompt": "p"}, "init_images"),
        ({"prompt": "p", "init_images": ["https://example.com/a.png"]}, "URLs"),
        ({"prompt": "p", "init_images": ["not base64!"]}, "base64"),
        ({"prompt": "p", "init_images": [base64.b64encode(b"junk").decode()]}, "not an image"),
        ({"prompt": "p", "init_images": [png()], "mask": png()}, "inpainting"),
        ({"prompt": "p", "init_images": [png()], "steps": "many"}, "steps"),
    ],
)
def test_img2img_refusals_name_the_field(body: dict[str, Any], words: str) -> None:
    with pytest.raises(InputError, match=words):
        translate("img2img", body)


def test_out_of_range_is_a_spec_error() -> None:
    with pytest.raises(SpecError, match="steps"):
        translate("txt2img", {"prompt": "p", "steps": 999})
    with pytest.raises(SpecError, match="prompt"):
        translate("txt2img", {})


def test_the_door_answers_ids_and_warnings(local_app: TestClient) -> None:
    answer = local_app.post("/api/v1/a1111/txt2img", json={"prompt": "x", "odd": 1})
    assert answer.status_code == 201
    assert answer.json()["warnings"] == [
        "odd: not an A1111 txt2img field; kept in the job's metadata"
    ]
    (job_id,) = answer.json()["ids"]
    job = local_app.get(f"/api/v1/jobs/{job_id}").json()
    assert job["status"] == "QUEUED" and job["spec"]["steps"] == 50
    bad = local_app.post("/api/v1/a1111/img2img", json={"prompt": "x"})
    assert bad.status_code == 422 and "init_images" in bad.json()["detail"][0]
    image = local_app.post(
        "/api/v1/a1111/img2img", json={"prompt": "x", "init_images": [png()], "width": 64}
    )
    assert image.status_code == 201
    assert local_app.post("/api/v1/a1111/txt2img", json=[1, 2]).status_code == 422
