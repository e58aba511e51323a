"""Details the reference backend copies from A1111 v1.10.1 (reference §2, §9), over real HTTP."""

from __future__ import annotations

import base64
import io
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
