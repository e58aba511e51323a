"""Presets and ADetailer arguments as users' files carry them: every spelling, every switch."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stablenew.errors import PackError, SpecError
from stablenew.jobs.packs import expand, load_pack
from stablenew.jobs.presets import load_preset
from stablenew.jobs.spec import ADetailerPass, build_spec
from stablenew.pipeline.payloads import _adetailer_tab
from stablenew.webui_sim.models import ADetailerTab

# The shape of a real StableNew2 sidecar's adetailer section (values made up): the same setting
# under several names, StableNew2's own names, switches, and keys ADetailer never had.
STABLENEW2_ADETAILER: dict[str, Any] = {
    "adetailer_enabled": True,
    "enabled": False,  # a bare stage switch loses to adetailer_enabled
    "adetailer_model": "face_yolov8s.pt",
    "ad_model": "face_yolov8s.pt",
    "adetailer_confidence": 0.29,
    "max_detections": 3,
    "mask_blur": 5,
    "ad_mask_blur": 5,
    "adetailer_steps": 7,
    "adetailer_cfg": 4.0,
    "ad_cfg_scale": 4.5,  # ADetailer's own spelling wins over StableNew2's
    "adetailer_sampler": "DPM++ 2M",
    "adetailer_scheduler": "inherit",
    "adetailer_denoise": 0.13,
    "adetailer_prompt": "natural skin",
    "ad_inpaint_only_masked": False,
    "adetailer_padding": 24,
    "ad_use_inpaint_width_height": True,
    "ad_inpaint_width": 768,
    "ad_inpaint_height": 1024,
    "mask_filter_method": "all",  # invalid, but overruled by the ad_ spelling
    "ad_mask_filter_method": "Confidence",
    "mask_k_largest": 3,
    "ad_mask_k_largest": 2,
    "ad_mask_min_ratio": 0.04,
    "mask_dilate_erode": 6,
    "ad_mask_feather": 8,
    "mask_merge_mode": "merge",
    "ad_use_noise_multiplier": False,
    "ad_noise_multiplier": 1.2,  # switched off: not used
    "ad_clip_skip": 2,
    "ad_x_offset": -3,
    "ad_restore_face": True,
    "ad_controlnet_model": "control_v11p_sd15_inpaint",
    "ad_controlnet_weight": 0.6,
    "enable_face_pass": True,
    "enable_hands_pass": True,
    "adetailer_hands_model": "hand_yolov8s.pt",
    "adetailer_hands_confidence": 0.3,
    "ad_hands_mask_k": 6,
    "ad_hands_mask_min_ratio": 0.003,
    "ad_hands_dilate_erode": 7,
    "ad_hands_padding": 16,
    "ad_hands_mask_feather": 4,
    "adetailer_hands_steps": 12,
    "adetailer_hands_cfg": 5.0,
    "adetailer_hands_denoise": 0.25,
    "adetailer_hands_sampler": "Euler a",
    "adetailer_hands_prompt": "well-formed fingers",
    "show_preview": True,
}


def write(folder: Path, name: str, data: dict[str, Any], txt: str | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.json").write_text(json.dumps(data))
    if txt is not None:
        (folder / f"{name}.txt").write_text(txt)
    return folder / f"{name}.json"


def test_every_adetailer_argument_of_a_real_sidecar_is_typed(tmp_path: Path) -> None:
    path = write(tmp_path, "p", {"preset_data": {"adetailer": STABLENEW2_ADETAILER}}, "a fox")
    pack = load_pack(path)
    spec = expand(pack).specs[0]
    face, hands = spec.adetailer.face, spec.adetailer.hands
    assert spec.adetailer.enabled and face is not None and hands is not None
    assert face.model_dump(exclude_defaults=True) == {
        "model": "face_yolov8s.pt",
        "confidence": 0.29,
        "denoising_strength": 0.13,
        "prompt": "natural skin",
        "mask_filter_method": "Confidence",
        "mask_k": 2,
        "mask_min_ratio": 0.04,
        "dilate_erode": 6,
        "x_offset": -3,
        "mask_merge_invert": "Merge",
        "mask_blur": 5,
        "inpaint_only_masked": False,
        "inpaint_padding": 24,
        "inpaint_width": 768,
        "inpaint_height": 1024,
        "steps": 7,
        "cfg_scale": 4.5,
        "sampler": "DPM++ 2M",
        "clip_skip": 2,
        "restore_face": True,
        "controlnet_model": "control_v11p_sd15_inpaint",
        "controlnet_weight": 0.6,
    }
    assert hands.model_dump(exclude_defaults=True) == {
        "model": "hand_yolov8s.pt",
        "denoising_strength": 0.25,
        "prompt": "well-formed fingers",
        "mask_k": 6,
        "mask_min_ratio": 0.003,
        "dilate_erode": 7,
        "inpaint_padding": 16,
        "steps": 12,
        "cfg_scale": 5.0,
        "sampler": "Euler a",
    }
    unknown = spec.metadata["pack_unknown_keys"]
    assert set(unknown) == {"preset_data.adetailer.max_detections"}
    unknown_warnings = [w for w in pack.warnings if "unknown keys" in w]
    assert len(unknown_warnings) == 1  # reported once, for the whole pack
    (twice,) = [w for w in pack.warnings if "written twice" in w]
    assert "ad_cfg_scale=4.5 over adetailer_cfg=4.0" in twice
    assert "ad_mask_filter_method='Confidence' over mask_filter_method='all'" in twice
    assert "ad_mask_blur=5 over ad_mask_feather=8" in twice  # the argument itself wins


def test_a_mask_feather_is_adetailers_mask_blur(tmp_path: Path) -> None:
    section = {"ad_mask_feather": 9, "ad_hands_mask_feather": 6, "enable_hands_pass": True}
    path = write(tmp_path, "feather", {"preset_data": {"adetailer": section}})
    preset = load_preset(path)
    spec = preset.spec("a fox")
    face, hands = spec.adetailer.face, spec.adetailer.hands
    assert face is not None and hands is not None
    assert (face.mask_blur, hands.mask_blur) == (9, 6)
    assert "preset_unknown_keys" not in spec.metadata
    assert _adetailer_tab(face)["ad_mask_blur"] == 9 and "ad_mask_feather" not in _adetailer_tab(
        face
    )


def test_a_switch_turned_off_wins_and_one_turned_on_uses_adetailers_value(tmp_path: Path) -> None:
    section = {"ad_use_steps": False, "ad_steps": 9, "ad_use_cfg_scale": True}
    path = write(tmp_path, "p", {"preset_data": {"adetailer": section}}, "x")
    face = expand(load_pack(path)).specs[0].adetailer.face
    assert face is not None and face.steps is None and face.cfg_scale == 7.0


def test_a_pass_turned_off_is_no_pass(tmp_path: Path) -> None:
    data = {"preset_data": {"adetailer": {"ad_tab_enable": False, "ad_hands_enabled": False}}}
    spec = expand(load_pack(write(tmp_path, "p", data, "x"))).specs[0]
    assert spec.adetailer.face is None and spec.adetailer.hands is None
    default = expand(load_pack(write(tmp_path / "d", "p", {"preset_data": {}}, "x"))).specs[0]
    assert default.adetailer.face is not None and default.adetailer.hands is None


def test_a_bad_value_is_an_error_naming_the_field(tmp_path: Path) -> None:
    data = {"preset_data": {"adetailer": {"ad_mask_filter_method": "all"}}}
    with pytest.raises(PackError, match=r"p\.json: .*adetailer\.face\.mask_filter_method"):
        expand(load_pack(write(tmp_path, "p", data, "x")))


@pytest.mark.parametrize(
    ("fields", "why"),
    [
        ({"mask_min_ratio": 0.5, "mask_max_ratio": 0.2}, "above mask_max_ratio"),
        ({"inpaint_width": 512}, "set together"),
        ({"controlnet_guidance_start": 0.8, "controlnet_guidance_end": 0.2}, "after"),
        ({"noise_multiplier": 2.0}, "noise_multiplier"),
        ({"mask_merge_invert": "invert"}, "mask_merge_invert"),
    ],
)
def test_adetailer_pass_validation(fields: dict[str, Any], why: str) -> None:
    with pytest.raises(SpecError, match=why):
        build_spec({"prompt": "x", "adetailer": {"face": {"model": "m", **fields}}})


def test_the_tab_sends_defaults_only_as_the_core_and_overrides_with_their_switch() -> None:
    plain = _adetailer_tab(ADetailerPass(model="face_yolov8n.pt"))
    assert set(plain) == {
        "ad_model",
        "ad_confidence",
        "ad_denoising_strength",
        "ad_prompt",
        "ad_negative_prompt",
        "ad_mask_blur",
        "ad_inpaint_only_masked",
        "ad_inpaint_only_masked_padding",
    }
    tuned = _adetailer_tab(
        ADetailerPass(
            model="m",
            cfg_scale=5.0,
            scheduler="Karras",
            inpaint_width=768,
            inpaint_height=1024,
            mask_k=2,
            vae="None",
        )
    )
    assert tuned["ad_use_cfg_scale"] is True and tuned["ad_cfg_scale"] == 5.0
    assert (tuned["ad_use_sampler"], tuned["ad_sampler"], tuned["ad_scheduler"]) == (
        True,
        "Use same sampler",
        "Karras",
    )
    assert tuned["ad_use_inpaint_width_height"] and tuned["ad_inpaint_width"] == 768
    assert tuned["ad_mask_k"] == 2 and tuned["ad_use_vae"] and tuned["ad_vae"] == "None"
    assert "ad_use_steps" not in tuned and "ad_steps" not in tuned


def _ratio_pair(draw: st.DrawFn) -> tuple[float, float]:
    a, b = draw(st.floats(0, 1)), draw(st.floats(0, 1))
    return min(a, b), max(a, b)


@st.composite
def passes(draw: st.DrawFn) -> ADetailerPass:
    low, high = _ratio_pair(draw)
    start, end = _ratio_pair(draw)
    size = draw(st.one_of(st.none(), st.tuples(st.integers(64, 2048), st.integers(64, 2048))))
    maybe = st.one_of(st.none(), st.just("x"))
    return ADetailerPass(
        model=draw(st.sampled_from(["face_yolov8n.pt", "hand_yolov8n.pt"])),
        confidence=draw(st.floats(0, 1)),
        mask_filter_method=draw(st.sampled_from(["Area", "Confidence"])),
        mask_k=draw(st.integers(0, 100)),
        mask_min_ratio=low,
        mask_max_ratio=high,
        dilate_erode=draw(st.integers(-128, 128)),
        x_offset=draw(st.integers(-200, 200)),
        mask_merge_invert=draw(st.sampled_from(["None", "Merge", "Merge and Invert"])),
        inpaint_only_masked=draw(st.booleans()),
        inpaint_width=size[0] if size else None,
        inpaint_height=size[1] if size else None,
        steps=draw(st.one_of(st.none(), st.integers(1, 150))),
        cfg_scale=draw(st.one_of(st.none(), st.floats(0, 30))),
        checkpoint=draw(maybe),
        sampler=draw(maybe),
        scheduler=draw(maybe),
        noise_multiplier=draw(st.one_of(st.none(), st.floats(0.5, 1.5))),
        clip_skip=draw(st.one_of(st.none(), st.integers(1, 12))),
        restore_face=draw(st.booleans()),
        controlnet_weight=draw(st.floats(0, 1)),
        controlnet_guidance_start=start,
        controlnet_guidance_end=end,
    )


@settings(max_examples=150, deadline=None)
@given(passes())
def test_every_tab_is_one_adetailer_accepts_with_the_values_of_the_pass(p: ADetailerPass) -> None:
    # The reference backend's model mirrors ADetailer's own (extra=forbid, same bounds): a tab
    # it rejected would be dropped silently by the real extension.
    tab = ADetailerTab.model_validate(_adetailer_tab(p))
    assert (tab.ad_model, tab.ad_confidence, tab.ad_mask_k) == (p.model, p.confidence, p.mask_k)
    assert tab.ad_use_cfg_scale == (p.cfg_scale is not None)
    assert tab.ad_use_steps == (p.steps is not None)
    if p.steps is not None:
        assert tab.ad_steps == p.steps
    assert tab.ad_use_inpaint_width_height == (p.inpaint_width is not None)
    assert tab.ad_use_sampler == (p.sampler is not None or p.scheduler is not None)
    assert tab.ad_mask_min_ratio == p.mask_min_ratio and tab.ad_dilate_erode == p.dilate_erode


# -- presets --------------------------------------------------------------------------------------

PRESET = {
    "preset_data": {
        "txt2img": {
            "model": "sim-xl-photo",
            "vae": "",
            "sampler_name": "DPM++ 2M",
            "scheduler": "Karras",
            "steps": 30,
            "width": 832,
            "height": 1216,
            "negative_prompt": "lowres",
            "hr_checkpoint_name": "x",
        },
        "adetailer": {"adetailer_model": "face_yolov8s.pt", "adetailer_cfg": 5.0},
        "upscale": {"upscaler": "R-ESRGAN 4x+", "upscaling_resize": 1.5},
        "pipeline": {"adetailer_enabled": True, "upscale_enabled": True, "images_per_prompt": 2},
    }
}


def test_a_json_without_prompts_is_a_preset_applied_to_a_typed_prompt(tmp_path: Path) -> None:
    path = write(tmp_path, "portrait", PRESET)
    preset = load_preset(path)
    spec = preset.spec("a lighthouse", negative_prompt="blurry", overrides={"steps": 12})
    assert (spec.prompt, spec.negative_prompt) == ("a lighthouse", "blurry, lowres")
    assert (spec.model, spec.vae, spec.sampler, spec.scheduler) == (
        "sim-xl-photo",
        None,
        "DPM++ 2M",
        "Karras",
    )
    assert (spec.steps, spec.width, spec.height, spec.images) == (12, 832, 1216, 2)
    assert spec.stages() == ["txt2img", "adetailer", "upscale"]
    assert spec.adetailer.face is not None and spec.adetailer.face.cfg_scale == 5.0
    assert spec.metadata["preset"] == "portrait"
    assert spec.metadata["preset_unknown_keys"] == {"preset_data.txt2img.hr_checkpoint_name": "x"}
    assert any("hr_checkpoint_name" in w for w in preset.warnings)
    assert load_preset(tmp_path / "portrait").fields == preset.fields  # NAME works too


def test_load_pack_on_a_preset_says_it_is_a_preset(tmp_path: Path) -> None:
    path = write(tmp_path, "portrait", PRESET)
    with pytest.raises(PackError, match=r"portrait\.json: a preset \(settings without prompts\)"):
        load_pack(path)
    with pytest.raises(PackError, match="a preset"):
        load_pack(tmp_path / "portrait.txt")


def test_stablenew2_flat_presets_and_packs_as_presets(tmp_path: Path) -> None:
    flat = {
        "txt2img": {"steps": 34, "model": "juggernaut", "vae_name": ""},
        "adetailer": {"adetailer_enabled": True, "ad_steps": 8},
        "api": {"timeout": 300},
        "pipeline": {"adetailer_enabled": True},
    }
    preset = load_preset(write(tmp_path, "flat", flat))
    spec = preset.spec("x")
    assert (spec.steps, spec.model, spec.vae) == (34, "juggernaut", None)
    assert spec.adetailer.enabled and spec.adetailer.face is not None
    assert spec.adetailer.face.steps == 8
    assert spec.metadata["preset_unknown_keys"] == {"api": {"timeout": 300}}
    pack = load_preset(write(tmp_path, "pack", PRESET, txt="a row"))
    assert pack.fields["steps"] == 30
    assert any("as a preset only its preset_data is used" in w for w in pack.warnings)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("p.txt", "a row", "a preset is a NAME.json"),
        ("p.json", '{"colour": 1}', "no settings to use as a preset"),
        ("p.json", "[1]", "top level must be an object"),
    ],
)
def test_bad_presets_are_errors_that_say_why(
    tmp_path: Path, name: str, content: str, message: str
) -> None:
    (tmp_path / name).write_text(content)
    with pytest.raises(PackError, match=message):
        load_preset(tmp_path / name)


def test_a_preset_value_that_does_not_validate_names_the_file_and_field(tmp_path: Path) -> None:
    preset = load_preset(write(tmp_path, "p", {"preset_data": {"txt2img": {"steps": 0}}}))
    with pytest.raises(PackError, match=r"p\.json: invalid job spec: steps:"):
        preset.spec("x")


def test_the_pipeline_stage_switch_wins_wherever_it_stands(tmp_path: Path) -> None:
    data = {
        "preset_data": {
            "pipeline": {"adetailer_enabled": True},
            "adetailer": {"adetailer_enabled": False, "ad_model": "face_yolov8s.pt"},
        }
    }
    spec = load_preset(write(tmp_path, "p", data)).spec("x")
    assert spec.adetailer.enabled and spec.stages() == ["txt2img", "adetailer"]
