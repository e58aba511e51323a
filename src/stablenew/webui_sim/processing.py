"""The work itself: txt2img, img2img (with ADetailer) and extras, step by step.

Each class turns a validated request into images, reporting every sampling step (or upscale
tile) to the runner's control, which may answer SKIP or INTERRUPT as A1111's sampler loop does.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, replace
from typing import Any

from PIL import Image

from stablenew.webui_sim import catalog
from stablenew.webui_sim.images import (
    Preview,
    adetailer_edit,
    blend_toward,
    count_tiles,
    decode_image,
    detected_region,
    infotext,
    model_pass,
    partly_sampled,
    synthesize,
)
from stablenew.webui_sim.models import (
    ADetailerTab,
    ExtrasSingleImageRequest,
    GenerationRequest,
    Img2ImgRequest,
    Txt2ImgRequest,
)
from stablenew.webui_sim.runner import Signal, StepControl

MAX_SIDE = 4096
MAX_PIXELS = 16_000_000


class ApiError(Exception):
    """An error A1111's api_middleware would render as `{error, detail, body, errors}`."""

    def __init__(self, status_code: int, detail: str, error: str = "HTTPException") -> None:
        super().__init__(f"{status_code}: {detail}" if error == "HTTPException" else detail)
        self.status_code = status_code
        self.detail = detail
        self.error = error


@dataclass(frozen=True)
class Speed:
    step_ms: float = 0.0
    upscale_ms_per_mp: float = 0.0


@dataclass
class Processed:
    images: list[Image.Image]
    infotexts: list[str]
    info: dict[str, Any]
    chunk_key: str = "parameters"
    html_info: str = ""


def check_size(width: int, height: int) -> None:
    if width < 8 or height < 8 or width > MAX_SIDE or height > MAX_SIDE:
        raise ApiError(422, f"Requested size {width}x{height}: each side must be 8..{MAX_SIDE} px")
    if width * height > MAX_PIXELS:
        raise ApiError(422, f"Requested size {width}x{height} is over the 16 MP limit")


def _floor8(value: float) -> int:
    return int(value) // 8 * 8


@dataclass
class ADetailerPlan:
    tabs: list[ADetailerTab]
    skip_img2img: bool = False

    def infotext_params(self) -> dict[str, object]:
        params: dict[str, object] = {}
        for i, tab in enumerate(self.tabs):
            suffix = "" if i == 0 else f" {_ordinal(i + 1)}"
            params[f"ADetailer model{suffix}"] = tab.ad_model
            params[f"ADetailer confidence{suffix}"] = tab.ad_confidence
            params[f"ADetailer denoising strength{suffix}"] = tab.ad_denoising_strength
        if self.tabs:
            params["ADetailer version"] = catalog.ADETAILER_VERSION
        return params


def _ordinal(n: int) -> str:
    return {2: "2nd", 3: "3rd"}.get(n, f"{n}th")


def parse_alwayson(scripts: dict[str, Any]) -> ADetailerPlan | None:
    """Match script titles case-insensitively, like A1111; read the args as ADetailer does.

    Other installed scripts (ControlNet, Regional Prompter) take any args and change nothing.
    """
    plan = None
    for name, value in scripts.items():
        title = catalog.find_script(name)
        if title is None:
            raise ApiError(422, f"Script '{name}' not found")
        if title != "ADetailer":
            continue
        args = list((value or {}).get("args", [])) if isinstance(value, dict) else []
        enabled = True
        if args and isinstance(args[0], bool):
            enabled = args.pop(0)
        skip = bool(args.pop(0)) if args and isinstance(args[0], bool) else False
        tabs = []
        for arg in args:
            if not isinstance(arg, dict):
                continue
            try:
                tab = ADetailerTab.model_validate(arg)
            except ValueError:
                continue  # ADetailer drops an invalid tab silently
            if tab.ad_model != "None" and tab.ad_tab_enable:
                tabs.append(tab)
        if enabled and tabs:
            plan = ADetailerPlan(tabs, skip_img2img=skip)
    return plan


@dataclass
class Context:
    """Server-side settings a job reads when it starts (after any override_settings)."""

    options: dict[str, Any]
    speed: Speed
    checkpoints: tuple[catalog.Checkpoint, ...] = catalog.CHECKPOINTS  # what this instance has

    @property
    def checkpoint(self) -> catalog.Checkpoint:
        found = catalog.find_checkpoint(str(self.options["sd_model_checkpoint"]), self.checkpoints)
        return found or self.checkpoints[0]

    def overridden(self, overrides: dict[str, Any] | None) -> Context:
        """The context with a request's override_settings applied.

        An unresolvable checkpoint override (unknown, or not on this instance) is silently
        ignored, as in A1111; so are keys that are not options.
        """
        merged = dict(self.options)
        for key, value in (overrides or {}).items():
            usable = key in merged and (
                key != "sd_model_checkpoint"
                or catalog.find_checkpoint(str(value), self.checkpoints) is not None
            )
            if usable:
                merged[key] = value
        return replace(self, options=merged)


def _noise_seed(seed: int) -> int:
    return seed ^ 0x5EED


class Generation:
    """Shared by txt2img and img2img: seeds, batches, steps, infotexts and info."""

    stage = "txt2img"
    job = "scripts_txt2img"

    def __init__(self, req: GenerationRequest, ctx: Context) -> None:
        self.req = req
        self.ctx = ctx.overridden(req.override_settings)
        self.adetailer = parse_alwayson(req.alwayson_scripts)
        self.width, self.height = _floor8(req.width), _floor8(req.height)
        check_size(self.width, self.height)
        rng = random.Random()
        self.seed = req.seed if req.seed != -1 else rng.randrange(4294967294)
        self.subseed = req.subseed if req.subseed != -1 else rng.randrange(4294967294)
        self.sampler, self.schedule = catalog.resolve_sampler(
            req.sampler_name or req.sampler_index, req.scheduler
        )
        self.total = max(1, req.batch_size) * max(1, req.n_iter)
        self.job_count = max(1, req.n_iter)
        self.sampling_steps = max(1, req.steps)

    def seeds(self) -> tuple[list[int], list[int]]:
        if self.req.subseed_strength == 0:
            return [self.seed + i for i in range(self.total)], [self.subseed] * self.total
        return [self.seed] * self.total, [self.subseed + i for i in range(self.total)]

    def target(self, index: int, seed: int, subseed: int) -> Image.Image:
        image = synthesize(self.req.prompt, self.req.negative_prompt, seed, self.width, self.height)
        if self.req.subseed_strength > 0:
            variation = synthesize(
                self.req.prompt, self.req.negative_prompt, subseed, self.width, self.height
            )
            image = Image.blend(image, variation, min(1.0, self.req.subseed_strength))
        return image

    def output_size(self) -> tuple[int, int]:
        return self.width, self.height

    def extra_params(self) -> dict[str, object]:
        """A1111's `extra_generation_params`: what the job adds beyond the fixed infotext keys."""
        # The sampler records a schedule other than the model's own (A1111's get_sigmas).
        return {"Schedule type": self.schedule} if self.schedule != "Automatic" else {}

    def process(self, control: StepControl) -> Processed:
        seeds, subseeds = self.seeds()
        batch = max(1, self.req.batch_size)
        images: list[Image.Image] = []
        used_seeds: list[int] = []
        used_subseeds: list[int] = []
        for job_no in range(self.job_count):
            targets = []
            for b in range(batch):
                i = job_no * batch + b
                targets.append((i, self.target(i, seeds[i], subseeds[i])))
            first, target = targets[0]
            control.preview(Preview(target, _noise_seed(seeds[first])))
            signal, done = self._sample(control, job_no)
            for i, image in targets:
                if done < self.sampling_steps:
                    fraction = done / self.sampling_steps
                    image = partly_sampled(image, _noise_seed(seeds[i]), fraction)
                image = self.post_sample(i, image, seeds[i])
                images.append(image)
                used_seeds.append(seeds[i])
                used_subseeds.append(subseeds[i])
            if signal is Signal.INTERRUPT:
                break
        infotexts = [self.infotext(s, ss) for s, ss in zip(used_seeds, used_subseeds, strict=True)]
        return Processed(images, infotexts, self.info(used_seeds, used_subseeds, infotexts))

    def _sample(self, control: StepControl, job_no: int) -> tuple[Signal, int]:
        step_ms = self.ctx.speed.step_ms
        for step in range(1, self.sampling_steps + 1):
            if step_ms > 0:
                time.sleep(step_ms / 1000)
            signal = control.step(job_no, step, self.sampling_steps)
            if signal is not Signal.CONTINUE:
                return signal, step
        return Signal.CONTINUE, self.sampling_steps

    def post_sample(self, index: int, image: Image.Image, seed: int) -> Image.Image:
        if self.adetailer:
            for tab in self.adetailer.tabs:
                box = detected_region(seed, image.width, image.height)
                image = adetailer_edit(image, box, tab.ad_denoising_strength)
        return image

    def infotext(self, seed: int, subseed: int) -> str:
        """A1111 1.10's `create_infotext`: a fixed key order, then the extra params, then Version.

        Extra params that are also fixed keys (Denoising strength, Schedule type) keep the fixed
        place, as the dict literal in A1111 does; `Size` is the first pass, even with hires fix.
        """
        ckpt = self.ctx.checkpoint
        vae = self.ctx.options.get("sd_vae")
        clip_skip = int(self.ctx.options.get("CLIP_stop_at_last_layers") or 1)
        extra = self.extra_params()
        req = self.req
        resized = req.seed_resize_from_w > 0 and req.seed_resize_from_h > 0
        params: dict[str, object] = {
            "Steps": req.steps,
            "Sampler": self.sampler,
            "Schedule type": self.schedule,
            "CFG scale": req.cfg_scale,
            "Seed": seed,
            "Size": f"{self.width}x{self.height}",
            "Model hash": ckpt.shorthash,
            "Model": ckpt.model_name,
            "VAE": vae if vae not in ("Automatic", "None", None) else None,
            "Variation seed": subseed if req.subseed_strength else None,
            "Variation seed strength": req.subseed_strength or None,
            "Seed resize from": (
                f"{req.seed_resize_from_w}x{req.seed_resize_from_h}" if resized else None
            ),
            "Denoising strength": extra.get("Denoising strength"),
            "Clip skip": clip_skip if clip_skip > 1 else None,
            **extra,
            **(self.adetailer.infotext_params() if self.adetailer else {}),
            "Version": catalog.WEBUI_VERSION,
        }
        return infotext(req.prompt, req.negative_prompt, params)

    def info(self, seeds: list[int], subseeds: list[int], infotexts: list[str]) -> dict[str, Any]:
        ckpt = self.ctx.checkpoint
        n = len(seeds)
        return {
            "prompt": self.req.prompt,
            "all_prompts": [self.req.prompt] * n,
            "negative_prompt": self.req.negative_prompt,
            "all_negative_prompts": [self.req.negative_prompt] * n,
            "seed": seeds[0] if seeds else self.seed,
            "all_seeds": seeds,
            "subseed": subseeds[0] if subseeds else self.subseed,
            "all_subseeds": subseeds,
            "subseed_strength": self.req.subseed_strength,
            "width": self.width,
            "height": self.height,
            "sampler_name": self.sampler,
            "cfg_scale": self.req.cfg_scale,
            "steps": self.req.steps,
            "batch_size": self.req.batch_size,
            "restore_faces": bool(self.req.restore_faces),
            "face_restoration_model": None,
            "sd_model_name": ckpt.model_name,
            "sd_model_hash": ckpt.shorthash,
            "sd_vae_name": None,
            "sd_vae_hash": None,
            "seed_resize_from_w": self.req.seed_resize_from_w,
            "seed_resize_from_h": self.req.seed_resize_from_h,
            "denoising_strength": self.req.denoising_strength,
            "extra_generation_params": self.extra_params(),
            "index_of_first_image": 0,
            "infotexts": infotexts,
            "styles": self.req.styles or [],
            "job_timestamp": time.strftime("%Y%m%d%H%M%S"),
            "clip_skip": int(self.ctx.options.get("CLIP_stop_at_last_layers") or 1),
            "is_using_inpainting_conditioning": False,
            "version": catalog.WEBUI_VERSION,
        }


class Txt2Img(Generation):
    def __init__(self, req: Txt2ImgRequest, ctx: Context) -> None:
        super().__init__(req, ctx)
        self.treq = req
        if req.enable_hr:
            latent = req.hr_upscaler is None or req.hr_upscaler in catalog.LATENT_UPSCALE_MODES
            if not latent and catalog.find_upscaler(req.hr_upscaler) is None:
                # A1111 raises a bare Exception here, so the 500 body says "error": "Exception".
                raise Exception(f"could not find upscaler named {req.hr_upscaler}")
            check_size(*self.output_size())
            self.hr_steps = req.hr_second_pass_steps or req.steps
            self.sampling_steps += self.hr_steps

    def output_size(self) -> tuple[int, int]:
        if not self.treq.enable_hr:
            return self.width, self.height
        if self.treq.hr_resize_x or self.treq.hr_resize_y:
            return _floor8(self.treq.hr_resize_x or self.width), _floor8(
                self.treq.hr_resize_y or self.height
            )
        return _floor8(self.width * self.treq.hr_scale), _floor8(self.height * self.treq.hr_scale)

    def target(self, index: int, seed: int, subseed: int) -> Image.Image:
        image = super().target(index, seed, subseed)
        if self.treq.enable_hr:
            size = self.output_size()
            detail = synthesize(self.req.prompt, self.req.negative_prompt, seed + 7, *size)
            image = blend_toward(image.resize(size, Image.Resampling.LANCZOS), detail, 0.15)
        return image

    def extra_params(self) -> dict[str, object]:
        req = self.treq
        if not req.enable_hr:
            return super().extra_params()
        # In the order A1111's txt2img init adds them; None values never reach the infotext.
        resize = req.hr_resize_x or req.hr_resize_y
        hires: dict[str, object] = {
            "Denoising strength": req.denoising_strength,
            "Hires upscale": None if resize else req.hr_scale,
            "Hires resize": f"{req.hr_resize_x}x{req.hr_resize_y}" if resize else None,
            "Hires steps": req.hr_second_pass_steps or None,
            "Hires upscaler": req.hr_upscaler,
        }
        return {k: v for k, v in {**hires, **super().extra_params()}.items() if v is not None}


class Img2Img(Generation):
    stage = "img2img"
    job = "scripts_img2img"

    def __init__(self, req: Img2ImgRequest, ctx: Context) -> None:
        if not req.init_images:
            raise ApiError(404, "Init image not found")
        super().__init__(req, ctx)
        try:
            self.init_images = [decode_image(data) for data in req.init_images]
        except ValueError as exc:
            raise ApiError(500, "Invalid encoded image") from exc
        self.sampling_steps = min(req.steps, int(req.steps * req.denoising_strength) + 1)
        if self.adetailer:
            self.stage = "adetailer"

    def target(self, index: int, seed: int, subseed: int) -> Image.Image:
        init = self.init_images[index % len(self.init_images)]
        if self.adetailer and self.adetailer.skip_img2img:
            # ADetailer's "skip img2img": the init image passes through, only faces are edited.
            return init.convert("RGB").resize((self.width, self.height), Image.Resampling.LANCZOS)
        fresh = super().target(index, seed, subseed)
        return blend_toward(init, fresh, self.req.denoising_strength)

    def extra_params(self) -> dict[str, object]:
        return {"Denoising strength": self.req.denoising_strength, **super().extra_params()}


class Extras:
    """extra-single-image: a real resize, tiled for model upscalers like ESRGAN."""

    stage = "upscale"
    job = "extras"
    job_count = 1

    def __init__(self, req: ExtrasSingleImageRequest, ctx: Context) -> None:
        self.req = req
        self.ctx = ctx
        try:
            self.image = decode_image(req.image).convert("RGB")
        except ValueError as exc:
            raise ApiError(500, "Invalid encoded image") from exc
        # A1111's postprocessing upscale asserts both names, the second only if the first is real.
        self.upscaler = catalog.find_upscaler(req.upscaler_1)
        if self.upscaler is None:
            raise AssertionError(f"could not find upscaler named {req.upscaler_1}")
        if self.upscaler.name != "None" and catalog.find_upscaler(req.upscaler_2) is None:
            raise AssertionError(f"could not find upscaler named {req.upscaler_2}")
        self.tile = int(ctx.options.get("ESRGAN_tile", 192))
        self.overlap = int(ctx.options.get("ESRGAN_tile_overlap", 8))
        self.target_size = self._target_size()
        check_size(*self.target_size)
        self.sampling_steps = (
            count_tiles(self.image.width, self.image.height, self.tile, self.overlap)
            if self.upscaler.model
            else 1
        )

    def _target_size(self) -> tuple[int, int]:
        w, h = self.image.size
        if self.upscaler is None or self.upscaler.name == "None":
            return w, h
        if self.req.resize_mode == 1:
            if self.req.upscaling_crop:
                return self.req.upscaling_resize_w, self.req.upscaling_resize_h
            scale = max(self.req.upscaling_resize_w / w, self.req.upscaling_resize_h / h)
            return _floor8(w * scale), _floor8(h * scale)
        return _floor8(w * self.req.upscaling_resize), _floor8(h * self.req.upscaling_resize)

    def html_info(self) -> str:
        if self.upscaler is None or self.upscaler.name == "None":
            return ""
        if self.req.resize_mode == 1:
            size = f"{self.target_size[0]}x{self.target_size[1]}"
            text = f"Postprocess upscale to: {size}"
            if self.req.upscaling_crop:
                text += f", Postprocess crop to: {size}"
        else:
            text = f"Postprocess upscale by: {self.req.upscaling_resize}"
        return f"{text}, Postprocess upscaler: {self.upscaler.name}"

    def process(self, control: StepControl) -> Processed:
        upscaler = self.upscaler
        assert upscaler is not None
        target_w, target_h = self.target_size
        ms_total = self.ctx.speed.upscale_ms_per_mp * target_w * target_h / 1_000_000
        image = self.image  # no live preview: A1111 shows none while postprocessing
        if upscaler.name == "None":
            return self._processed(image)
        if not upscaler.model:
            if ms_total > 0:
                time.sleep(ms_total / 1000)
            control.step(0, 1, 1)
            return self._processed(self._fit(image, upscaler))
        interrupted = False

        def on_tile(done: int, total: int) -> bool:
            nonlocal interrupted
            if ms_total > 0:
                time.sleep(ms_total / total / 1000)
            interrupted = control.step(0, done, total) is Signal.INTERRUPT
            return not interrupted

        for _ in range(3):  # A1111 chains up to three model passes, then resizes exactly
            if (image.width >= target_w and image.height >= target_h) or interrupted:
                break
            image = model_pass(image, upscaler, self.tile, self.overlap, on_tile)
        return self._processed(self._fit(image, upscaler))

    def _fit(self, image: Image.Image, upscaler: catalog.Upscaler) -> Image.Image:
        target = self.target_size
        resample = (
            Image.Resampling.NEAREST if upscaler.name == "Nearest" else Image.Resampling.LANCZOS
        )
        if self.req.resize_mode == 1 and self.req.upscaling_crop:
            w, h = self.image.size
            scale = max(target[0] / w, target[1] / h)
            full = image.resize(
                (max(target[0], round(w * scale)), max(target[1], round(h * scale))), resample
            )
            left, top = (full.width - target[0]) // 2, (full.height - target[1]) // 2
            return full.crop((left, top, left + target[0], top + target[1]))
        return image.resize(target, resample) if image.size != target else image

    def _processed(self, image: Image.Image) -> Processed:
        html = self.html_info()
        return Processed([image], [html], {}, chunk_key="postprocessing", html_info=html)
