"""Presets: the per-stage settings of a NAME.json, as JobSpec fields.

A pack's `preset_data` and a preset file are read by the same mapping, so a preset applied to a
typed prompt gives the settings that pack would have given. Real files carry years of spellings
(StableNew2 wrote `adetailer_cfg`, `ad_cfg_scale` and `mask_k_largest` side by side), so each
setting is read under every name users' files use; what no name matches is kept in each job's
metadata and reported once, never a crash.

A preset file is either a pack JSON without prompts (`preset_data`, no `.txt` beside it and no
`pack_data.slots`) or StableNew2's flat form (`txt2img`, `adetailer`, ... at the top level).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stablenew.errors import PackError, SpecError
from stablenew.jobs.spec import JobSpec, build_spec


def read_text(path: Path) -> str:
    """A pack, preset or wildcard file as users save it: UTF-8, a Windows BOM dropped."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise PackError(f"{path}: cannot read it: {exc.strerror or exc}") from exc
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        utf16 = raw[:2] in (b"\xff\xfe", b"\xfe\xff")
        hint = "it looks like UTF-16" if utf16 else f"byte {exc.start} is not UTF-8"
        raise PackError(f"{path}: not UTF-8 text ({hint}); save it as UTF-8") from exc
    if "\x00" in text:  # valid UTF-8, but no prompt has one: a binary file picked by mistake
        line = text.count("\n", 0, text.index("\x00")) + 1
        raise PackError(f"{path}: line {line} has a NUL byte: is it a text file?")
    return text


def read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(read_text(path))
    except json.JSONDecodeError as exc:
        raise PackError(f"{path}:{exc.lineno}: invalid JSON: {exc.msg}") from exc
    if not isinstance(data, dict):
        raise PackError(f"{path}: the top level must be an object")
    return data


STAGE_KEYS: dict[str, dict[str, str]] = {
    "txt2img": {
        "model": "model",
        "model_name": "model",
        "vae": "vae",
        "vae_name": "vae",
        "sampler_name": "sampler",
        "sampler": "sampler",
        "scheduler": "scheduler",
        "steps": "steps",
        "cfg_scale": "cfg_scale",
        "width": "width",
        "height": "height",
        "seed": "seed",
        "clip_skip": "clip_skip",
        "negative_prompt": "negative_prompt",
        "enable_hr": "txt2img.enable_hr",
        "hr_scale": "txt2img.hr_scale",
        "hr_upscaler": "txt2img.hr_upscaler",
        "denoising_strength": "txt2img.hr_denoising_strength",
        "hr_second_pass_steps": "txt2img.hr_second_pass_steps",
        "refiner_checkpoint": "txt2img.refiner_checkpoint",
        "refiner_switch_at": "txt2img.refiner_switch_at",
    },
    "img2img": {
        "steps": "img2img.steps",
        "cfg_scale": "img2img.cfg_scale",
        "denoising_strength": "img2img.denoising_strength",
        "enabled": "img2img.enabled",
    },
    "upscale": {
        "upscaler": "upscale.upscaler",
        "upscale_mode": "upscale.mode",
        "upscaling_resize": "upscale.factor",
        "upscale_factor": "upscale.factor",
        "tile_size": "upscale.tile_size",
        "enabled": "upscale.enabled",
        "denoising_strength": "upscale.denoising_strength",
    },
    "pipeline": {
        "images_per_prompt": "images",
        "txt2img_enabled": "",
        "img2img_enabled": "img2img.enabled",
        "adetailer_enabled": "adetailer.enabled",
        "upscale_enabled": "upscale.enabled",
    },
}
SECTIONS = (*STAGE_KEYS, "adetailer")
UPSCALE_MODES = {"single": "extra", "extra": "extra", "extras": "extra", "img2img": "img2img"}
IGNORED_UI_KEYS = {"show_preview"}
# An empty model or VAE in a real file means "whatever the backend has loaded".
EMPTY_MEANS_UNSET = {"model", "vae", "txt2img.refiner_checkpoint"}

# -- ADetailer ------------------------------------------------------------------------------------

# ADetailer's arguments (`ad_<name>`, adetailer/args.py) -> ADetailerPass fields.
AD_ARGS: dict[str, str] = {
    "model": "model",
    "model_classes": "model_classes",
    "prompt": "prompt",
    "negative_prompt": "negative_prompt",
    "confidence": "confidence",
    "mask_filter_method": "mask_filter_method",
    "mask_k": "mask_k",
    "mask_min_ratio": "mask_min_ratio",
    "mask_max_ratio": "mask_max_ratio",
    "dilate_erode": "dilate_erode",
    "x_offset": "x_offset",
    "y_offset": "y_offset",
    "mask_merge_invert": "mask_merge_invert",
    "mask_blur": "mask_blur",
    "denoising_strength": "denoising_strength",
    "inpaint_only_masked": "inpaint_only_masked",
    "inpaint_only_masked_padding": "inpaint_padding",
    "inpaint_width": "inpaint_width",
    "inpaint_height": "inpaint_height",
    "steps": "steps",
    "cfg_scale": "cfg_scale",
    "checkpoint": "checkpoint",
    "vae": "vae",
    "sampler": "sampler",
    "scheduler": "scheduler",
    "noise_multiplier": "noise_multiplier",
    "clip_skip": "clip_skip",
    "restore_face": "restore_face",
    "controlnet_model": "controlnet_model",
    "controlnet_module": "controlnet_module",
    "controlnet_weight": "controlnet_weight",
    "controlnet_guidance_start": "controlnet_guidance_start",
    "controlnet_guidance_end": "controlnet_guidance_end",
}
# `ad_use_<switch>` and the arguments it turns on, with ADetailer's value for one left unset.
AD_SWITCHES: dict[str, dict[str, Any]] = {
    "use_inpaint_width_height": {"inpaint_width": 512, "inpaint_height": 512},
    "use_steps": {"steps": 28},
    "use_cfg_scale": {"cfg_scale": 7.0},
    "use_checkpoint": {"checkpoint": None},
    "use_vae": {"vae": None},
    "use_sampler": {"sampler": "DPM++ 2M Karras", "scheduler": None},
    "use_noise_multiplier": {"noise_multiplier": 1.0},
    "use_clip_skip": {"clip_skip": 1},
}
# Other spellings of an argument, after the prefix: ADetailer's older names and StableNew2's.
AD_ALIASES = {
    "mask_k_largest": "mask_k",  # ADetailer before 24.9
    "tap_enable": "tab_enable",  # ADetailer's old typo
    "enabled": "tab_enable",  # ad_hands_enabled
    "denoise": "denoising_strength",
    "cfg": "cfg_scale",
    "padding": "inpaint_only_masked_padding",
    "checkpoint_model": "checkpoint",
    "mask_dilate_erode": "dilate_erode",
    "mask_merge_mode": "mask_merge_invert",
}
# StableNew2's names for what ADetailer does under another argument: its mask feather is the
# inpaint mask's blur (ADetailer has no `ad_mask_feather`; a tab with it would be dropped whole).
# They rank after every spelling of the argument itself, so an explicit `ad_mask_blur` wins.
AD_STAND_INS = {"mask_feather": "mask_blur"}
# (prefix, pass, rank): the lowest rank wins when one argument is written several ways;
# ADetailer's own spelling first. Hands prefixes come first because `ad_` also matches them.
AD_PREFIXES = (
    ("ad_hands_", "hands", 0),
    ("adetailer_hands_", "hands", 1),
    ("hands_", "hands", 2),
    ("ad_", "face", 0),
    ("adetailer_", "face", 1),
    ("face_", "face", 2),
    ("", "face", 3),
)
# The stage switch, by rank; and the pass switches StableNew2 wrote.
AD_STAGE_SWITCHES = {"ad_enabled": 0, "adetailer_enabled": 1, "enabled": 2}
AD_PASS_SWITCHES = {"enable_face_pass": ("face", "tab_enable", 1)}
AD_PASS_SWITCHES["enable_hands_pass"] = ("hands", "tab_enable", 1)
AD_DEFAULT_MODELS = {"face": "face_yolov8n.pt", "hands": "hand_yolov8n.pt"}
# Values that mean "the job's own" for an override ADetailer applies behind a switch.
AD_SAME = {"", "inherit", "none", "use same checkpoint", "use same vae", "use same sampler"}
AD_SAME |= {"use same scheduler"}
AD_CHOICES = {
    "mask_filter_method": ("Area", "Confidence"),
    "mask_merge_invert": ("None", "Merge", "Merge and Invert"),
}


def _ad_argument(key: str) -> tuple[str, str, int] | None:
    """`adetailer_hands_cfg` -> ("hands", "cfg_scale", 1); None when no spelling matches."""
    for prefix, which, rank in AD_PREFIXES:
        if not key.startswith(prefix):
            continue
        name = AD_ALIASES.get(key[len(prefix) :], key[len(prefix) :])
        if name in AD_STAND_INS:
            return which, AD_STAND_INS[name], rank + len(AD_PREFIXES)
        if name in AD_ARGS or name in AD_SWITCHES or name == "tab_enable":
            return which, name, rank
    return None


def _ad_value(name: str, value: Any) -> Any:
    if name in ("checkpoint", "vae", "sampler", "scheduler") and isinstance(value, str):
        same = value.strip().lower() in AD_SAME and not (name == "vae" and value == "None")
        return None if same else value
    for choice in AD_CHOICES.get(name, ()):
        if isinstance(value, str) and value.lower() == choice.lower():
            return choice
    return value


def adetailer_fields(
    section: dict[str, Any], where: str, unknown: dict[str, Any], warnings: list[str]
) -> dict[str, Any]:
    """`preset_data.adetailer` as `adetailer` JobSpec fields: the stage switch and both passes.

    A value goes in only behind its switch: `ad_use_cfg_scale: false` leaves the pass on the
    job's CFG whatever `ad_cfg_scale` says, as ADetailer would. A pass turned off
    (`enable_hands_pass: false`, `ad_tab_enable: false`) is no pass.
    """
    out: dict[str, Any] = {}
    stage_rank = len(AD_STAGE_SWITCHES)
    chosen: dict[tuple[str, str], tuple[int, str, Any]] = {}
    overruled: list[str] = []
    for key, value in section.items():
        if key in IGNORED_UI_KEYS or value is None:
            continue
        if key in AD_STAGE_SWITCHES:
            if AD_STAGE_SWITCHES[key] < stage_rank:
                out["enabled"], stage_rank = value, AD_STAGE_SWITCHES[key]
            continue
        found = AD_PASS_SWITCHES.get(key) or _ad_argument(key)
        if found is None:
            unknown[f"{where}.{key}"] = value
            continue
        which, name, rank = found
        previous = chosen.get((which, name))
        if previous is None or rank < previous[0]:
            if previous is not None and previous[2] != value:
                overruled.append(f"{key}={value!r} over {previous[1]}={previous[2]!r}")
            chosen[(which, name)] = (rank, key, value)
        elif previous[2] != value:
            overruled.append(f"{previous[1]}={previous[2]!r} over {key}={value!r}")
    if overruled:
        warnings.append(
            f"{where}: one setting written twice with different values; used "
            + "; ".join(overruled)
        )
    for which in ("face", "hands"):
        args = {name: v for (w, name), (_, _, v) in chosen.items() if w == which}
        enabled = args.pop("tab_enable", None)
        if enabled is False:
            out[which] = None
        elif args or enabled:
            out[which] = _pass_fields(which, args)
    return out


def _pass_fields(which: str, args: dict[str, Any]) -> dict[str, Any]:
    fields: dict[str, Any] = {"model": AD_DEFAULT_MODELS[which]}
    switched = {name for names in AD_SWITCHES.values() for name in names}
    for switch, names in AD_SWITCHES.items():
        state = args.get(switch)
        if state is False:
            continue
        for name, default in names.items():
            if name in args:
                fields[AD_ARGS[name]] = _ad_value(name, args[name])
            elif state is True and default is not None:
                fields[AD_ARGS[name]] = default
    for name, value in args.items():
        if name in AD_ARGS and name not in switched:
            fields[AD_ARGS[name]] = _ad_value(name, value)
    return fields


# -- sections -------------------------------------------------------------------------------------


def _set(target: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, last = dotted.split(".")
    for part in parents:
        target = target.setdefault(part, {})
    target[last] = value


def merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """`extra` over `base`, nested dicts merged key by key."""
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def preset_fields(
    raw: Any, path: Path, unknown: dict[str, Any], warnings: list[str], prefix: str = "preset_data"
) -> dict[str, Any]:
    """The sections of `preset_data` (or of a flat preset) as JobSpec fields."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise PackError(f"{path}: {prefix} must be an object")
    fields: dict[str, Any] = {}
    # The pipeline's stage switches are the last word, wherever the section stands in the file.
    for section, values in sorted(raw.items(), key=lambda item: item[0] == "pipeline"):
        where = f"{prefix}.{section}" if prefix else section
        if section == "adetailer" and isinstance(values, dict):
            fields = merge(
                fields, {"adetailer": adetailer_fields(values, where, unknown, warnings)}
            )
            continue
        keys = STAGE_KEYS.get(section)
        if keys is None or not isinstance(values, dict):
            unknown[where] = values
            continue
        for key, value in values.items():
            if key in IGNORED_UI_KEYS:
                continue
            target = keys.get(key)
            if target is None:
                unknown[f"{where}.{key}"] = value
            elif target in EMPTY_MEANS_UNSET and value in ("", None):
                continue
            elif target:
                if target == "upscale.mode":
                    if str(value) not in UPSCALE_MODES:
                        raise PackError(
                            f"{path}: {where}.upscale_mode {value!r}: "
                            f"use one of {', '.join(UPSCALE_MODES)}"
                        )
                    value = UPSCALE_MODES[str(value)]
                _set(fields, target, value)
    return fields


def unknown_warning(path: Path | None, unknown: dict[str, Any]) -> str:
    return f"{path}: unknown keys kept in each job's metadata: {', '.join(sorted(unknown))}"


# -- preset files ---------------------------------------------------------------------------------


@dataclass
class Preset:
    """Settings without prompts, applied to a prompt typed by the user."""

    name: str
    path: Path
    fields: dict[str, Any]  # JobSpec fields, as a pack's presets give them
    unknown: dict[str, Any] = field(default_factory=dict)  # kept in each job's metadata
    warnings: list[str] = field(default_factory=list)

    def spec(
        self,
        prompt: str,
        *,
        negative_prompt: str = "",
        overrides: dict[str, Any] | None = None,
    ) -> JobSpec:
        """`prompt` with this preset's settings; overrides (the command line's) beat them.

        The preset's negative text follows the typed one, as a pack's does a row's.
        """
        data = merge(self.fields, overrides or {})
        preset_negative = str(self.fields.get("negative_prompt") or "")
        data["prompt"] = prompt
        data["negative_prompt"] = ", ".join(p for p in (negative_prompt, preset_negative) if p)
        metadata: dict[str, Any] = {"preset": self.name}
        if self.unknown:
            metadata["preset_unknown_keys"] = self.unknown
        data["metadata"] = merge(metadata, data.get("metadata") or {})
        try:
            return build_spec(data)
        except SpecError as exc:
            raise PackError(f"{self.path}: {exc}") from exc


def is_preset(data: dict[str, Any], txt: Path | None) -> bool:
    """Settings with no prompts: no `.txt` beside it, no `pack_data.slots`, but settings."""
    pack_data = data.get("pack_data")
    slots = pack_data.get("slots") if isinstance(pack_data, dict) else None
    settings = "preset_data" in data or any(section in data for section in SECTIONS)
    return txt is None and not slots and settings


def load_preset(path: Path) -> Preset:
    """NAME.json as a preset; a pack's JSON works too (its prompts are then not used)."""
    js = path if path.suffix == ".json" else path.with_suffix(".json")
    if path.suffix not in ("", ".json") or not js.is_file():
        raise PackError(f"{path}: no such preset (a preset is a NAME.json file)")
    data = read_json(js)
    unknown: dict[str, Any] = {}
    warnings: list[str] = []
    if "preset_data" in data:
        fields = preset_fields(data["preset_data"], js, unknown, warnings)
        for key, value in data.items():
            if key not in ("preset_data", "pack_data"):
                unknown[key] = value
        txt = js.with_suffix(".txt")
        if not is_preset(data, txt if txt.is_file() else None):
            warnings.append(f"{js}: a pack; as a preset only its preset_data is used")
    elif any(section in data for section in SECTIONS):
        fields = preset_fields(data, js, unknown, warnings, prefix="")
    else:
        raise PackError(
            f"{js}: no settings to use as a preset: expected preset_data, or sections "
            f"such as {', '.join(SECTIONS)}"
        )
    if unknown:
        warnings.append(unknown_warning(js, unknown))
    pack_data = data.get("pack_data")
    name = pack_data.get("name") if isinstance(pack_data, dict) else None
    return Preset(str(name or js.stem), js, fields, unknown, warnings)
