"""What the reference backend pretends to have installed: checkpoints, VAEs, samplers, upscalers,
LoRAs, embeddings and extensions.

Names, shapes and aliases follow A1111 v1.10 (see shared/reference/a1111_api.md §1.7).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

# Who we are: sent in IDENTITY_HEADER on every response so StableNew can tell this server from a
# real A1111 found on the same port.
VERSION = "v1.10.1-stablenew-sim"
IDENTITY_HEADER = "X-StableNew-Reference-Backend"
# What A1111 v1.10.1 itself writes as `Version:` in infotexts and in `info.version` (reference §9).
WEBUI_VERSION = "1.10.1"
ADETAILER_VERSION = "25.3.0"


@dataclass(frozen=True)
class Checkpoint:
    filename: str  # path relative to the models dir, as A1111's `name`

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.filename.encode()).hexdigest()

    @property
    def shorthash(self) -> str:
        return self.sha256[:10]

    @property
    def model_name(self) -> str:
        return self.filename.rsplit(".", 1)[0].replace("/", "_").replace("\\", "_")

    @property
    def title(self) -> str:
        return f"{self.filename} [{self.shorthash}]"

    def aliases(self) -> set[str]:
        stem = self.filename.rsplit("/", 1)[-1].rsplit(".", 1)[0]
        return {
            self.title,
            self.filename,
            self.model_name,
            stem,
            self.shorthash,
            self.sha256,
            self.sha256[:8],
        }

    def as_api(self) -> dict[str, object]:
        return {
            "title": self.title,
            "model_name": self.model_name,
            "hash": self.shorthash,
            "sha256": self.sha256,
            "filename": f"/models/Stable-diffusion/{self.filename}",
            "config": None,
        }


CHECKPOINTS: tuple[Checkpoint, ...] = (
    Checkpoint("sim-v15-base.safetensors"),
    Checkpoint("sim-xl-photo.safetensors"),
    Checkpoint("anime/sim-toon-mix.safetensors"),
    Checkpoint("sim-v15-landscape.safetensors"),
)

VAES: tuple[str, ...] = ("sim-vae-ft-mse.safetensors", "sim-xl-vae.safetensors")

SAMPLERS: tuple[str, ...] = (
    "DPM++ 2M",
    "DPM++ SDE",
    "DPM++ 2M SDE",
    "DPM++ 2M SDE Heun",
    "DPM++ 2S a",
    "DPM++ 3M SDE",
    "Euler a",
    "Euler",
    "LMS",
    "Heun",
    "DPM2",
    "DPM2 a",
    "DPM fast",
    "DPM adaptive",
    "Restart",
    "DDIM",
    "DDIM CFG++",
    "PLMS",
    "UniPC",
    "LCM",
)

SCHEDULERS: tuple[tuple[str, str], ...] = (
    ("automatic", "Automatic"),
    ("uniform", "Uniform"),
    ("karras", "Karras"),
    ("exponential", "Exponential"),
    ("polyexponential", "Polyexponential"),
    ("sgm_uniform", "SGM Uniform"),
    ("kl_optimal", "KL Optimal"),
    ("align_your_steps", "Align Your Steps"),
    ("simple", "Simple"),
    ("normal", "Normal"),
    ("ddim", "DDIM"),
    ("beta", "Beta"),
)


# Samplers that bring their own schedule in A1111 1.10 (`options["scheduler"]`): "Automatic"
# means this one for them; the others keep the model's own (reported as Automatic).
SAMPLER_SCHEDULERS: dict[str, str] = {
    "DPM++ 2M": "karras",
    "DPM++ SDE": "karras",
    "DPM++ 2M SDE": "exponential",
    "DPM++ 2M SDE Heun": "exponential",
    "DPM++ 2S a": "karras",
    "DPM++ 3M SDE": "exponential",
    "Restart": "karras",
}


@dataclass(frozen=True)
class Upscaler:
    name: str
    scale: float
    model: bool  # a model upscaler works in tiles; plain resamplers do not
    sharpen: bool = False


UPSCALERS: tuple[Upscaler, ...] = (
    Upscaler("None", 1.0, model=False),
    Upscaler("Lanczos", 4.0, model=False),
    Upscaler("Nearest", 4.0, model=False),
    Upscaler("R-ESRGAN 4x+", 4.0, model=True, sharpen=True),
    Upscaler("R-ESRGAN 4x+ Anime6B", 4.0, model=True, sharpen=True),
    Upscaler("ESRGAN_4x", 4.0, model=True, sharpen=True),
)

# hr_upscaler values that mean a latent upscale rather than an `/upscalers` model (exact names).
LATENT_UPSCALE_MODES: tuple[str, ...] = (
    "Latent",
    "Latent (antialiased)",
    "Latent (bicubic)",
    "Latent (bicubic antialiased)",
    "Latent (nearest)",
    "Latent (nearest-exact)",
)

ADETAILER_MODELS: tuple[str, ...] = (
    "face_yolov8n.pt",
    "face_yolov8s.pt",
    "hand_yolov8n.pt",
    "person_yolov8n-seg.pt",
    "mediapipe_face_full",
)


@dataclass(frozen=True)
class Lora:
    name: str

    def as_api(self) -> dict[str, object]:
        """One item of `/sdapi/v1/loras`, in the Lora extension's shape."""
        return {
            "name": self.name,
            "alias": self.name,
            "path": f"/models/Lora/{self.name}.safetensors",
            "metadata": {},
        }


LORAS: tuple[Lora, ...] = (
    Lora("add_detail"),
    Lora("lcm-lora-sdv1-5"),
    Lora("detail_tweaker_xl"),
    Lora("film_grain"),
)

# Textual-inversion embeddings, all SD1.5-shaped (768) single-vector ones.
EMBEDDINGS: tuple[str, ...] = ("EasyNegative", "badhandv4", "negative_hand-neg")

# Always-on scripts, as their `title()` spells them. `/sdapi/v1/scripts` lists them lower-cased and
# `alwayson_scripts` keys match them case-insensitively (A1111's `script_name_to_index`).
# ControlNet and Regional Prompter are accepted and their args passed over: they change nothing.
ALWAYSON_SCRIPTS: tuple[str, ...] = ("ADetailer", "ControlNet", "Regional Prompter")


def find_script(name: str) -> str | None:
    return next((t for t in ALWAYSON_SCRIPTS if t.lower() == name.lower()), None)


def find_checkpoint(
    name: str, checkpoints: tuple[Checkpoint, ...] = CHECKPOINTS
) -> Checkpoint | None:
    return next((c for c in checkpoints if name in c.aliases()), None)


def select_checkpoints(model_names: tuple[str, ...]) -> tuple[Checkpoint, ...]:
    """The checkpoints an instance knows (`--models`), in the order given; () means all of them.

    Names are `model_name`s as `/sdapi/v1/sd-models` spells them; an unknown one is an error that
    lists the choices, so a typo fails at start instead of as a puzzling 500 later.
    """
    if not model_names:
        return CHECKPOINTS
    by_name = {c.model_name: c for c in CHECKPOINTS}
    unknown = [n for n in model_names if n not in by_name]
    if unknown:
        raise ValueError(f"unknown model {unknown[0]!r}; choose from: {', '.join(by_name)}")
    return tuple(dict.fromkeys(by_name[n] for n in model_names))


def find_upscaler(name: str | None) -> Upscaler | None:
    """By exact name, as A1111 looks upscalers up: `lanczos` is not `Lanczos`."""
    wanted = "None" if name is None else name
    return next((u for u in UPSCALERS if u.name == wanted), None)


def resolve_sampler(sampler_name: str | None, scheduler: str | None) -> tuple[str, str]:
    """Return (sampler, label of the schedule used) as A1111 1.10 resolves them: never an error.

    A legacy combined name ("DPM++ 2M Karras") is split, and its suffix wins over `scheduler`;
    an unknown sampler silently becomes the first one (DPM++ 2M), an unknown scheduler Automatic.
    Automatic then means the sampler's own schedule when it has one (`SAMPLER_SCHEDULERS`): that
    is the label A1111's sampler writes into the infotext (`Schedule type: Karras`).
    """
    by_key = {key: name for name, label in SCHEDULERS for key in (name, label)}
    labels = dict(SCHEDULERS)
    found = by_key.get(scheduler or "", "automatic")
    sampler = sampler_name or SAMPLERS[0]
    for name, label in SCHEDULERS:
        for option in (label, name):
            if sampler.endswith(f" {option}"):
                found, sampler = name, sampler[: -len(option) - 1]
                break
    if sampler not in SAMPLERS:
        sampler = SAMPLERS[0]
    if found == "automatic":
        found = SAMPLER_SCHEDULERS.get(sampler, "automatic")
    return sampler, labels[found]


def default_options(checkpoint: Checkpoint = CHECKPOINTS[0]) -> dict[str, object]:
    return {
        "sd_model_checkpoint": checkpoint.title,
        "sd_checkpoint_hash": checkpoint.sha256,
        "sd_vae": "Automatic",
        "CLIP_stop_at_last_layers": 1,
        "samples_format": "png",
        "ESRGAN_tile": 192,
        "ESRGAN_tile_overlap": 8,
        "DAT_tile": 192,
        "DAT_tile_overlap": 8,
        "live_previews_enable": True,
        "show_progress_every_n_steps": 10,
        "return_grid": True,
        "enable_pnginfo": True,
        "api_enable_requests": True,
        "api_forbid_local_requests": True,
        "upscaling_max_images_in_cache": 5,
    }
