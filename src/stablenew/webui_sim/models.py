"""Request models of the reference backend, with A1111 v1.10's field names and defaults.

Every field is optional, unknown keys are ignored (not rejected) and a wrongly typed value is a 422
with a list `detail`, as FastAPI + pydantic give A1111 itself.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Request(BaseModel):
    model_config = ConfigDict(extra="ignore")


class GenerationRequest(_Request):
    prompt: str = ""
    negative_prompt: str = ""
    styles: list[str] | None = None
    seed: int = -1
    subseed: int = -1
    subseed_strength: float = 0.0
    seed_resize_from_h: int = -1
    seed_resize_from_w: int = -1
    sampler_name: str | None = None
    sampler_index: str = "Euler"
    scheduler: str | None = None
    batch_size: int = 1
    n_iter: int = 1
    steps: int = 50
    cfg_scale: float = 7.0
    width: int = 512
    height: int = 512
    restore_faces: bool | None = None
    tiling: bool | None = None
    denoising_strength: float = 0.75
    override_settings: dict[str, Any] | None = None
    override_settings_restore_afterwards: bool = True
    refiner_checkpoint: str | None = None
    refiner_switch_at: float | None = None
    disable_extra_networks: bool = False
    do_not_save_samples: bool = False
    do_not_save_grid: bool = False
    script_name: str | None = None
    script_args: list[Any] = Field(default_factory=list)
    send_images: bool = True
    save_images: bool = False
    alwayson_scripts: dict[str, Any] = Field(default_factory=dict)
    force_task_id: str | None = None
    infotext: str | None = None


class Txt2ImgRequest(GenerationRequest):
    enable_hr: bool = False
    firstphase_width: int = 0
    firstphase_height: int = 0
    hr_scale: float = 2.0
    hr_upscaler: str | None = None
    hr_second_pass_steps: int = 0
    hr_resize_x: int = 0
    hr_resize_y: int = 0
    hr_checkpoint_name: str | None = None
    hr_sampler_name: str | None = None
    hr_scheduler: str | None = None
    hr_prompt: str = ""
    hr_negative_prompt: str = ""
    firstpass_image: str | None = None


class Img2ImgRequest(GenerationRequest):
    init_images: list[str] | None = None
    resize_mode: int = 0
    image_cfg_scale: float | None = None
    mask: str | None = None
    mask_blur_x: int = 4
    mask_blur_y: int = 4
    mask_round: bool = True
    inpainting_fill: int = 0
    inpaint_full_res: bool = True
    inpaint_full_res_padding: int = 0
    inpainting_mask_invert: int = 0
    initial_noise_multiplier: float | None = None
    include_init_images: bool = False


class ExtrasSingleImageRequest(_Request):
    image: str = ""
    resize_mode: Literal[0, 1] = 0
    show_extras_results: bool = True
    gfpgan_visibility: float = Field(0.0, ge=0, le=1)
    codeformer_visibility: float = Field(0.0, ge=0, le=1)
    codeformer_weight: float = Field(0.0, ge=0, le=1)
    upscaling_resize: float = Field(2.0, gt=0)
    upscaling_resize_w: int = Field(512, ge=1)
    upscaling_resize_h: int = Field(512, ge=1)
    upscaling_crop: bool = True
    upscaler_1: str = "None"
    upscaler_2: str = "None"
    extras_upscaler_2_visibility: float = Field(0.0, ge=0, le=1)
    upscale_first: bool = False


class ADetailerTab(BaseModel):
    """One ADetailer tab; like ADetailer itself, a dict with an unknown key is dropped silently."""

    model_config = ConfigDict(extra="forbid")

    ad_model: str = "None"
    ad_model_classes: str = ""
    ad_tab_enable: bool = True
    ad_prompt: str = ""
    ad_negative_prompt: str = ""
    ad_confidence: float = Field(0.3, ge=0, le=1)
    ad_mask_filter_method: Literal["Area", "Confidence"] = "Area"
    ad_mask_k: int = Field(0, ge=0)
    ad_mask_min_ratio: float = Field(0.0, ge=0, le=1)
    ad_mask_max_ratio: float = Field(1.0, ge=0, le=1)
    ad_dilate_erode: int = 4
    ad_x_offset: int = 0
    ad_y_offset: int = 0
    ad_mask_merge_invert: str = "None"
    ad_mask_blur: int = Field(4, ge=0)
    ad_denoising_strength: float = Field(0.4, ge=0, le=1)
    ad_inpaint_only_masked: bool = True
    ad_inpaint_only_masked_padding: int = Field(32, ge=0)
    ad_use_inpaint_width_height: bool = False
    ad_inpaint_width: int = Field(512, ge=64, le=2048)
    ad_inpaint_height: int = Field(512, ge=64, le=2048)
    ad_use_steps: bool = False
    ad_steps: int = Field(28, ge=1)
    ad_use_cfg_scale: bool = False
    ad_cfg_scale: float = Field(7.0, ge=0)
    ad_use_checkpoint: bool = False
    ad_checkpoint: str | None = None
    ad_use_vae: bool = False
    ad_vae: str | None = None
    ad_use_sampler: bool = False
    ad_sampler: str = "DPM++ 2M Karras"
    ad_scheduler: str = "Use same scheduler"
    ad_use_noise_multiplier: bool = False
    ad_noise_multiplier: float = Field(1.0, ge=0.5, le=1.5)
    ad_use_clip_skip: bool = False
    ad_clip_skip: int = Field(1, ge=1, le=12)
    ad_restore_face: bool = False
    ad_controlnet_model: str = "None"
    ad_controlnet_module: str = "None"
    ad_controlnet_weight: float = Field(1.0, ge=0, le=1)
    ad_controlnet_guidance_start: float = Field(0.0, ge=0, le=1)
    ad_controlnet_guidance_end: float = Field(1.0, ge=0, le=1)
