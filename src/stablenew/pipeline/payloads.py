"""A1111 request payloads built from a JobSpec, one stage and one image at a time (pure)."""

from __future__ import annotations

import base64
import re
from typing import Any

from stablenew.jobs.spec import ADetailerPass, JobSpec, Passthrough
from stablenew.pipeline.settings import PipelineSettings

# `<embedding:X>` is how packs and users name a textual inversion; A1111 triggers it by its bare
# name, weighted as `(X:0.8)`.
EMBEDDING = re.compile(r"<embedding:([^<>:]+)>")


def join_prompt(*parts: str) -> str:
    return ", ".join(p.strip() for p in parts if p and p.strip())


def render(text: str) -> str:
    return EMBEDDING.sub(lambda m: m.group(1).strip(), text)


def prompts(spec: JobSpec, settings: PipelineSettings) -> tuple[str, str]:
    """Global positive text goes first, global negative text last."""
    return (
        render(join_prompt(settings.global_positive, spec.prompt)),
        render(join_prompt(spec.negative_prompt, settings.global_negative)),
    )


def _passthrough(payload: dict[str, Any], stage: Passthrough) -> dict[str, Any]:
    """Extensions and settings overrides, as the user gave them; clip skip already set here
    wins over nothing but the user's own override."""
    if stage.override_settings:
        payload["override_settings"] = {**payload["override_settings"], **stage.override_settings}
    if stage.alwayson_scripts:
        payload["alwayson_scripts"] = {
            **payload.get("alwayson_scripts", {}),
            **stage.alwayson_scripts,
        }
    return payload


def _common(spec: JobSpec, settings: PipelineSettings, seed: int) -> dict[str, Any]:
    positive, negative = prompts(spec, settings)
    payload: dict[str, Any] = {
        "prompt": positive,
        "negative_prompt": negative,
        "seed": seed,
        "subseed": spec.subseed,
        "subseed_strength": spec.subseed_strength,
        "sampler_name": spec.sampler,
        "scheduler": spec.scheduler,
        "steps": spec.steps,
        "cfg_scale": spec.cfg_scale,
        "width": spec.width,
        "height": spec.height,
        "batch_size": 1,
        "n_iter": 1,
        "send_images": True,
        "save_images": False,
        # Sent every time, 1 included: A1111 was seen keeping an earlier request's clip skip
        # (reference §9).
        "override_settings": {"CLIP_stop_at_last_layers": spec.clip_skip},
        "override_settings_restore_afterwards": True,
    }
    return payload


def txt2img(spec: JobSpec, settings: PipelineSettings, seed: int) -> dict[str, Any]:
    payload = _common(spec, settings, seed)
    t = spec.txt2img
    if t.enable_hr:
        payload |= {
            "enable_hr": True,
            "hr_scale": t.hr_scale,
            "hr_upscaler": t.hr_upscaler,
            "hr_second_pass_steps": t.hr_second_pass_steps,
            "denoising_strength": t.hr_denoising_strength,
        }
    if t.refiner_checkpoint:
        payload |= {
            "refiner_checkpoint": t.refiner_checkpoint,
            "refiner_switch_at": t.refiner_switch_at,
        }
    return _passthrough(payload, t)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def img2img(
    spec: JobSpec, settings: PipelineSettings, seed: int, image: bytes, size: tuple[int, int]
) -> dict[str, Any]:
    payload = _common(spec, settings, seed)
    i = spec.img2img
    payload |= {
        "init_images": [b64(image)],
        "denoising_strength": i.denoising_strength,
        "width": size[0],
        "height": size[1],
    }
    if i.steps is not None:
        payload["steps"] = i.steps
    if i.cfg_scale is not None:
        payload["cfg_scale"] = i.cfg_scale
    return _passthrough(payload, i)


def _adetailer_tab(p: ADetailerPass) -> dict[str, Any]:
    """One ADetailer tab dict: the core arguments always, the others only when they differ.

    ADetailer validates each dict with `extra=forbid` and silently drops a dict with a key it
    does not know, so leaving its defaults out keeps a pass working on older ADetailer releases
    (which lack e.g. `ad_mask_k` and `ad_mask_filter_method`). Overrides go with their switch.
    """
    tab: dict[str, Any] = {
        "ad_model": p.model,
        "ad_confidence": p.confidence,
        "ad_denoising_strength": p.denoising_strength,
        "ad_prompt": render(p.prompt),
        "ad_negative_prompt": render(p.negative_prompt),
        "ad_mask_blur": p.mask_blur,
        "ad_inpaint_only_masked": p.inpaint_only_masked,
        "ad_inpaint_only_masked_padding": p.inpaint_padding,
    }
    unless_default = {
        "ad_model_classes": (p.model_classes, ""),
        "ad_mask_filter_method": (p.mask_filter_method, "Area"),
        "ad_mask_k": (p.mask_k, 0),
        "ad_mask_min_ratio": (p.mask_min_ratio, 0.0),
        "ad_mask_max_ratio": (p.mask_max_ratio, 1.0),
        "ad_dilate_erode": (p.dilate_erode, 4),
        "ad_x_offset": (p.x_offset, 0),
        "ad_y_offset": (p.y_offset, 0),
        "ad_mask_merge_invert": (p.mask_merge_invert, "None"),
        "ad_restore_face": (p.restore_face, False),
        "ad_controlnet_model": (p.controlnet_model, "None"),
        "ad_controlnet_module": (p.controlnet_module, "None"),
        "ad_controlnet_weight": (p.controlnet_weight, 1.0),
        "ad_controlnet_guidance_start": (p.controlnet_guidance_start, 0.0),
        "ad_controlnet_guidance_end": (p.controlnet_guidance_end, 1.0),
    }
    tab |= {key: value for key, (value, default) in unless_default.items() if value != default}
    if p.inpaint_width is not None and p.inpaint_height is not None:
        tab |= {
            "ad_use_inpaint_width_height": True,
            "ad_inpaint_width": p.inpaint_width,
            "ad_inpaint_height": p.inpaint_height,
        }
    switched = {
        "steps": p.steps,
        "cfg_scale": p.cfg_scale,
        "checkpoint": p.checkpoint,
        "vae": p.vae,
        "noise_multiplier": p.noise_multiplier,
        "clip_skip": p.clip_skip,
    }
    for name, value in switched.items():
        if value is not None:
            tab |= {f"ad_use_{name}": True, f"ad_{name}": value}
    if p.sampler is not None or p.scheduler is not None:
        tab |= {
            "ad_use_sampler": True,
            "ad_sampler": p.sampler or "Use same sampler",
            "ad_scheduler": p.scheduler or "Use same scheduler",
        }
    return tab


def adetailer(
    spec: JobSpec, settings: PipelineSettings, seed: int, image: bytes, size: tuple[int, int]
) -> dict[str, Any]:
    """img2img that only runs ADetailer: args are [enable, skip img2img, one dict per pass]."""
    payload = _common(spec, settings, seed)
    tabs = [_adetailer_tab(p) for p in spec.adetailer.passes()]
    payload |= {
        "init_images": [b64(image)],
        "denoising_strength": 0.0,
        "width": size[0],
        "height": size[1],
        "alwayson_scripts": {"ADetailer": {"args": [True, True, *tabs]}},
    }
    return payload


def upscale_extra(image: bytes, upscaler: str, target: tuple[int, int]) -> dict[str, Any]:
    """extra-single-image to an exact size (resize_mode 1), so the size guard's target holds."""
    return {
        "image": b64(image),
        "resize_mode": 1,
        "upscaling_resize_w": target[0],
        "upscaling_resize_h": target[1],
        "upscaling_crop": True,
        "upscaler_1": upscaler,
    }


def upscale_img2img(
    spec: JobSpec, settings: PipelineSettings, seed: int, image: bytes, target: tuple[int, int]
) -> dict[str, Any]:
    payload = _common(spec, settings, seed)
    payload |= {
        "init_images": [b64(image)],
        "denoising_strength": spec.upscale.denoising_strength,
        "width": target[0],
        "height": target[1],
    }
    return payload
