"""A1111 request bodies as JobSpecs: what the A1111-shaped and agent-scheduler doors queue.

An unmodified `txt2img` or `img2img` body becomes one job that asks the backend for the same
thing, with A1111's own defaults where the body says nothing (50 steps, Euler, 512x512, hires
denoise 0.75), `batch_size` x `n_iter` images, and `override_settings.sd_model_checkpoint` as
the job's model. A field StableNew cannot honour is never dropped in silence: it is kept in the
job's metadata (`metadata.a1111.request`) and named in the answer's warnings. A field left at
A1111's default asks for nothing, so it is kept without a warning. Inpainting (a `mask`) and
init images given as URLs are refused: the job would not be the one asked for.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
from dataclasses import dataclass, field
from typing import Any, Literal

from PIL import Image, ImageOps, UnidentifiedImageError

from stablenew.errors import InputError
from stablenew.jobs.input_store import why_not
from stablenew.jobs.spec import JobSpec, build_spec

Endpoint = Literal["txt2img", "img2img"]

# Fields both endpoints share, with A1111's defaults (reference §1.2): present at this value
# (or null), a field we do not model asks for nothing.
COMMON_DEFAULTS: dict[str, Any] = {
    "styles": [],
    "seed_resize_from_h": -1,
    "seed_resize_from_w": -1,
    "restore_faces": False,
    "tiling": False,
    "do_not_save_samples": False,
    "do_not_save_grid": False,
    "send_images": True,
    "save_images": False,
    "eta": None,
    "s_min_uncond": None,
    "s_churn": None,
    "s_tmax": None,
    "s_tmin": None,
    "s_noise": None,
    "override_settings_restore_afterwards": True,
    "disable_extra_networks": False,
    "script_name": None,
    "script_args": [],
    "force_task_id": None,
    "infotext": None,
    "firstpass_image": None,
    "comments": None,
    "extra_generation_params": None,
}
TXT2IMG_DEFAULTS: dict[str, Any] = {
    "firstphase_width": 0,
    "firstphase_height": 0,
    "hr_resize_x": 0,
    "hr_resize_y": 0,
    "hr_checkpoint_name": None,
    "hr_sampler_name": None,
    "hr_scheduler": None,
    "hr_prompt": "",
    "hr_negative_prompt": "",
    "hr_additional_modules": None,
}
IMG2IMG_DEFAULTS: dict[str, Any] = {
    "mask_blur_x": 4,
    "mask_blur_y": 4,
    "mask_blur": None,
    "mask_round": True,
    "inpainting_fill": 0,
    "inpaint_full_res": True,
    "inpaint_full_res_padding": 0,
    "inpainting_mask_invert": 0,
    "initial_noise_multiplier": None,
    "include_init_images": False,
    "image_cfg_scale": None,
    "latent_mask": None,
}
# Fields this module reads (the rest are kept and checked against the defaults above).
MAPPED = {
    "prompt",
    "negative_prompt",
    "seed",
    "subseed",
    "subseed_strength",
    "sampler_name",
    "sampler_index",
    "scheduler",
    "steps",
    "cfg_scale",
    "width",
    "height",
    "batch_size",
    "n_iter",
    "denoising_strength",
    "override_settings",
    "alwayson_scripts",
    "refiner_checkpoint",
    "refiner_switch_at",
}
TXT2IMG_MAPPED = {"enable_hr", "hr_scale", "hr_upscaler", "hr_second_pass_steps"}
IMG2IMG_MAPPED = {"init_images", "mask", "resize_mode"}
# Settings overrides that are JobSpec fields of their own.
MODEL_SETTING, VAE_SETTING, CLIP_SETTING = (
    "sd_model_checkpoint",
    "sd_vae",
    "CLIP_stop_at_last_layers",
)
# ADetailer tab keys a JobSpec pass holds (the rest are named in a warning)
AD_KEYS = {
    "ad_model": "model",
    "ad_confidence": "confidence",
    "ad_denoising_strength": "denoising_strength",
    "ad_prompt": "prompt",
    "ad_negative_prompt": "negative_prompt",
    "ad_mask_blur": "mask_blur",
    "ad_inpaint_only_masked_padding": "inpaint_padding",
}
# ADetailer's defaults for what a JobSpec pass does not hold: at these values they ask nothing
AD_DEFAULTS: dict[str, Any] = {
    "ad_tab_enable": True,
    "ad_inpaint_only_masked": True,
    "ad_mask_k": 0,
    "ad_mask_k_largest": 0,
    "ad_mask_min_ratio": 0.0,
    "ad_mask_max_ratio": 1.0,
    "ad_dilate_erode": 4,
    "ad_x_offset": 0,
    "ad_y_offset": 0,
    "ad_mask_merge_invert": "None",
    "ad_mask_filter_method": "Area",
    "ad_restore_face": False,
    "ad_controlnet_model": "None",
}
# Values that only count when their `ad_use_*` flag is on (the flag is what gets a warning)
AD_FLAGGED = {
    "ad_steps",
    "ad_inpaint_width",
    "ad_inpaint_height",
    "ad_cfg_scale",
    "ad_checkpoint",
    "ad_vae",
    "ad_sampler",
    "ad_scheduler",
    "ad_noise_multiplier",
    "ad_clip_skip",
}
MAX_INIT_IMAGES = 16


@dataclass
class Translation:
    spec: JobSpec
    warnings: list[str] = field(default_factory=list)
    inputs: list[bytes] = field(default_factory=list)  # img2img: the init images to keep


def translate(
    endpoint: Endpoint,
    body: dict[str, Any],
    *,
    extra_metadata: dict[str, Any] | None = None,
    model: str | None = None,
    vae: str | None = None,
) -> Translation:
    """One JobSpec for an A1111 request body (and the init images it starts from)."""
    warnings: list[str] = []
    g = _Getter(body)
    images = g.whole("batch_size", 1) * g.whole("n_iter", 1)
    settings = dict(g.mapping("override_settings"))
    stage: dict[str, Any] = {}
    data: dict[str, Any] = {
        "prompt": g.text("prompt", ""),
        "negative_prompt": g.text("negative_prompt", ""),
        "seed": g.whole("seed", -1),
        "subseed": g.whole("subseed", -1),
        "subseed_strength": g.number("subseed_strength", 0.0),
        "sampler": g.text("sampler_name", None) or g.text("sampler_index", "Euler"),
        "scheduler": g.text("scheduler", None) or "Automatic",
        "steps": g.whole("steps", 50),
        "cfg_scale": g.number("cfg_scale", 7.0),
        "width": _multiple_of_8("width", g.whole("width", 512), warnings),
        "height": _multiple_of_8("height", g.whole("height", 512), warnings),
        "images": images,
        "provenance": {"source": "api"},
    }
    model = model or _setting(settings, MODEL_SETTING)
    vae = vae or _setting(settings, VAE_SETTING)
    settings.pop(MODEL_SETTING, None)
    settings.pop(VAE_SETTING, None)
    if model:
        data["model"] = model
    if vae:
        data["vae"] = vae
    if CLIP_SETTING in settings:
        data["clip_skip"] = settings.pop(CLIP_SETTING)
    scripts = dict(g.mapping("alwayson_scripts"))
    adetailer = _pop_adetailer(scripts, warnings)
    if adetailer is not None:
        data["adetailer"] = adetailer
    stage["override_settings"] = settings
    stage["alwayson_scripts"] = scripts
    if g.get("refiner_checkpoint"):
        stage["refiner_checkpoint"] = g.text("refiner_checkpoint", None)
        if g.get("refiner_switch_at") is not None:
            stage["refiner_switch_at"] = g.number("refiner_switch_at", 0.8)

    inputs: list[bytes] = []
    if endpoint == "txt2img":
        if g.get("enable_hr"):
            stage |= {
                "enable_hr": True,
                "hr_scale": g.number("hr_scale", 2.0),
                "hr_upscaler": g.text("hr_upscaler", None) or "Latent",
                "hr_second_pass_steps": g.whole("hr_second_pass_steps", 0),
                "hr_denoising_strength": g.number("denoising_strength", 0.75),
            }
        data["txt2img"] = stage
        known = MAPPED | TXT2IMG_MAPPED | COMMON_DEFAULTS.keys() | TXT2IMG_DEFAULTS.keys()
        defaults = COMMON_DEFAULTS | TXT2IMG_DEFAULTS
    else:
        if g.get("mask") not in (None, ""):
            raise InputError("mask: inpainting is not supported by StableNew; nothing was queued")
        refiner = {
            k: stage.pop(k) for k in ("refiner_checkpoint", "refiner_switch_at") if k in stage
        }
        if refiner:
            warnings.append("refiner_checkpoint: img2img jobs run without a refiner")
        inits = _init_images(g.get("init_images"))
        size = (data["width"], data["height"])
        mode = g.whole("resize_mode", 0)
        if mode not in (0, 1):
            warnings.append(
                f"resize_mode: {mode} is not supported; the init image is resized (mode 0)"
            )
        inputs = [_resized(image, size, crop=mode == 1) for image in inits]
        data["inputs"] = [
            {
                "sha256": hashlib.sha256(inputs[i % len(inputs)]).hexdigest(),
                "name": f"init_image_{i % len(inputs) + 1}.png",
                "size": size,
            }
            for i in range(images)
        ]
        data["img2img"] = {
            **stage,
            "enabled": True,
            "denoising_strength": g.number("denoising_strength", 0.75),
        }
        known = MAPPED | IMG2IMG_MAPPED | COMMON_DEFAULTS.keys() | IMG2IMG_DEFAULTS.keys()
        defaults = COMMON_DEFAULTS | IMG2IMG_DEFAULTS

    kept = {k: v for k, v in body.items() if k not in ("init_images", "mask")}
    unmapped: list[str] = []
    for name, value in body.items():
        if name in MAPPED or name in TXT2IMG_MAPPED or name in IMG2IMG_MAPPED:
            continue
        if name not in known:
            unmapped.append(name)
            warnings.append(f"{name}: not an A1111 {endpoint} field; kept in the job's metadata")
        elif value is not None and value != defaults.get(name):
            unmapped.append(name)
            warnings.append(
                f"{name}: {_short(value)} is not supported by StableNew; kept in the job's"
                " metadata, the job runs without it"
            )
    a1111: dict[str, Any] = {"endpoint": endpoint, "request": kept, "unmapped": unmapped}
    if inputs:
        a1111["init_images"] = len(inputs)
    data["metadata"] = {"a1111": a1111, **(extra_metadata or {})}
    return Translation(build_spec(data), warnings, inputs)


class _Getter:
    """Typed reads of an A1111 body; a wrong type is an InputError naming the field."""

    def __init__(self, body: dict[str, Any]) -> None:
        self.body = body

    def get(self, name: str) -> Any:
        return self.body.get(name)

    def text(self, name: str, default: str | None) -> Any:
        value = self.body.get(name)
        if value is None:
            return default
        if not isinstance(value, str):
            raise InputError(f"{name}: expected text, got {_short(value)}")
        return value

    def whole(self, name: str, default: int) -> int:
        value = self.body.get(name)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
            raise InputError(f"{name}: expected a whole number, got {_short(value)}")
        return int(value)

    def number(self, name: str, default: float) -> float:
        value = self.body.get(name)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InputError(f"{name}: expected a number, got {_short(value)}")
        return float(value)

    def mapping(self, name: str) -> dict[str, Any]:
        value = self.body.get(name)
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise InputError(f"{name}: expected an object, got {_short(value)}")
        return value


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _setting(settings: dict[str, Any], name: str) -> str | None:
    value = settings.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InputError(f"override_settings.{name}: expected a name, got {_short(value)}")
    return value


def _multiple_of_8(name: str, value: int, warnings: list[str]) -> int:
    """A1111 rounds a size down to a multiple of 8 (the latent is size // 8): so do we."""
    if value % 8 and value >= 64:
        warnings.append(f"{name}: {value} -> {value // 8 * 8} (A1111 rounds down to 8 too)")
        return value // 8 * 8
    return value


def _pop_adetailer(scripts: dict[str, Any], warnings: list[str]) -> dict[str, Any] | None:
    """ADetailer is a stage of its own in a JobSpec: its first two tabs become the face and
    hands passes."""
    key = next((k for k in scripts if k.strip().lower() == "adetailer"), None)
    if key is None:
        return None
    body = scripts.pop(key)
    args = body.get("args", []) if isinstance(body, dict) else None
    if not isinstance(args, list):
        raise InputError(f"alwayson_scripts.{key}.args: expected a list, as A1111 expects")
    flags = [a for a in args[:2] if isinstance(a, bool)]
    tabs = [a for a in args if isinstance(a, dict)]
    if flags and not flags[0]:
        return {"enabled": False}
    passes: list[dict[str, Any]] = []
    for n, tab in enumerate(tabs):
        if tab.get("ad_model", "None") == "None" or tab.get("ad_tab_enable") is False:
            continue
        one = {ours: tab[theirs] for theirs, ours in AD_KEYS.items() if theirs in tab}
        if tab.get("ad_use_steps") and "ad_steps" in tab:
            one["steps"] = tab["ad_steps"]
        ignored = _ad_ignored(tab)
        if ignored:
            warnings.append(
                f"alwayson_scripts.{key} tab {n + 1}: {', '.join(ignored)} not supported;"
                " kept in the job's metadata"
            )
        passes.append(one)
    if len(passes) > 2:
        warnings.append(f"alwayson_scripts.{key}: only the first two tabs run (face, hands)")
    if not passes:
        return {"enabled": False}
    return {
        "enabled": True,
        "face": passes[0],
        "hands": passes[1] if len(passes) > 1 else None,
    }


def _ad_ignored(tab: dict[str, Any]) -> list[str]:
    """The keys of an ADetailer tab that ask for something a JobSpec pass cannot do."""
    out: list[str] = []
    for key, value in tab.items():
        if key in AD_KEYS or key in AD_FLAGGED or key == "ad_use_steps":
            continue
        if key.startswith("ad_use_"):
            if value:
                out.append(key)
        elif key not in AD_DEFAULTS or AD_DEFAULTS[key] != value:
            out.append(key)
    return sorted(out)


def _init_images(value: Any) -> list[bytes]:
    if not value:
        raise InputError("init_images: an img2img request needs at least one image")
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InputError("init_images: expected a list of base64 images")
    if len(value) > MAX_INIT_IMAGES:
        raise InputError(f"init_images: at most {MAX_INIT_IMAGES} images per request")
    out: list[bytes] = []
    for n, text in enumerate(value, start=1):
        if text.startswith(("http://", "https://")):
            raise InputError(
                f"init_images[{n}]: StableNew does not fetch URLs; send the image as base64"
            )
        encoded = text.split(",", 1)[1] if text.startswith("data:") else text
        try:
            out.append(base64.b64decode(encoded, validate=True))
        except (binascii.Error, ValueError) as exc:
            raise InputError(f"init_images[{n}]: not base64 ({exc})") from exc
    return out


def _resized(data: bytes, size: tuple[int, int], crop: bool) -> bytes:
    """The init image at the requested size, as A1111 prepares it (0: resize, 1: crop and
    resize), as a PNG: the input store keeps what the job will send."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            picture = image.convert("RGB")
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise InputError(f"init_images: not an image StableNew can read ({why_not(exc)})") from exc
    if picture.size != size:
        if crop:
            picture = ImageOps.fit(picture, size, Image.Resampling.LANCZOS)
        else:
            picture = picture.resize(size, Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()
