"""Details the reference backend copies from A1111 v1.10.1 (reference §2, §9), over real HTTP."""

from __future__ import annotations

import base64
import io
import json
import threading
import time
from typing import Any

import httpx
import pytest
from PIL import Image

pytestmark = pytest.mark.integration

SMALL = {"steps": 2, "width": 64, "height": 64}


def b64_png(size: tuple[int, int], color: tuple[int, int, int] = (200, 40, 40)) -> str:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


PNG_B64 = b64_png((48, 32))


def get(url: str, path: str, **kw: Any) -> httpx.Response:
    return httpx.get(f"{url}/sdapi/v1/{path}", timeout=30, **kw)


def post(url: str, path: str, body: dict[str, Any], **kw: Any) -> httpx.Response:
    return httpx.post(f"{url}/sdapi/v1/{path}", json=body, timeout=30, **kw)


def test_loras_and_embeddings_in_a1111_shapes(sim_url: str) -> None:
    loras = get(sim_url, "loras").json()
    assert {lora["name"] for lora in loras} >= {"add_detail", "lcm-lora-sdv1-5"}
    for lora in loras:
        assert set(lora) == {"name", "alias", "path", "metadata"} and lora["metadata"] == {}
    embeddings = get(sim_url, "embeddings").json()
    assert set(embeddings) == {"loaded", "skipped"} and embeddings["skipped"] == {}
    assert embeddings["loaded"]["EasyNegative"] == {
        "step": None,
        "sd_checkpoint": None,
        "sd_checkpoint_name": None,
        "shape": 768,
        "vectors": 1,
    }


def test_loras_and_embeddings_are_behind_api_auth(start_sim) -> None:  # type: ignore[no-untyped-def]
    sim = start_sim("--api-auth", "alice:s3cret", auth=("alice", "s3cret"))
    for path in ("loras", "embeddings"):
        assert get(sim.url, path).status_code == 401
        assert get(sim.url, path, auth=("alice", "s3cret")).status_code == 200


CONTROLNET_UNIT = {
    "enabled": True,
    "module": "canny",
    "model": "control_v11p_sd15_canny [d14c016b]",
    "weight": 0.8,
    "image": PNG_B64,
    "resize_mode": "Crop and Resize",
    "guidance_start": 0.0,
    "guidance_end": 1.0,
    "control_mode": "Balanced",
    "pixel_perfect": True,
}
REGIONAL_ARGS = [True, False, "Matrix", "Columns", "Mask", "Prompt", "1,1", "0.2", False, True]


def test_installed_scripts_include_controlnet_and_regional_prompter(sim_url: str) -> None:
    scripts = get(sim_url, "scripts").json()
    for mode in ("txt2img", "img2img"):
        assert {"adetailer", "controlnet", "regional prompter"} <= set(scripts[mode])


def test_extension_args_pass_through_without_changing_the_image(sim_url: str) -> None:
    body = {**SMALL, "prompt": "a harbour", "seed": 11}
    plain = post(sim_url, "txt2img", body).json()
    # Keys match the scripts' titles case-insensitively, as in A1111.
    for cn, rp in (("ControlNet", "Regional Prompter"), ("controlnet", "REGIONAL PROMPTER")):
        scripts = {cn: {"args": [CONTROLNET_UNIT]}, rp: {"args": REGIONAL_ARGS}}
        r = post(sim_url, "txt2img", {**body, "alwayson_scripts": scripts})
        assert r.status_code == 200
        assert r.json()["images"] == plain["images"]
    init = {**SMALL, "seed": 3, "init_images": [PNG_B64], "denoising_strength": 0.5}
    without = post(sim_url, "img2img", init).json()
    with_cn = post(sim_url, "img2img", {**init, "alwayson_scripts": {"controlnet": {"args": []}}})
    assert with_cn.status_code == 200 and with_cn.json()["images"] == without["images"]


def test_unknown_scripts_still_get_a1111s_422(sim_url: str) -> None:
    for name in ("nope", "controlnet m2m"):
        r = post(sim_url, "txt2img", {**SMALL, "alwayson_scripts": {name: {"args": []}}})
        assert r.status_code == 422
        assert r.json() == {
            "error": "HTTPException",
            "detail": f"Script '{name}' not found",
            "body": "",
            "errors": f"422: Script '{name}' not found",
        }


def error_body(error: str, errors: str, detail: str = "") -> dict[str, str]:
    return {"error": error, "detail": detail, "body": "", "errors": errors}


def test_unknown_upscalers_fail_with_a1111s_bodies(sim_url: str) -> None:
    def extras(**body: Any) -> httpx.Response:
        return post(sim_url, "extra-single-image", {"image": PNG_B64, **body})

    for body, name in (
        ({"upscaler_1": "Magic"}, "Magic"),
        ({"upscaler_1": "lanczos"}, "lanczos"),  # names match exactly, as in A1111
        ({"upscaler_1": "Lanczos", "upscaler_2": "Magic 2"}, "Magic 2"),
    ):
        r = extras(**body)
        assert r.status_code == 500
        assert r.json() == error_body("AssertionError", f"could not find upscaler named {name}")
    assert extras(upscaler_1="None", upscaler_2="Magic").status_code == 200  # never looked at

    hires = {**SMALL, "enable_hr": True, "hr_scale": 1.5}
    r = post(sim_url, "txt2img", {**hires, "hr_upscaler": "Magic"})
    assert r.status_code == 500
    assert r.json() == error_body("Exception", "could not find upscaler named Magic")
    for upscaler in (None, "Latent", "Latent (nearest-exact)", "Lanczos", "R-ESRGAN 4x+"):
        assert post(sim_url, "txt2img", {**hires, "hr_upscaler": upscaler}).status_code == 200


def test_bad_base64_is_a1111s_invalid_encoded_image(sim_url: str) -> None:
    expected = error_body("HTTPException", "500: Invalid encoded image", "Invalid encoded image")
    for path, body in (
        ("img2img", {**SMALL, "init_images": ["@@@not base64"]}),
        ("img2img", {**SMALL, "init_images": ["data:image/png;base64,AAAA"]}),
        ("extra-single-image", {"image": "@@@", "upscaler_1": "Lanczos"}),
    ):
        r = post(sim_url, path, body)
        assert (r.status_code, r.json()) == (500, expected), body


def last_line(url: str, **body: Any) -> dict[str, str]:
    """The `Key: value` pairs of a txt2img infotext's last line (values here hold no commas)."""
    r = post(url, "txt2img", {**SMALL, "seed": 5, **body})
    assert r.status_code == 200
    line = json.loads(r.json()["info"])["infotexts"][0].splitlines()[-1]
    return dict(pair.split(": ", 1) for pair in line.split(", "))


def test_unknown_sampler_scheduler_and_checkpoint_fall_back_silently(sim_url: str) -> None:
    def used(**body: Any) -> tuple[str, str]:
        params = last_line(sim_url, **body)
        return params["Sampler"], params["Schedule type"]

    # An unknown sampler is A1111's first, DPM++ 2M, whose Automatic schedule is Karras.
    assert used(sampler_name="Nope") == ("DPM++ 2M", "Karras")
    # An unknown scheduler is Automatic: the model's own for Euler, the sampler's for DPM++ 2M.
    assert used(sampler_name="Euler", scheduler="nope") == ("Euler", "Automatic")
    assert used(sampler_name="DPM++ 2M", scheduler="nope") == ("DPM++ 2M", "Karras")
    assert used(sampler_name="Euler", scheduler="karras") == ("Euler", "Karras")
    assert used(sampler_name="DPM++ 2M SDE", scheduler="Automatic") == (
        "DPM++ 2M SDE",
        "Exponential",
    )
    # A legacy combined name is split, and its suffix wins.
    assert used(sampler_name="Euler a Karras", scheduler="uniform") == ("Euler a", "Karras")

    current = get(sim_url, "options").json()["sd_model_checkpoint"]
    model = next(m for m in get(sim_url, "sd-models").json() if m["title"] == current)
    ignored = last_line(sim_url, override_settings={"sd_model_checkpoint": "nope"})
    assert (ignored["Model"], ignored["Model hash"]) == (model["model_name"], model["hash"])


# Reference §9, verbatim, as a real A1111 v1.10.1 wrote them; only the model differs here.
SEEN_PLAIN = (
    "a red cube\nNegative prompt: blurry\nSteps: 2, Sampler: Euler a, Schedule type: Automatic, "
    "CFG scale: 7.0, Seed: 123, Size: 64x64, Model hash: 220b5e9e8d, Model: random-sd15, "
    "Version: 1.10.1"
)
SEEN_CLIP_SKIP = (
    "Steps: 3, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 6.5, Seed: 4242, "
    "Size: 64x64, Model hash: f8cb43a67d, Model: random-sd15, Clip skip: 2, Version: 1.10.1"
)
SEEN_HIRES = (
    "Steps: 2, Sampler: Euler a, Schedule type: Automatic, CFG scale: 7.0, Seed: 77, "
    "Size: 64x64, Model hash: f8cb43a67d, Model: random-sd15, Denoising strength: 0.45, "
    "Clip skip: 2, Hires upscale: 2.0, Hires steps: 2, Hires upscaler: Lanczos, Version: 1.10.1"
)


@pytest.fixture(scope="module")
def as_seen(sim_url: str) -> Any:
    """Rewrite a §9 infotext for this server's loaded model."""
    current = get(sim_url, "options").json()["sd_model_checkpoint"]
    model = next(m for m in get(sim_url, "sd-models").json() if m["title"] == current)

    def rewrite(text: str) -> str:
        for seen_hash in ("220b5e9e8d", "f8cb43a67d"):
            text = text.replace(f"Model hash: {seen_hash}", f"Model hash: {model['hash']}")
        return text.replace("Model: random-sd15", f"Model: {model['model_name']}")

    return rewrite


def infotext_of(url: str, path: str, body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    r = post(url, path, body)
    assert r.status_code == 200, r.text
    info = json.loads(r.json()["info"])
    image = Image.open(io.BytesIO(base64.b64decode(r.json()["images"][0])))
    assert image.text["parameters"] == info["infotexts"][0]  # type: ignore[attr-defined]
    return info["infotexts"][0], info


def test_infotext_plain_as_a1111_wrote_it(sim_url: str, as_seen: Any) -> None:
    body = {
        "prompt": "a red cube",
        "negative_prompt": "blurry",
        "steps": 2,
        "sampler_name": "Euler a",
        "seed": 123,
        "width": 64,
        "height": 64,
    }
    text, info = infotext_of(sim_url, "txt2img", body)
    assert text == as_seen(SEEN_PLAIN)
    assert info["version"] == "1.10.1" and info["extra_generation_params"] == {}


def test_infotext_schedule_type_and_clip_skip(sim_url: str, as_seen: Any) -> None:
    body = {
        "prompt": "a red cube",
        "steps": 3,
        "sampler_name": "DPM++ 2M",
        "scheduler": "karras",
        "cfg_scale": 6.5,
        "seed": 4242,
        "width": 64,
        "height": 64,
        "override_settings": {"CLIP_stop_at_last_layers": 2},
    }
    text, info = infotext_of(sim_url, "txt2img", body)
    assert text == "a red cube\n" + as_seen(SEEN_CLIP_SKIP)
    assert info["clip_skip"] == 2
    # Automatic is the same for DPM++ 2M: its own schedule is Karras, and the infotext says so.
    automatic, _ = infotext_of(sim_url, "txt2img", {**body, "scheduler": None})
    assert automatic == text
    # The override lasted one request: clip skip 1 is not written at all.
    plain, _ = infotext_of(sim_url, "txt2img", {**body, "override_settings": None})
    assert "Clip skip" not in plain


def test_infotext_hires_fix(sim_url: str, as_seen: Any) -> None:
    body = {
        "prompt": "a red cube",
        "steps": 2,
        "sampler_name": "Euler a",
        "seed": 77,
        "width": 64,
        "height": 64,
        "enable_hr": True,
        "hr_scale": 2,
        "hr_second_pass_steps": 2,
        "hr_upscaler": "Lanczos",
        "denoising_strength": 0.45,
        "override_settings": {"CLIP_stop_at_last_layers": 2},
    }
    text, info = infotext_of(sim_url, "txt2img", body)
    assert text == "a red cube\n" + as_seen(SEEN_HIRES)
    assert (info["width"], info["height"]) == (64, 64)
    assert info["extra_generation_params"] == {
        "Denoising strength": 0.45,
        "Hires upscale": 2.0,
        "Hires steps": 2,
        "Hires upscaler": "Lanczos",
    }
    # hr_resize replaces the scale; no hr_upscaler (latent) and no extra steps write nothing.
    resize = {"hr_resize_x": 96, "hr_resize_y": 80, "hr_upscaler": None, "hr_second_pass_steps": 0}
    resized, _ = infotext_of(sim_url, "txt2img", {**body, **resize})
    assert "Denoising strength: 0.45, Clip skip: 2, Hires resize: 96x80, Version: 1.10.1" in (
        resized
    )


def test_infotext_img2img_denoising_strength(sim_url: str, as_seen: Any) -> None:
    body = {
        "prompt": "a red cube",
        "negative_prompt": "blurry",
        "steps": 2,
        "sampler_name": "Euler a",
        "seed": 123,
        "width": 64,
        "height": 64,
        "init_images": [PNG_B64],
        "denoising_strength": 0.5,
    }
    text, info = infotext_of(sim_url, "img2img", body)
    assert text == as_seen(SEEN_PLAIN).replace(
        ", Version: 1.10.1", ", Denoising strength: 0.5, Version: 1.10.1"
    )
    assert info["extra_generation_params"] == {"Denoising strength": 0.5}


def test_infotext_keeps_the_prompt_verbatim(sim_url: str) -> None:
    prompt = "a <lora:add_detail:0.6> cat, (masterpiece:1.2)\nsecond line: with colon"
    text, _ = infotext_of(sim_url, "txt2img", {**SMALL, "prompt": prompt, "seed": 1})
    assert text.startswith(prompt + "\nSteps: 2, ")


def watch_progress(url: str, body: dict[str, Any], **params: Any) -> list[dict[str, Any]]:
    """Run a txt2img in the background and poll /progress until it is done."""
    done = threading.Event()
    worker = threading.Thread(
        target=lambda: (post(url, "txt2img", body).raise_for_status(), done.set())
    )
    worker.start()
    seen = []
    deadline = time.monotonic() + 30
    while not done.is_set():
        assert time.monotonic() < deadline
        seen.append(get(url, "progress", params=params).json())
        time.sleep(0.01)
    worker.join(10)
    return [p for p in seen if p["state"]["job_count"]]


def test_live_preview_every_n_steps(start_sim) -> None:  # type: ignore[no-untyped-def]
    sim = start_sim("--step-ms", "25")
    options = get(sim.url, "options").json()
    assert options["live_previews_enable"] is True  # A1111's default
    assert options["show_progress_every_n_steps"] == 10
    body = {**SMALL, "steps": 40, "seed": 9, "prompt": "a lighthouse"}
    seen = watch_progress(sim.url, body, skip_current_image="false")
    early = [p for p in seen if p["state"]["sampling_step"] < 10]
    later = [p for p in seen if p["state"]["sampling_step"] >= 10]
    assert early and later
    assert all(p["current_image"] is None for p in early)  # A1111 shows none before step 10
    assert all(p["current_image"] for p in later)
    previews = list(dict.fromkeys(p["current_image"] for p in later))
    assert 2 <= len(previews) <= 4  # a new one every 10 steps: at 10, 20, 30 (and 40)
    first = Image.open(io.BytesIO(base64.b64decode(previews[0])))
    assert first.format == "PNG" and first.size == (64, 64)
    final = post(sim.url, "txt2img", body).json()["images"][0]
    final_pixels = Image.open(io.BytesIO(base64.b64decode(final))).tobytes()
    assert first.tobytes() != final_pixels  # a step-10 preview is not the finished picture

    # Asked to skip it, or with previews off, there is none.
    skipped = watch_progress(sim.url, body, skip_current_image="true")
    assert all(p["current_image"] is None for p in skipped)
    httpx.post(f"{sim.url}/sdapi/v1/options", json={"show_progress_every_n_steps": 1})
    seen = watch_progress(sim.url, {**body, "steps": 12})
    assert any(p["current_image"] for p in seen if p["state"]["sampling_step"] < 10)
    httpx.post(f"{sim.url}/sdapi/v1/options", json={"live_previews_enable": False})
    assert all(p["current_image"] is None for p in watch_progress(sim.url, body))
