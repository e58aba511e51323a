"""The pipeline's pure functions, in milliseconds: payloads, upscale planning, PNG chunks,
image sizes, seeds, slugs."""

from __future__ import annotations

import base64
import io
import unicodedata

import pytest
from PIL import Image, PngImagePlugin

from stablenew.errors import UpscaleRefused
from stablenew.jobs.spec import JobSpec
from stablenew.pipeline import payloads
from stablenew.pipeline.artifacts import add_png_text, as_png, image_size, png_text_keys, slug
from stablenew.pipeline.guards import plan_upscale
from stablenew.pipeline.runner import resolve_seeds
from stablenew.pipeline.settings import PipelineSettings, SizeLimits
from stablenew.pipeline.stages import Source, Upscale, chain
from stablenew.webui.recovery import Endpoint

SETTINGS = PipelineSettings(global_positive="masterpiece", global_negative="lowres")


def png(size: tuple[int, int] = (64, 48), text: dict[str, str] | None = None) -> bytes:
    buf = io.BytesIO()
    info = PngImagePlugin.PngInfo()
    for key, value in (text or {}).items():
        info.add_text(key, value)
    Image.new("RGB", size, "teal").save(buf, format="PNG", pnginfo=info)
    return buf.getvalue()


def test_global_prompts_wrap_the_job_prompts() -> None:
    spec = JobSpec(prompt=" a fox ", negative_prompt="blurry")
    assert payloads.prompts(spec, SETTINGS) == ("masterpiece, a fox", "blurry, lowres")
    assert payloads.prompts(JobSpec(prompt="a"), PipelineSettings()) == ("a", "")


def test_txt2img_payload_carries_every_setting_explicitly() -> None:
    spec = JobSpec(
        prompt="a fox",
        steps=12,
        cfg_scale=5.5,
        width=640,
        height=384,
        clip_skip=2,
        txt2img={"enable_hr": True, "hr_scale": 1.5, "hr_upscaler": "Lanczos"},
    )
    body = payloads.txt2img(spec, SETTINGS, seed=42)
    assert (body["seed"], body["steps"], body["cfg_scale"]) == (42, 12, 5.5)
    assert (body["width"], body["height"], body["batch_size"], body["n_iter"]) == (640, 384, 1, 1)
    assert body["override_settings"] == {"CLIP_stop_at_last_layers": 2}
    assert body["enable_hr"] and body["hr_scale"] == 1.5 and body["hr_upscaler"] == "Lanczos"
    assert "refiner_checkpoint" not in body and body["save_images"] is False


def test_img2img_and_adetailer_payloads_take_the_source_image() -> None:
    spec = JobSpec(
        prompt="a fox",
        img2img={"enabled": True, "denoising_strength": 0.45, "steps": 9},
        adetailer={"enabled": True, "hands": {"model": "hand_yolov8n.pt", "steps": 7}},
    )
    source = png()
    body = payloads.img2img(spec, SETTINGS, 7, source, (64, 48))
    assert base64.b64decode(body["init_images"][0]) == source
    assert (body["width"], body["height"], body["steps"]) == (64, 48, 9)
    assert body["denoising_strength"] == 0.45
    ad = payloads.adetailer(spec, SETTINGS, 7, source, (64, 48))
    args = ad["alwayson_scripts"]["ADetailer"]["args"]
    assert args[:2] == [True, True] and len(args) == 4  # enable, skip img2img, face, hands
    assert args[3]["ad_model"] == "hand_yolov8n.pt"
    assert args[3]["ad_use_steps"] and args[3]["ad_steps"] == 7
    assert "ad_use_steps" not in args[2] and ad["denoising_strength"] == 0.0


def test_upscale_plan_scales_down_refuses_and_clamps() -> None:
    limits = SizeLimits(max_upscale_megapixels=1.0, tile_min=64, tile_max=512)
    plain = plan_upscale((512, 512), 2.0, 192, SizeLimits())
    assert (plain.target, plain.tile, plain.decisions) == ((1024, 1024), 192, [])
    big = plan_upscale((1000, 600), 4.0, 8, limits)
    assert big.target[0] * big.target[1] <= 1_000_000
    assert big.target[0] % 8 == 0 and big.target[1] % 8 == 0
    assert big.decisions[0].startswith("scaled down: x4 would make 4000x2400")
    assert big.decisions[1] == "tile size 8 clamped to 64 (safe range 64..512)"
    refuse = SizeLimits(max_upscale_megapixels=1.0, on_oversize="refuse")
    with pytest.raises(UpscaleRefused, match="over the 1 MP limit"):
        plan_upscale((1000, 600), 4.0, 192, refuse)


def test_upscale_stage_asks_for_the_tile_it_planned() -> None:
    spec = JobSpec(prompt="a", upscale={"enabled": True, "factor": 2, "tile_size": 2000})
    request = Upscale().prepare(spec, SETTINGS, 1, "1/1", Source(png(), (64, 48), ""))
    assert request.endpoint is Endpoint.EXTRAS
    assert request.options == {"ESRGAN_tile": 1024}  # clamped into the default safe range
    assert (request.payload["upscaling_resize_w"], request.payload["upscaling_resize_h"]) == (
        128,
        96,
    )
    assert request.message == "enter upscale 1/1: R-ESRGAN 4x+ 64x48 -> 128x96, tile 1024"
    img2img_mode = spec.model_copy(
        update={"upscale": spec.upscale.model_copy(update={"mode": "img2img"})}
    )
    assert (
        Upscale().prepare(img2img_mode, SETTINGS, 1, "1/1", Source(png(), (64, 48), "")).endpoint
        is Endpoint.IMG2IMG
    )


def test_the_chain_follows_the_enabled_stages_in_order() -> None:
    spec = JobSpec(prompt="a", upscale={"enabled": True}, img2img={"enabled": True})
    assert [s.name for s in chain(spec)] == ["txt2img", "img2img", "upscale"]
    no_passes = JobSpec(prompt="a", adetailer={"enabled": True, "face": None})
    assert [s.name for s in chain(no_passes)] == ["txt2img"]


def test_text_chunks_are_spliced_without_touching_pixels() -> None:
    original = png(text={"parameters": "from the backend"})
    out = add_png_text(original, {"stablenew": '{"job_id": "j"}', "note": "ünïcode ✓"})
    assert out.startswith(original[: original.rfind(b"IEND") - 4])  # every byte kept
    assert png_text_keys(out) == {"parameters", "stablenew", "note"}
    with Image.open(io.BytesIO(out)) as image:
        assert image.text["note"] == "ünïcode ✓" and image.text["stablenew"] == '{"job_id": "j"}'
        assert image.tobytes() == Image.open(io.BytesIO(original)).tobytes()
    with pytest.raises(ValueError, match="no IEND"):
        add_png_text(original[:40], {"x": "y"})


def test_other_formats_become_png_and_sizes_are_sniffed() -> None:
    buf = io.BytesIO()
    Image.new("RGB", (30, 20), "red").save(buf, format="JPEG")
    jpeg = buf.getvalue()
    assert image_size(jpeg) == (30, 20)
    converted = as_png(jpeg)
    assert converted.startswith(b"\x89PNG") and image_size(converted) == (30, 20)
    assert image_size(png((17, 9))) == (17, 9)


def test_seeds_are_consecutive_and_random_only_when_asked() -> None:
    assert resolve_seeds(10, 3) == [10, 11, 12]
    randoms = resolve_seeds(-1, 4)
    assert randoms == list(range(randoms[0], randoms[0] + 4)) and randoms[0] >= 0
    assert resolve_seeds(4294967294, 2) == [4294967294, 0]  # wraps inside A1111's range


def test_slugs_keep_words_of_every_script() -> None:
    assert slug("A Lighthouse, at dusk!") == "a-lighthouse-at-dusk"
    assert slug("夕暮れの灯台") == "夕暮れの灯台"
    decomposed = unicodedata.normalize("NFD", "café crème")  # as macOS types it
    assert slug(decomposed) == slug("café crème") == "café-crème"
    assert slug("Маяк на закате") == "маяк-на-закате"
    assert slug("!!!") == "job"
    assert len(slug("word " * 40)) <= 40
