"""Jobs rebuilt from PNGs: infotexts as A1111 v1.10.1 writes them (verbatim, reference §9), the
reference backend's own infotexts round-tripped, PNG text chunks read without the pixels."""

from __future__ import annotations

import io
import json
import zlib
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, PngImagePlugin

from stablenew.errors import SpecError
from stablenew.jobs.infotext import (
    parse_parameters,
    read_png_metadata,
    spec_from_png,
    split_sampler,
)
from stablenew.jobs.spec import JobSpec, build_spec
from stablenew.pipeline import payloads
from stablenew.pipeline.settings import PipelineSettings
from stablenew.webui_sim import catalog
from stablenew.webui_sim.models import Txt2ImgRequest
from stablenew.webui_sim.processing import Context, Speed, Txt2Img

# Verbatim from a running A1111 v1.10.1 (reference §9); facts, so copied as they are.
A1111_TXT2IMG = (
    "a red cube\nNegative prompt: blurry\nSteps: 2, Sampler: Euler a, Schedule type: Automatic, "
    "CFG scale: 7.0, Seed: 123, Size: 64x64, Model hash: 220b5e9e8d, Model: random-sd15, "
    "Version: 1.10.1"
)
A1111_KARRAS_CLIP_SKIP = (
    "Steps: 3, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 6.5, Seed: 4242, "
    "Size: 64x64, Model hash: f8cb43a67d, Model: random-sd15, Clip skip: 2, Version: 1.10.1"
)
A1111_HIRES = (
    "Steps: 2, Sampler: Euler a, Schedule type: Automatic, CFG scale: 7.0, Seed: 77, Size: 64x64, "
    "Model hash: f8cb43a67d, Model: random-sd15, Denoising strength: 0.45, Clip skip: 2, "
    "Hires upscale: 2.0, Hires steps: 2, Hires upscaler: Lanczos, Version: 1.10.1"
)
# "img2img adds `Denoising strength: 0.5` before `Version`" (§9).
A1111_IMG2IMG = A1111_TXT2IMG.replace("Version:", "Denoising strength: 0.5, Version:")


def test_a1111_txt2img_infotext() -> None:
    parsed = parse_parameters(A1111_TXT2IMG)
    assert (parsed.prompt, parsed.negative_prompt) == ("a red cube", "blurry")
    assert parsed.fields == {
        "steps": 2,
        "sampler": "Euler a",
        "scheduler": "Automatic",
        "cfg_scale": 7.0,
        "seed": 123,
        "width": 64,
        "height": 64,
        "model": "random-sd15",
        "metadata": {"infotext": {"Model hash": "220b5e9e8d", "Version": "1.10.1"}},
    }
    assert parsed.unparsed == {} and parsed.warnings == []
    assert parsed.settings["Model hash"] == "220b5e9e8d"
    spec = build_spec(parsed.spec_fields())
    assert (spec.prompt, spec.negative_prompt, spec.seed, spec.model) == (
        "a red cube",
        "blurry",
        123,
        "random-sd15",
    )


def test_a1111_schedule_type_and_clip_skip() -> None:
    parsed = parse_parameters("a lighthouse at dusk\n" + A1111_KARRAS_CLIP_SKIP)
    spec = build_spec(parsed.spec_fields())
    assert (spec.sampler, spec.scheduler, spec.cfg_scale, spec.clip_skip, spec.steps) == (
        "DPM++ 2M",
        "Karras",
        6.5,
        2,
        3,
    )
    assert spec.negative_prompt == "" and spec.prompt == "a lighthouse at dusk"


def test_a1111_hires_fix() -> None:
    spec = build_spec(parse_parameters("a harbour\n" + A1111_HIRES).spec_fields())
    t = spec.txt2img
    assert (t.enable_hr, t.hr_scale, t.hr_second_pass_steps, t.hr_upscaler) == (
        True,
        2.0,
        2,
        "Lanczos",
    )
    assert t.hr_denoising_strength == 0.45 and (spec.width, spec.height) == (64, 64)
    assert spec.img2img.denoising_strength == 0.3  # untouched: the denoise was the hires one


def test_a1111_img2img_denoise_without_hires() -> None:
    parsed = parse_parameters(A1111_IMG2IMG)
    assert parsed.fields["img2img"] == {"denoising_strength": 0.5}
    assert "txt2img" not in parsed.fields
    assert any("without hires fix" in w for w in parsed.warnings)


def test_a_legacy_combined_sampler_splits_and_a_schedule_type_wins() -> None:
    legacy = "x\nSteps: 20, Sampler: DPM++ 2M Karras, CFG scale: 7, Seed: 1, Size: 512x768"
    fields = parse_parameters(legacy).fields
    assert (fields["sampler"], fields["scheduler"], fields["cfg_scale"]) == (
        "DPM++ 2M",
        "Karras",
        7.0,
    )
    both = legacy.replace("Seed: 1", "Seed: 1, Schedule type: Exponential")
    assert parse_parameters(both).fields["scheduler"] == "Exponential"
    assert split_sampler("DPM++ 2M SDE Exponential") == ("DPM++ 2M SDE", "Exponential")
    assert split_sampler("Euler a") == ("Euler a", None)
    assert split_sampler("DDIM") == ("DDIM", None)
    assert split_sampler("DPM++ 2M Align Your Steps GITS") == ("DPM++ 2M", "Align Your Steps GITS")


def test_prompts_keep_their_lines_weights_and_loras_and_extension_keys_are_reported() -> None:
    text = (
        "(masterpiece:1.2), a fox,\nin the snow <lora:detail:0.6>\n"
        "Negative prompt: blurry,\nlowres\n"
        "Steps: 20, Sampler: Euler a, CFG scale: 7.0, Seed: 5, Size: 512x512, ADetailer model: "
        'face_yolov8n.pt, ADetailer prompt: "sharp, eyes", Lora hashes: "detail: 0123abcd", '
        "Hires resize: 1024x1024, Version: v1.10.1"
    )
    parsed = parse_parameters(text)
    assert parsed.prompt == "(masterpiece:1.2), a fox,\nin the snow <lora:detail:0.6>"
    assert parsed.negative_prompt == "blurry,\nlowres"
    assert parsed.unparsed == {
        "ADetailer model": "face_yolov8n.pt",
        "ADetailer prompt": "sharp, eyes",
        "Lora hashes": "detail: 0123abcd",
        "Hires resize": "1024x1024",
    }
    assert parsed.fields["metadata"]["infotext_unparsed"] == parsed.unparsed


@pytest.mark.parametrize(
    ("text", "warning"),
    [
        ("x\nSteps: many, Sampler: Euler, CFG scale: 7, Seed: 1", "Steps: 'many' is not a number"),
        ("x\nSteps: 2, Sampler: Euler, Size: 65x70, Seed: 1", "rounded down to 64x64"),
        ("x\nSteps: 2, Sampler: Euler, Size: big, Seed: 1", "Size: 'big' is not WxH"),
        ("only a prompt, Steps: 2", "no settings line"),
    ],
)
def test_odd_values_are_warnings_not_guesses(text: str, warning: str) -> None:
    assert any(warning in w for w in parse_parameters(text).warnings)


# -- round trip: what our reference backend writes for a spec parses back to the spec --------------

SAMPLERS = ["Euler a", "Euler", "DPM++ 2M", "DPM++ SDE", "DPM++ 2M SDE", "UniPC", "DDIM", "LCM"]
SCHEDULES = ["Automatic", "Karras", "Exponential", "SGM Uniform", "Simple", "Beta"]
PROMPT_LINE = st.text(
    alphabet=st.characters(
        blacklist_categories=("Cs", "Cc", "Zl", "Zp"), blacklist_characters="\x85"
    ),
    min_size=1,
    max_size=30,
).filter(lambda line: line == line.strip() and not line.startswith("Negative prompt:"))
PROMPT = st.lists(PROMPT_LINE, min_size=1, max_size=3).map("\n".join)


@st.composite
def specs(draw: st.DrawFn) -> JobSpec:
    hires = draw(st.booleans())
    variation = draw(st.booleans())
    return JobSpec(
        prompt=draw(PROMPT),
        negative_prompt=draw(st.one_of(st.just(""), PROMPT)),
        seed=draw(st.integers(0, 2**32 - 1)),
        subseed=draw(st.integers(0, 2**32 - 1)) if variation else -1,
        subseed_strength=draw(st.floats(0.01, 1.0)) if variation else 0.0,
        model=draw(st.sampled_from([c.model_name for c in catalog.CHECKPOINTS])),
        sampler=draw(st.sampled_from(SAMPLERS)),
        scheduler=draw(st.sampled_from(SCHEDULES)),
        steps=draw(st.integers(1, 150)),
        cfg_scale=draw(st.floats(1.0, 30.0).map(lambda v: round(v, 2))),
        width=draw(st.integers(8, 128)) * 8,
        height=draw(st.integers(8, 128)) * 8,
        clip_skip=draw(st.integers(1, 12)),
        txt2img={
            "enable_hr": hires,
            "hr_scale": draw(st.sampled_from([1.25, 1.5, 2.0])),
            "hr_upscaler": draw(st.sampled_from(["Latent", "Lanczos", "R-ESRGAN 4x+"])),
            "hr_second_pass_steps": draw(st.integers(1, 150)),
            "hr_denoising_strength": draw(st.floats(0.0, 1.0)),
        },
    )


def backend_infotext(spec: JobSpec) -> str:
    """The infotext the reference backend writes for the txt2img payload StableNew sends."""
    body = payloads.txt2img(spec, PipelineSettings(), spec.seed)
    checkpoint = next(c for c in catalog.CHECKPOINTS if c.model_name == spec.model)
    ctx = Context(options=catalog.default_options(checkpoint), speed=Speed())
    job = Txt2Img(Txt2ImgRequest.model_validate(body), ctx)
    return job.infotext(spec.seed, spec.subseed)


@settings(max_examples=200, deadline=None)
@given(specs())
def test_the_reference_backends_infotext_parses_back_to_the_spec(spec: JobSpec) -> None:
    parsed = parse_parameters(backend_infotext(spec))
    back = build_spec(parsed.spec_fields())
    assert (back.prompt, back.negative_prompt) == (spec.prompt, spec.negative_prompt)
    same = ("seed", "model", "sampler", "steps", "cfg_scale", "width", "height", "clip_skip")
    assert {k: getattr(back, k) for k in same} == {k: getattr(spec, k) for k in same}
    # The infotext names the schedule actually used: Automatic is the sampler's own.
    assert back.scheduler == catalog.resolve_sampler(spec.sampler, spec.scheduler)[1]
    assert (back.subseed_strength, back.subseed) == (
        (spec.subseed_strength, spec.subseed) if spec.subseed_strength else (0.0, -1)
    )
    assert back.txt2img.enable_hr == spec.txt2img.enable_hr
    if spec.txt2img.enable_hr:
        t, b = spec.txt2img, back.txt2img
        assert (b.hr_scale, b.hr_upscaler, b.hr_second_pass_steps) == (
            t.hr_scale,
            t.hr_upscaler,
            t.hr_second_pass_steps,
        )
        assert b.hr_denoising_strength == t.hr_denoising_strength
    assert parsed.unparsed == {} and parsed.warnings == []


# -- PNG chunks -----------------------------------------------------------------------------------


def png(chunks: dict[str, str] | None = None, *, itxt: dict[str, str] | None = None) -> bytes:
    info = PngImagePlugin.PngInfo()
    for key, value in (chunks or {}).items():
        info.add_text(key, value)
    for key, value in (itxt or {}).items():
        info.add_itxt(key, value, zip=True)
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), "teal").save(buf, format="PNG", pnginfo=info)
    return buf.getvalue()


def test_text_chunks_of_every_kind_are_read() -> None:
    meta = read_png_metadata(png({"parameters": A1111_TXT2IMG, "Software": "x"}))
    assert meta.parameters == A1111_TXT2IMG and meta.stablenew is None
    unicode = "一只狐狸 in the snow\nSteps: 2, Sampler: Euler a, CFG scale: 7.0, Seed: 1"
    assert read_png_metadata(png({"parameters": unicode})).parameters == unicode  # iTXt
    assert read_png_metadata(png(itxt={"parameters": unicode})).parameters == unicode  # zipped
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", A1111_TXT2IMG, zip=True)  # zTXt
    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, format="PNG", pnginfo=info)
    assert read_png_metadata(buf.getvalue()).parameters == A1111_TXT2IMG


def test_the_pixels_are_never_decoded() -> None:
    good = png({"parameters": A1111_TXT2IMG})
    idat = good.index(b"IDAT")
    length = int.from_bytes(good[idat - 4 : idat], "big")
    broken = good[: idat + 4] + b"\x00" * length + good[idat + 4 + length :]  # garbage pixels
    assert read_png_metadata(broken).parameters == A1111_TXT2IMG


def _jpeg() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, format="JPEG")
    return buf.getvalue()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"GIF89a....", "shot.png: not a PNG"),
        (_jpeg(), r"not a PNG \(a JPEG\)"),
        (png({"Software": "GIMP"}), r"no generation settings .*text chunks found: Software"),
        (png()[:60], "truncated"),
    ],
)
def test_a_png_without_settings_is_a_clear_error(data: bytes, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        read_png_metadata(data, "shot.png")


def ours(spec: JobSpec, *, as_string: bool = False) -> str:
    compact: Any = spec.to_json() if as_string else json.loads(spec.to_json())
    return json.dumps(
        {
            "job_id": "j-1",
            "spec_sha256": spec.sha256(),
            "stage": "txt2img",
            "image_index": 0,
            "spec": compact,
        },
        separators=(",", ":"),
    )


def test_our_chunk_rebuilds_the_job_exactly() -> None:
    spec = build_spec(
        {
            "prompt": "a fox\n<lora:x:0.5>",
            "seed": 9,
            "adetailer": {"enabled": True, "hands": {"model": "hand_yolov8n.pt", "mask_k": 2}},
            "upscale": {"enabled": True, "factor": 1.5},
            "metadata": {"note": "ünïcode"},
        }
    )
    for as_string in (False, True):
        data = png({"parameters": A1111_TXT2IMG, "stablenew": ours(spec, as_string=as_string)})
        imported = spec_from_png(data, "fox.png")
        assert imported.spec == spec and imported.source == "stablenew"
        assert imported.unparsed == {} and imported.warnings == []
        assert imported.origin == {
            "job_id": "j-1",
            "spec_sha256": spec.sha256(),
            "stage": "txt2img",
            "image_index": 0,
        }


def test_a_png_from_a1111_is_rebuilt_from_its_infotext() -> None:
    text = A1111_TXT2IMG.replace("Version", "ADetailer model: face_yolov8n.pt, Version")
    imported = spec_from_png(png({"parameters": text}), "a1111.png")
    assert imported.source == "infotext" and imported.spec.prompt == "a red cube"
    assert imported.unparsed == {"ADetailer model": "face_yolov8n.pt"}
    assert imported.spec.metadata["imported_from"] == "a1111.png"


def test_a_broken_chunk_of_ours_falls_back_to_the_infotext_with_a_warning() -> None:
    bad = json.dumps({"job_id": "j", "spec": {"prompt": "x", "steps": 0}})
    imported = spec_from_png(png({"parameters": A1111_TXT2IMG, "stablenew": bad}), "p.png")
    assert imported.source == "infotext"
    assert any("holds no valid job spec (steps:" in w for w in imported.warnings)
    with pytest.raises(SpecError, match=r"p\.png: its stablenew chunk holds no valid job spec"):
        spec_from_png(png({"stablenew": bad}), "p.png")
    not_json = spec_from_png(png({"parameters": A1111_TXT2IMG, "stablenew": "{"}), "p.png")
    assert any("not valid JSON" in w for w in not_json.warnings)
    with pytest.raises(SpecError, match=r"p\.png: .*its stablenew chunk is not valid JSON") as err:
        spec_from_png(png({"stablenew": "{"}), "p.png")
    assert "neither" not in str(err.value)  # it said no stablenew chunk was there


def test_an_infotext_that_makes_no_valid_spec_names_the_png_and_field() -> None:
    empty = "\nSteps: 2, Sampler: Euler a, CFG scale: 7.0, Seed: 1, Size: 64x64"
    with pytest.raises(SpecError, match=r"empty\.png: invalid job spec: prompt:"):
        spec_from_png(png({"parameters": empty}), "empty.png")
    huge = A1111_TXT2IMG.replace("Steps: 2", "Steps: 900")
    with pytest.raises(SpecError, match="steps: Input should be less than or equal to 150"):
        spec_from_png(png({"parameters": huge}), "huge.png")


def test_a_compressed_chunk_cannot_inflate_without_bound() -> None:
    bomb = zlib.compress(b"a" * (17 * 1024 * 1024))
    body = b"parameters\x00\x00" + bomb
    chunk = len(body).to_bytes(4, "big") + b"zTXt" + body + b"\x00\x00\x00\x00"
    good = png({"stablenew": ours(build_spec({"prompt": "x"}))})
    data = good[:33] + chunk + good[33:]  # after the signature and IHDR
    meta = read_png_metadata(data, "bomb.png")
    assert meta.parameters is None and any("unreadable zTXt" in w for w in meta.warnings)
