"""The reference backend answers like A1111 (reference §6), checked over real HTTP."""

from __future__ import annotations

import base64
import io
import json
import threading
import time

import httpx
import pytest
from PIL import Image

pytestmark = pytest.mark.integration

SMALL = {"steps": 3, "width": 64, "height": 64}


def post(url: str, path: str, body: dict[str, object], **kw: object) -> httpx.Response:
    return httpx.post(f"{url}/sdapi/v1/{path}", json=body, timeout=30, **kw)


def png(b64: str) -> Image.Image:
    image = Image.open(io.BytesIO(base64.b64decode(b64)))
    image.load()
    return image


def b64_png(size: tuple[int, int], color: tuple[int, int, int] = (200, 40, 40)) -> str:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def test_batches_seeds_and_infotexts(sim_url: str) -> None:
    r = post(
        sim_url,
        "txt2img",
        {**SMALL, "prompt": "a red cube", "batch_size": 2, "n_iter": 2, "seed": 123},
    )
    assert r.status_code == 200
    body = r.json()
    assert isinstance(body["info"], str) and isinstance(body["parameters"], dict)
    info = json.loads(body["info"])
    assert len(body["images"]) == 4
    assert info["all_seeds"] == [123, 124, 125, 126]
    assert len(info["infotexts"]) == 4
    assert info["index_of_first_image"] == 0
    for b64, text in zip(body["images"], info["infotexts"], strict=True):
        assert not b64.startswith("data:")
        image = png(b64)
        assert image.format == "PNG" and image.size == (64, 64)
        assert image.text["parameters"] == text
    last = info["infotexts"][0].splitlines()[-1]
    assert last.startswith("Steps: 3, Sampler: Euler, ")
    for key in ("CFG scale: 7.0", "Seed: 123", "Size: 64x64", "Model hash: "):
        assert key in last
    assert "Negative prompt" not in info["infotexts"][0]


def test_negative_prompt_line_and_random_seed(sim_url: str) -> None:
    info = json.loads(
        post(sim_url, "txt2img", {**SMALL, "negative_prompt": "blurry"}).json()["info"]
    )
    assert "\nNegative prompt: blurry\n" in info["infotexts"][0]
    assert 0 <= info["seed"] < 4294967294


def test_deterministic_and_seed_sensitive(sim_url: str) -> None:
    def image(seed: int, prompt: str = "a lighthouse") -> bytes:
        body = {**SMALL, "prompt": prompt, "seed": seed}
        return base64.b64decode(post(sim_url, "txt2img", body).json()["images"][0])

    assert image(7) == image(7)
    assert image(7) != image(8)
    assert image(7) != image(7, "a harbour")
    pixels = png(base64.b64encode(image(7)).decode()).convert("L").getextrema()
    assert pixels[1] - pixels[0] > 20  # never blank


def test_grid_is_prepended_with_save_images(sim_url: str) -> None:
    body = post(sim_url, "txt2img", {**SMALL, "batch_size": 2, "save_images": True}).json()
    assert len(body["images"]) == 3
    assert json.loads(body["info"])["index_of_first_image"] == 1


def test_defaults_unknown_keys_and_validation(sim_url: str) -> None:
    r = post(sim_url, "txt2img", {"steps": 1, "no_such_field": 1})
    assert r.status_code == 200
    params = r.json()["parameters"]
    assert (params["width"], params["height"], params["cfg_scale"]) == (512, 512, 7.0)
    assert params["sampler_index"] == "Euler" and params["seed"] == -1
    bad = post(sim_url, "txt2img", {"steps": "abc"})
    assert bad.status_code == 422 and isinstance(bad.json()["detail"], list)


def test_bad_input_gets_a1111_shaped_errors(sim_url: str) -> None:
    r = post(sim_url, "txt2img", {**SMALL, "alwayson_scripts": {"nope": {"args": []}}})
    assert r.status_code == 422
    assert r.json() == {
        "error": "HTTPException",
        "detail": "Script 'nope' not found",
        "body": "",
        "errors": "422: Script 'nope' not found",
    }
    r = post(sim_url, "img2img", SMALL)
    assert r.status_code == 404 and r.json()["detail"] == "Init image not found"
    for size in ({"width": 4104}, {"width": 4096, "height": 4104}, {"width": 4096, "height": 4096}):
        r = post(sim_url, "txt2img", {**SMALL, **size})
        assert r.status_code == 422 and isinstance(r.json()["detail"], str)
    r = post(sim_url, "img2img", {**SMALL, "init_images": ["@@@"]})
    assert r.status_code == 500 and r.json()["detail"] == "Invalid encoded image"
    assert httpx.get(f"{sim_url}/sdapi/v1/sd-models").status_code == 200  # still alive


def test_send_images_false_and_hires(sim_url: str) -> None:
    body = post(sim_url, "txt2img", {**SMALL, "send_images": False}).json()
    assert body["images"] == [] and json.loads(body["info"])["all_seeds"]
    hr = post(sim_url, "txt2img", {**SMALL, "enable_hr": True, "hr_scale": 2}).json()
    assert png(hr["images"][0]).size == (128, 128)
    info = json.loads(hr["info"])
    assert info["width"] == 64 and "Hires upscale: 2.0" in info["infotexts"][0]


def test_img2img_sizes_init_formats_and_adetailer(sim_url: str) -> None:
    init = b64_png((100, 60))
    for image in (init, f"data:image/png;base64,{init}"):
        r = post(sim_url, "img2img", {**SMALL, "width": 96, "height": 72, "init_images": [image]})
        assert r.status_code == 200
        assert png(r.json()["images"][0]).size == (96, 72)
        assert r.json()["parameters"]["init_images"] is None
    plain = {**SMALL, "init_images": [init], "seed": 5, "denoising_strength": 0.3}
    ad = {
        **plain,
        "alwayson_scripts": {
            "ADetailer": {
                "args": [True, False, {"ad_model": "face_yolov8n.pt", "ad_confidence": 0.4}]
            }
        },
    }
    without, with_ad = post(sim_url, "img2img", plain).json(), post(sim_url, "img2img", ad).json()
    assert without["images"][0] != with_ad["images"][0]
    text = json.loads(with_ad["info"])["infotexts"][0]
    assert "ADetailer model: face_yolov8n.pt" in text and "ADetailer confidence: 0.4" in text
    assert "Denoising strength: 0.3" in text
    stale = {
        **plain,
        "alwayson_scripts": {"adetailer": {"args": [{"ad_model": "x", "old_key": 1}]}},
    }
    assert post(sim_url, "img2img", stale).json()["images"][0] == without["images"][0]


def test_extras_upscale(sim_url: str) -> None:
    def extras(image: str, **body: object) -> httpx.Response:
        return post(sim_url, "extra-single-image", {"image": image, **body})

    r = extras(b64_png((100, 60)), upscaler_1="Lanczos", upscaling_resize=2)
    assert png(r.json()["image"]).size == (200, 120)
    assert r.json()["html_info"].startswith("<p>Postprocess upscale by: 2")
    assert png(extras(b64_png((101, 60)), upscaler_1="Lanczos").json()["image"]).size == (200, 120)
    crop = extras(
        b64_png((100, 60)),
        upscaler_1="R-ESRGAN 4x+",
        resize_mode=1,
        upscaling_resize_w=160,
        upscaling_resize_h=160,
        upscaling_crop=True,
    )
    assert png(crop.json()["image"]).size == (160, 160)
    assert png(extras(b64_png((100, 60)), upscaler_1="None").json()["image"]).size == (100, 60)
    unknown = extras(b64_png((10, 10)), upscaler_1="Magic")
    assert unknown.status_code == 500 and unknown.json()["error"] == "AssertionError"


def test_model_upscaler_works_in_tiles(sim_url: str) -> None:
    """Smaller ESRGAN tiles mean more tiles: the progress step count shows it."""
    image = b64_png((256, 256))
    seen = []
    for tile in (64, 0):
        httpx.post(f"{sim_url}/sdapi/v1/options", json={"ESRGAN_tile": tile}).raise_for_status()
        body = {"image": image, "upscaler_1": "R-ESRGAN 4x+", "upscaling_resize": 2}
        assert png(post(sim_url, "extra-single-image", body).json()["image"]).size == (512, 512)
        seen.append(httpx.get(f"{sim_url}/sdapi/v1/progress").json()["state"]["sampling_steps"])
    assert seen[0] > 1 and seen[1] == 1


def test_lists_options_and_model_switch(sim_url: str) -> None:
    get = lambda path: httpx.get(f"{sim_url}/sdapi/v1/{path}").json()  # noqa: E731
    models = get("sd-models")
    assert set(models[0]) == {"title", "model_name", "hash", "sha256", "filename", "config"}
    assert get("options")["sd_model_checkpoint"] in {m["title"] for m in models}
    assert set(get("samplers")[0]) == {"name", "aliases", "options"}
    assert set(get("schedulers")[0]) == {
        "name",
        "label",
        "aliases",
        "default_rho",
        "need_inner_model",
    }
    names = {u["name"] for u in get("upscalers")}
    assert {"None", "Lanczos", "Nearest", "R-ESRGAN 4x+"} <= names
    assert "adetailer" in get("scripts")["img2img"]
    assert "ram" in get("memory")
    assert httpx.get(f"{sim_url}/internal/ping").json() == {}

    target = models[1]
    r = httpx.post(
        f"{sim_url}/sdapi/v1/options", json={"sd_model_checkpoint": target["model_name"]}
    )
    assert r.status_code == 200 and r.json() is None
    assert get("options")["sd_model_checkpoint"] == target["title"]
    bad = httpx.post(f"{sim_url}/sdapi/v1/options", json={"sd_model_checkpoint": "nope"})
    assert bad.status_code == 500 and bad.json()["error"] == "RuntimeError"
    ignored = post(
        sim_url, "txt2img", {**SMALL, "override_settings": {"sd_model_checkpoint": "nope"}}
    )
    assert ignored.status_code == 200
    httpx.post(f"{sim_url}/sdapi/v1/options", json={"sd_model_checkpoint": models[0]["title"]})


def test_progress_idle_and_skip(sim_url: str) -> None:
    idle = httpx.get(f"{sim_url}/sdapi/v1/progress", params={"skip_current_image": "true"}).json()
    assert idle["progress"] == 0 and idle["eta_relative"] == 0
    assert idle["state"]["job_count"] == 0 and idle["current_image"] is None
    r = httpx.post(f"{sim_url}/sdapi/v1/skip")
    assert r.status_code == 200 and r.json() is None


def test_progress_interrupt_and_fifo_order(start_sim) -> None:  # type: ignore[no-untyped-def]
    sim = start_sim("--step-ms", "40")
    url = sim.url
    results: dict[str, httpx.Response] = {}
    finished: list[str] = []

    def call(name: str, steps: int) -> None:
        results[name] = post(url, "txt2img", {**SMALL, "steps": steps, "prompt": name})
        finished.append(name)

    first = threading.Thread(target=call, args=("first", 30))
    first.start()
    deadline = time.monotonic() + 10
    while httpx.get(f"{url}/sdapi/v1/progress").json()["state"]["sampling_step"] < 2:
        assert time.monotonic() < deadline
    second = threading.Thread(target=call, args=("second", 2))
    second.start()
    while sim.stats()["in_flight"] < 2:  # the second request waits in the queue lock
        assert time.monotonic() < deadline
    busy = httpx.get(f"{url}/sdapi/v1/progress").json()
    assert 0 < busy["progress"] <= 1 and busy["state"]["job_count"] >= 1
    assert busy["state"]["sampling_steps"] == 30 and busy["state"]["job"] == "scripts_txt2img"
    assert httpx.post(f"{url}/sdapi/v1/interrupt").json() == {}
    first.join(15)
    second.join(15)
    assert finished == ["first", "second"]
    assert results["first"].status_code == 200 and len(results["first"].json()["images"]) == 1
    assert results["second"].status_code == 200
    stats = sim.stats()
    assert stats["max_concurrent_processing"] == 1 and stats["max_concurrent_requests"] == 2
    assert stats["interrupts"] == 1


def test_api_auth_and_nowebui(start_sim) -> None:  # type: ignore[no-untyped-def]
    sim = start_sim("--api-auth", "alice:s3cret", "--nowebui", auth=("alice", "s3cret"))
    url = sim.url
    missing = httpx.get(f"{url}/sdapi/v1/sd-models")
    assert missing.status_code == 401 and missing.json()["detail"] == "Not authenticated"
    wrong = httpx.get(f"{url}/sdapi/v1/sd-models", auth=("alice", "nope"))
    assert wrong.status_code == 401 and wrong.json()["detail"] == "Incorrect username or password"
    assert httpx.get(f"{url}/sdapi/v1/sd-models", auth=("alice", "s3cret")).status_code == 200
    ok = post(url, "txt2img", SMALL, auth=("alice", "s3cret"))
    assert ok.status_code == 200
    assert httpx.get(f"{url}/internal/ping").status_code == 404
