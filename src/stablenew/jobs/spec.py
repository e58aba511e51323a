"""JobSpec: the complete, self-contained, validated description of one job.

Frozen pydantic models, versioned, round-tripping through JSON, so what is queued is exactly what
runs, even after a restart; it changes only by an explicit, validated edit while QUEUED. A job
starts from txt2img, or from input images (referenced by content hash: the bytes live in the
home's input store, so a resumed job never depends on the source file). Extension arguments
(`alwayson_scripts`) and `override_settings` pass through to the backend unchanged. A validation
error names the field and why.
"""

from __future__ import annotations

import hashlib
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from stablenew.errors import SpecError

STAGES = ("txt2img", "img2img", "adetailer", "upscale")
Stage = Literal["txt2img", "img2img", "adetailer", "upscale"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Passthrough(_Frozen):
    """What a stage sends to the backend unchanged: extensions (ControlNet, Regional Prompter)
    and settings overrides. ADetailer has its own stage and typed fields."""

    alwayson_scripts: dict[str, dict[str, Any]] = Field(default_factory=dict)
    override_settings: dict[str, Any] = Field(default_factory=dict)

    @field_validator("alwayson_scripts")
    @classmethod
    def _scripts(cls, value: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        for name, body in value.items():
            if name.strip().lower() == "adetailer":
                raise ValueError("ADetailer is a stage of its own: use the adetailer settings")
            if not isinstance(body.get("args", []), list):
                raise ValueError(f"{name}: args must be a list, as A1111 expects")
        return value


class Txt2ImgConfig(Passthrough):
    enable_hr: bool = False
    hr_scale: float = Field(2.0, ge=1.0, le=4.0)
    hr_upscaler: str = "Latent"
    hr_second_pass_steps: int = Field(0, ge=0, le=150)
    hr_denoising_strength: float = Field(0.35, ge=0.0, le=1.0)
    refiner_checkpoint: str | None = None
    refiner_switch_at: float = Field(0.8, gt=0.0, lt=1.0)


class Img2ImgConfig(Passthrough):
    enabled: bool = False
    denoising_strength: float = Field(0.3, ge=0.0, le=1.0)
    steps: int | None = Field(None, ge=1, le=150)
    cfg_scale: float | None = Field(None, ge=1.0, le=30.0)


class ADetailerPass(_Frozen):
    """One ADetailer tab: every argument the extension takes (`ad_<name>`), typed and bounded.

    Defaults are ADetailer's own. An override that ADetailer applies only behind an `ad_use_*`
    switch is `None` until set, and setting it turns the switch on: `cfg_scale=5` sends
    `ad_use_cfg_scale: true, ad_cfg_scale: 5`, `None` lets the pass inherit the job's value.
    A `scheduler` without a `sampler` keeps the job's sampler ("Use same sampler").
    """

    model: str
    model_classes: str = ""  # YOLO-World class names, comma-separated
    confidence: float = Field(0.3, ge=0.0, le=1.0)
    denoising_strength: float = Field(0.4, ge=0.0, le=1.0)
    prompt: str = ""
    negative_prompt: str = ""
    # Which detections are inpainted.
    mask_filter_method: Literal["Area", "Confidence"] = "Area"
    mask_k: int = Field(0, ge=0, le=100)  # keep only the k best (0: all)
    mask_min_ratio: float = Field(0.0, ge=0.0, le=1.0)
    mask_max_ratio: float = Field(1.0, ge=0.0, le=1.0)
    # How each mask is shaped.
    dilate_erode: int = Field(4, ge=-128, le=128)
    x_offset: int = Field(0, ge=-200, le=200)
    y_offset: int = Field(0, ge=-200, le=200)
    mask_merge_invert: Literal["None", "Merge", "Merge and Invert"] = "None"
    mask_blur: int = Field(4, ge=0, le=64)
    # How it is inpainted.
    inpaint_only_masked: bool = True
    inpaint_padding: int = Field(32, ge=0, le=256)
    inpaint_width: int | None = Field(None, ge=64, le=2048)
    inpaint_height: int | None = Field(None, ge=64, le=2048)
    steps: int | None = Field(None, ge=1, le=150)
    cfg_scale: float | None = Field(None, ge=0.0, le=30.0)
    checkpoint: str | None = None
    vae: str | None = None
    sampler: str | None = None
    scheduler: str | None = None
    noise_multiplier: float | None = Field(None, ge=0.5, le=1.5)
    clip_skip: int | None = Field(None, ge=1, le=12)
    restore_face: bool = False
    controlnet_model: str = "None"
    controlnet_module: str = "None"
    controlnet_weight: float = Field(1.0, ge=0.0, le=1.0)
    controlnet_guidance_start: float = Field(0.0, ge=0.0, le=1.0)
    controlnet_guidance_end: float = Field(1.0, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _consistent(self) -> ADetailerPass:
        if (self.inpaint_width is None) != (self.inpaint_height is None):
            raise ValueError("inpaint_width and inpaint_height are set together (or neither)")
        if self.mask_min_ratio > self.mask_max_ratio:
            raise ValueError(
                f"mask_min_ratio {self.mask_min_ratio} is above mask_max_ratio "
                f"{self.mask_max_ratio}: no detection could pass"
            )
        if self.controlnet_guidance_start > self.controlnet_guidance_end:
            raise ValueError("controlnet_guidance_start is after controlnet_guidance_end")
        return self


class ADetailerConfig(_Frozen):
    enabled: bool = False
    face: ADetailerPass | None = ADetailerPass(model="face_yolov8n.pt")
    hands: ADetailerPass | None = None

    def passes(self) -> list[ADetailerPass]:
        return [p for p in (self.face, self.hands) if p is not None]


class UpscaleConfig(_Frozen):
    enabled: bool = False
    upscaler: str = "R-ESRGAN 4x+"
    factor: float = Field(2.0, gt=1.0, le=8.0)
    mode: Literal["extra", "img2img"] = "extra"
    tile_size: int = Field(192, ge=0, le=2048)
    denoising_strength: float = Field(0.2, ge=0.0, le=1.0)  # img2img mode only


class OutputOptions(_Frozen):
    root: str | None = None  # None: the configured output root
    label: str | None = None  # folder slug; defaults to the prompt's


class InputImage(_Frozen):
    """An image a job starts from, by content: its bytes are in the home's input store under
    `sha256` (and copied into the run folder), never read from where the user kept it."""

    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    name: str  # the file name it came from, for people
    size: tuple[int, int]
    infotext: str = ""  # its own A1111 parameters, kept for reference


class Provenance(_Frozen):
    source: Literal["gui", "cli", "pack", "api", "import"] = "api"
    pack_id: str | None = None
    row: int | None = None
    variant: dict[str, str] = Field(default_factory=dict)

    def variant_label(self) -> str:
        return "_".join(f"{k}-{v}" for k, v in self.variant.items())


class JobSpec(_Frozen):
    version: Literal[1] = 1
    inputs: list[InputImage] = Field(default_factory=list)  # the job starts from these
    prompt: str = Field("", validate_default=True)  # needed when the job starts with txt2img
    negative_prompt: str = ""
    seed: int = Field(-1, ge=-1, lt=2**32)
    subseed: int = Field(-1, ge=-1, lt=2**32)
    subseed_strength: float = Field(0.0, ge=0.0, le=1.0)
    model: str | None = None
    vae: str | None = None
    sampler: str = "Euler a"
    scheduler: str = "Automatic"
    steps: int = Field(20, ge=1, le=150)
    cfg_scale: float = Field(7.0, ge=1.0, le=30.0)
    width: int = Field(512, ge=64, le=4096)
    height: int = Field(512, ge=64, le=4096)
    clip_skip: int = Field(1, ge=1, le=12)
    images: int = Field(1, ge=1, le=1000)
    txt2img: Txt2ImgConfig = Txt2ImgConfig()
    img2img: Img2ImgConfig = Img2ImgConfig()
    adetailer: ADetailerConfig = ADetailerConfig()
    upscale: UpscaleConfig = UpscaleConfig()
    output: OutputOptions = OutputOptions()
    backend: str | None = None  # run only on this backend of the pool (a name or a label)
    provenance: Provenance = Provenance()
    metadata: dict[str, Any] = Field(default_factory=dict)

    @field_validator("prompt")
    @classmethod
    def _prompt_has_text(cls, value: str, info: ValidationInfo) -> str:
        if not value.strip() and not info.data.get("inputs"):
            raise ValueError("the prompt is empty (only a job that starts from images needs none)")
        return value

    @model_validator(mode="after")
    def _start(self) -> JobSpec:
        if not self.inputs:
            return self
        if len(self.inputs) != self.images:
            raise ValueError(
                f"images is {self.images} but the job starts from {len(self.inputs)} input image(s)"
            )
        if not self.stages():
            raise ValueError(
                "a job that starts from input images needs img2img, adetailer or upscale"
            )
        return self

    @field_validator("width", "height")
    @classmethod
    def _multiple_of_8(cls, value: int) -> int:
        if value % 8:
            raise ValueError(f"{value} is not a multiple of 8 (try {value // 8 * 8})")
        return value

    def stages(self) -> list[str]:
        """The enabled stages in canonical order; txt2img runs unless the job starts from
        input images."""
        enabled = {
            "txt2img": not self.inputs,
            "img2img": self.img2img.enabled,
            "adetailer": self.adetailer.enabled and bool(self.adetailer.passes()),
            "upscale": self.upscale.enabled,
        }
        return [stage for stage in STAGES if enabled[stage]]

    def ignored(self) -> list[str]:
        """Settings turned on that this job's chain would drop without a word (checked when a
        job is queued or changed, not when a stored one is read back)."""
        if self.txt2img.enable_hr and "txt2img" not in self.stages():
            return ["txt2img.enable_hr: hires fix needs txt2img (a job from images has none)"]
        return []

    def to_json(self) -> str:
        return self.model_dump_json()

    @classmethod
    def from_json(cls, text: str) -> JobSpec:
        return cls.model_validate_json(text)

    def sha256(self) -> str:
        return hashlib.sha256(self.to_json().encode()).hexdigest()


def problems(exc: ValidationError) -> str:
    """A pydantic error as one line that names each field (dotted) and what is wrong with it."""
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or 'value'}: "
        + str(err["msg"]).removeprefix("Value error, ")
        for err in exc.errors(include_url=False)
    )


def build_spec(data: dict[str, Any]) -> JobSpec:
    try:
        return JobSpec.model_validate(data)
    except ValidationError as exc:
        raise SpecError(f"invalid job spec: {problems(exc)}") from exc
