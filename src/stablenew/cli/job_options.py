"""What `run` and `queue add` take to describe jobs, declared once: where the jobs come from (a
prompt, a pack, input images, a JobSpec file, a preset) and every generation setting.

`@job_options` adds the options to a command's signature and hands the command one `JobOptions`;
`specs_from(services, options)` turns them into JobSpecs through the app's intents, so the CLI
builds jobs exactly as the GUI and the API do.
"""

from __future__ import annotations

import functools
import inspect
import json
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, TypeVar

import typer

from stablenew.app.intents import Overrides, changed, parse_size, parse_stages, skipped_files
from stablenew.app.services import Services
from stablenew.errors import InputError
from stablenew.jobs.presets import load_preset
from stablenew.jobs.prompt_syntax import UNRESOLVED_MODES
from stablenew.jobs.spec import JobSpec, build_spec

# A1111 v1.10.1's samplers and schedule types (reference §9), for help and completion; the
# backend's own lists are what a job is checked against.
SAMPLERS = (
    "DPM++ 2M, DPM++ SDE, DPM++ 2M SDE, DPM++ 2M SDE Heun, DPM++ 2S a, DPM++ 3M SDE, Euler a, "
    "Euler, LMS, Heun, DPM2, DPM2 a, DPM fast, DPM adaptive, Restart, DDIM, DDIM CFG++, PLMS, "
    "UniPC, LCM"
)
SCHEDULERS = (
    "Automatic, Uniform, Karras, Exponential, Polyexponential, SGM Uniform, KL Optimal, "
    "Align Your Steps, Simple, Normal, DDIM, Beta"
)


def _complete(values: str) -> Callable[[str], list[str]]:
    names = [v.strip() for v in values.split(",")]
    return lambda incomplete: [n for n in names if n.lower().startswith(incomplete.lower())]


@dataclass
class JobOptions:
    prompt: str | None
    pack: Path | None = None
    init_image: list[str] | None = None
    one_job: bool = False
    spec: Path | None = None
    preset: Path | None = None
    unresolved: str | None = None
    on: str | None = None
    stages: str | None = None
    images: int | None = None
    seed: int | None = None
    negative: str | None = None
    model: str | None = None
    vae: str | None = None
    sampler: str | None = None
    scheduler: str | None = None
    steps: int | None = None
    cfg: float | None = None
    size: str | None = None
    clip_skip: int | None = None
    hires: float | None = None
    hires_upscaler: str | None = None
    hires_steps: int | None = None
    hires_denoise: float | None = None
    denoise: float | None = None
    upscaler: str | None = None

    def overrides(self) -> Overrides:
        return Overrides(
            stages=parse_stages(self.stages) if self.stages is not None else None,
            images=self.images,
            seed=self.seed,
            negative=self.negative,
            model=self.model,
            vae=self.vae,
            sampler=self.sampler,
            scheduler=self.scheduler,
            steps=self.steps,
            cfg=self.cfg,
            size=parse_size(self.size) if self.size is not None else None,
            clip_skip=self.clip_skip,
            hires=self.hires,
            hires_upscaler=self.hires_upscaler,
            hires_steps=self.hires_steps,
            hires_denoise=self.hires_denoise,
            denoise=self.denoise,
            upscaler=self.upscaler,
            backend=self.on,
        )


def _option(default: Any, *names: str, **kw: Any) -> Any:
    return typer.Option(default, *names, **kw)


OPTIONS: dict[str, tuple[Any, Any]] = {
    "pack": (
        Path | None,
        _option(
            None,
            metavar="FILE",
            help="A prompt pack: NAME.txt and/or NAME.json (instead of a PROMPT).",
        ),
    ),
    "init_image": (
        list[str] | None,
        _option(
            None,
            metavar="PATH|DIR|GLOB",
            help="Start from these images instead of txt2img (repeatable): one job per image, in "
            "sorted order. Needs --stages without txt2img, e.g. --stages upscale.",
        ),
    ),
    "one_job": (
        bool,
        _option(
            False,
            "--one-job",
            help="With --init-image: one job for all the images instead of one per image.",
        ),
    ),
    "spec": (
        Path | None,
        _option(
            None,
            metavar="FILE",
            help="A JobSpec as JSON (what `queue show ID --json` prints under job.spec).",
        ),
    ),
    "preset": (
        Path | None,
        _option(
            None,
            metavar="FILE",
            help="A preset: a pack JSON without "
            "prompts (model, sampler, sizes, stages, ADetailer, upscale) "
            "applied to the PROMPT.",
        ),
    ),
    "unresolved": (
        str | None,
        _option(
            None,
            metavar="MODE",
            help=f"A pack's unresolved [[slot]] tokens: {', '.join(UNRESOLVED_MODES)} "
            "(default: [packs] unresolved, else error).",
        ),
    ),
    "on": (
        str | None,
        _option(
            None,
            metavar="NAME|LABEL",
            help="Run only on this backend of the pool (a name or a label).",
        ),
    ),
    "stages": (
        str | None,
        _option(None, metavar="LIST", help="Stage chain, e.g. txt2img,img2img,adetailer,upscale."),
    ),
    "images": (int | None, _option(None, min=1, max=1000, metavar="N", help="Images per prompt.")),
    "seed": (
        int | None,
        _option(
            None,
            metavar="SEED",
            help="Seed of the first image (-1: random).",
        ),
    ),
    "negative": (str | None, _option(None, metavar="TEXT", help="Negative prompt.")),
    "model": (
        str | None,
        _option(
            None,
            metavar="NAME",
            help="Checkpoint (name, title or hash; checked against the backend's list).",
        ),
    ),
    "vae": (str | None, _option(None, metavar="NAME", help="VAE (or Automatic, None).")),
    "sampler": (
        str | None,
        _option(
            None, metavar="NAME", help=f"Sampler: {SAMPLERS}.", autocompletion=_complete(SAMPLERS)
        ),
    ),
    "scheduler": (
        str | None,
        _option(
            None,
            metavar="NAME",
            help=f"Schedule type: {SCHEDULERS}.",
            autocompletion=_complete(SCHEDULERS),
        ),
    ),
    "steps": (int | None, _option(None, min=1, max=150, metavar="N", help="Sampling steps.")),
    "cfg": (float | None, _option(None, min=1.0, max=30.0, metavar="SCALE", help="CFG scale.")),
    "size": (
        str | None,
        _option(None, metavar="WxH", help="Image size, e.g. 768x512 (multiples of 8)."),
    ),
    "clip_skip": (int | None, _option(None, min=1, max=12, metavar="N", help="Clip skip.")),
    "hires": (
        float | None,
        _option(
            None,
            min=1.0,
            max=4.0,
            metavar="SCALE",
            help="Hires fix: upscale the first pass by SCALE.",
        ),
    ),
    "hires_upscaler": (
        str | None,
        _option(None, metavar="NAME", help="Hires fix upscaler (Latent, R-ESRGAN 4x+, ...)."),
    ),
    "hires_steps": (
        int | None,
        _option(
            None, min=0, max=150, metavar="N", help="Hires fix second-pass steps (0: as the first)."
        ),
    ),
    "hires_denoise": (
        float | None,
        _option(None, min=0.0, max=1.0, metavar="D", help="Hires fix denoising strength."),
    ),
    "denoise": (
        float | None,
        _option(None, min=0.0, max=1.0, metavar="D", help="img2img denoising strength."),
    ),
    "upscaler": (
        str | None,
        _option(
            None,
            metavar="NAME",
            help="Upscaler of the upscale stage (checked against the backend's list).",
        ),
    ),
}

F = TypeVar("F", bound=Callable[..., Any])


def job_options(command: F) -> F:
    """Give `command` every job option; it receives them as `job: JobOptions`."""
    signature = inspect.signature(command)
    own = [p for p in signature.parameters.values() if p.name != "job"]
    added = [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=kind)
        for name, (kind, option) in OPTIONS.items()
    ]
    prompt_at = next(i for i, p in enumerate(own) if p.name == "prompt")
    parameters = [*own[: prompt_at + 1], *own[prompt_at + 1 :], *added]
    parameters.sort(key=lambda p: p.kind)  # positional ones first, as Python wants

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        given = {f.name: kwargs.pop(f.name) for f in fields(JobOptions) if f.name in OPTIONS}
        return command(*args, job=JobOptions(prompt=kwargs.pop("prompt", None), **given), **kwargs)

    wrapper.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {p.name: p.annotation for p in parameters}
    return wrapper  # type: ignore[return-value]


@dataclass(frozen=True)
class Built:
    specs: list[JobSpec]
    warnings: list[str]


def specs_from(services: Services, job: JobOptions, source: str = "cli") -> Built:
    """The jobs these options describe (nothing is queued here); problems are InputErrors."""
    sources = [
        name
        for name, given in (
            ("--pack", job.pack),
            ("--init-image", job.init_image),
            ("--spec", job.spec),
        )
        if given
    ]
    if len(sources) > 1:
        raise InputError(f"give one of {', '.join(sources)}, not several")
    overrides = job.overrides()
    built = _built(services, job, overrides, source)
    overrides.check_used(built.specs)
    return built


def _built(services: Services, job: JobOptions, overrides: Overrides, source: str) -> Built:
    if job.spec is not None:
        if job.prompt:
            raise InputError("give a PROMPT or --spec FILE, not both")
        return Built([_spec_file(job.spec, overrides)], [])
    if job.init_image:
        images = services.intents.images(
            job.init_image, overrides, prompt=job.prompt or "", one_job=job.one_job, source=source
        )
        return Built(images, skipped_files(job.init_image))
    if job.pack is not None:
        if job.prompt:
            raise InputError("give a PROMPT or --pack FILE, not both")
        expansion = services.intents.pack(job.pack, overrides, unresolved=job.unresolved)
        return Built(expansion.specs, [*expansion.pack.warnings, *expansion.warnings])
    if not job.prompt:
        raise InputError("give a PROMPT, --pack FILE, --init-image PATH or --spec FILE")
    if job.preset is not None:
        preset = load_preset(job.preset)
        prompt = services.intents.expanded(job.prompt)
        negative = job.negative or ""
        made = preset.spec(prompt, negative_prompt=negative, overrides=overrides.fields())
        return Built([made], list(preset.warnings))
    return Built([services.intents.prompt(job.prompt, overrides, source=source)], [])


def read_spec_file(path: Path) -> JobSpec:
    """A JobSpec from a JSON file: the spec itself, or `queue show ID --json` output."""
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: not a JobSpec JSON file ({exc})") from exc
    if isinstance(data, dict) and isinstance(data.get("job"), dict):
        data = data["job"]
    if isinstance(data, dict) and isinstance(data.get("spec"), dict):
        data = data["spec"]
    return build_spec(data)


def _spec_file(path: Path, overrides: Overrides) -> JobSpec:
    spec = read_spec_file(path)
    given = overrides.fields()
    if not given:
        return spec
    return changed(spec, _dotted(given))


def _dotted(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict):
            out |= _dotted(value, f"{prefix}{key}.")
        else:
            out[f"{prefix}{key}"] = value
    return out
