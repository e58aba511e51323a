"""What a compose form needs from the engine: the backend's lists for its pickers, the problems
of a spec as submit-time validation would name them, jobs rebuilt for reuse (from a history job,
one of its images, or any PNG), input images kept by content for jobs that start from them,
and presets written back as files the pack loader reads.

Doors call these off their UI thread (they read files and ask the backend); nothing here
imports a UI toolkit.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from stablenew import private_files
from stablenew.app.catalog import Catalog
from stablenew.app.controllers import BackendController
from stablenew.app.intents import Intents, image_files
from stablenew.errors import BackendError, InputError
from stablenew.jobs.infotext import spec_from_png
from stablenew.jobs.input_store import InputStore, display_name, read_image
from stablenew.jobs.job import Job
from stablenew.jobs.presets import AD_ARGS, merge
from stablenew.jobs.references import restore
from stablenew.jobs.spec import ADetailerPass, InputImage, JobSpec, build_spec
from stablenew.pipeline.names import unknown_names
from stablenew.webui.lists import A1111_LATENT_MODE_NAMES

# hr_upscaler values that are latent upscales rather than models of /upscalers (A1111's names).
LATENT_UPSCALERS = A1111_LATENT_MODE_NAMES


@dataclass(frozen=True)
class PickerLists:
    """The names a user picks from, as the backend has them (empty: it does not say)."""

    models: list[str] = field(default_factory=list)
    vaes: list[str] = field(default_factory=list)
    samplers: list[str] = field(default_factory=list)
    schedulers: list[str] = field(default_factory=list)
    upscalers: list[str] = field(default_factory=list)
    hr_upscalers: list[str] = field(default_factory=list)  # latent modes and upscalers
    loras: list[str] = field(default_factory=list)
    embeddings: list[str] = field(default_factory=list)
    adetailer_models: list[str] = field(default_factory=list)


def _names(records: Any, key: str) -> list[str]:
    if not isinstance(records, list):
        return []
    return [str(r[key]) for r in records if isinstance(r, dict) and r.get(key)]


def picker_lists(backend: BackendController) -> PickerLists:
    """Every list a compose form offers, asked of the backend; a list it does not serve (an
    older Forge has no /loras, a backend without ADetailer has no model list) stays empty."""
    client = backend.client()

    def ask(fn: Any, key: str) -> list[str]:
        try:
            return _names(fn(), key)
        except BackendError:
            return []

    try:
        loaded = client.embeddings().get("loaded", {})
        embeddings = sorted(str(k) for k in loaded) if isinstance(loaded, dict) else []
    except BackendError:
        embeddings = []
    try:
        ad_models = client.adetailer_models()
    except BackendError:
        ad_models = []
    upscalers = ask(client.upscalers, "name")
    return PickerLists(
        models=ask(client.sd_models, "model_name"),
        vaes=["Automatic", "None", *ask(client.sd_vae, "model_name")],
        samplers=ask(client.samplers, "name"),
        schedulers=ask(client.schedulers, "label"),
        upscalers=[u for u in upscalers if u != "None"],
        hr_upscalers=[*LATENT_UPSCALERS, *(u for u in upscalers if u != "None")],
        loras=sorted(ask(client.loras, "name"), key=str.casefold),
        embeddings=sorted(embeddings, key=str.casefold),
        adetailer_models=ad_models,
    )


def name_problems(catalog: Catalog, spec: JobSpec) -> list[str]:
    """What submit-time validation would refuse in this spec's names (a sampler, model, LoRA
    the backend does not have), in the same words; empty when all are known or it cannot ask."""
    lists = catalog.lists()
    return unknown_names(spec, lists) if lists is not None else []


# -- reuse ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reused:
    """A job to load into a compose form, and where it came from."""

    spec: JobSpec
    source: Literal["job", "stablenew", "infotext"]
    job_id: str | None = None  # the job it came from (ours)
    seed: int | None = None  # the seed the image (or the job's first image) was made with
    warnings: list[str] = field(default_factory=list)
    unparsed: dict[str, str] = field(default_factory=dict)  # infotext keys with no field
    origin: dict[str, Any] = field(default_factory=dict)  # job_id, stage, image_index (ours)

    def describe(self) -> str:
        if self.source == "job":
            return f"job {self.job_id[:8] if self.job_id else '?'}"
        if self.source == "stablenew":
            return f"a StableNew image of job {self.job_id[:8] if self.job_id else '?'}"
        return "A1111 infotext"


def reuse_job(job: Job, keep_seed: bool = True) -> Reused:
    """A history job as it was queued; keeping the seed fixes the one its first image got."""
    spec = job.spec
    seed = job.result.seeds[0] if job.result.seeds else (spec.seed if spec.seed >= 0 else None)
    if keep_seed and seed is not None:
        spec = spec.model_copy(update={"seed": seed})
    elif not keep_seed:
        spec = spec.model_copy(update={"seed": -1})
    return Reused(spec, "job", job.id, seed)


def reuse_png(path: Path, keep_seed: bool = True, store: InputStore | None = None) -> Reused:
    """The job that made a PNG file (see `reuse_png_data`); its run folder's inputs/ is looked
    in first for the images it referenced."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"{path}: cannot read it: {exc.strerror or exc}") from exc
    return reuse_png_data(data, display_name(path.name), path.parent / "inputs", store, keep_seed)


def reuse_png_data(
    data: bytes,
    name: str,
    beside: Path | None = None,
    store: InputStore | None = None,
    keep_seed: bool = True,
) -> Reused:
    """The job that made a PNG (ours exactly; an A1111, Forge or SD.Next image from its
    infotext), to compose from. An image of ours becomes a job for that one image: its own
    seed, one image; the images it referenced (extension images) come from `beside` (its run
    folder's inputs/) or the home's input store, and one found in neither is left out with a
    warning. The desktop app and the web UI both load PNGs through here."""
    imported = spec_from_png(data, name)
    warnings = list(imported.warnings)
    spec = imported.spec
    seed: int | None = spec.seed if spec.seed >= 0 else None  # the image's own (spec_from_png)
    if imported.source == "stablenew":

        def lookup(sha: str) -> bytes | None:
            file = beside / sha if beside is not None else None
            if file is not None and file.is_file():
                return file.read_bytes()
            return store.get(sha) if store is not None else None

        restored, missing = restore(spec.model_dump(mode="json"), lookup)
        if missing:
            warnings.append(
                f"{name}: {len(missing)} extension image(s) not found in its run folder nor "
                "in the input store: those arguments are left out"
            )
            restored = _without_refs(restored)
        spec = build_spec(restored)
        if store is not None:
            _keep_inputs(spec, store, lookup)
    if keep_seed and seed is not None:
        spec = spec.model_copy(update={"seed": seed})
    elif not keep_seed:
        spec = spec.model_copy(update={"seed": -1})
    job_id = imported.origin.get("job_id")
    return Reused(
        spec,
        imported.source,
        str(job_id) if job_id else None,
        seed,
        warnings,
        dict(imported.unparsed),
        dict(imported.origin),
    )


def _keep_inputs(spec: JobSpec, store: InputStore, lookup: Callable[[str], bytes | None]) -> None:
    """A job's input images live in the store: put back there those found beside the PNG."""
    for image in spec.inputs:
        found = None if store.has(image.sha256) else lookup(image.sha256)
        if found is not None:
            store.put(found)


def _without_refs(value: Any) -> Any:
    if isinstance(value, dict):
        if "$image" in value and len(value) == 1:
            return None
        return {k: _without_refs(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_refs(v) for v in value]
    return value


def image_seed(job: Job, file: str) -> int | None:
    """The seed one image of a finished job was made with."""
    for files in [job.result.images, *job.result.stages.values()]:
        if file in files and files.index(file) < len(job.result.seeds):
            return job.result.seeds[files.index(file)]
    return None


# -- jobs that start from images -------------------------------------------------------------------


def store_inputs(intents: Intents, paths: Sequence[str]) -> list[InputImage]:
    """Image files (each a file, a folder or a glob) read, checked and kept in the home's input
    store by content, as `Intents.images` keeps them: what a job that starts from them names.
    Every file is checked before any is kept; an error names the file."""
    if intents.inputs is None:
        raise InputError("this StableNew has no input store (no home): cannot take images")
    files = [file for given in paths for file in image_files(given)]
    if not files:
        raise InputError(f"no image files in {', '.join(paths)}")
    read = [read_image(file) for file in files]
    intents.inputs.put_all(image.data for image in read)
    return [image.image for image in read]


# -- presets --------------------------------------------------------------------------------------

_TXT2IMG = {
    "model": "model",
    "vae": "vae",
    "sampler": "sampler_name",
    "scheduler": "scheduler",
    "steps": "steps",
    "cfg_scale": "cfg_scale",
    "width": "width",
    "height": "height",
    "seed": "seed",
    "clip_skip": "clip_skip",
    "negative_prompt": "negative_prompt",
}
_HIRES = {
    "enable_hr": "enable_hr",
    "hr_scale": "hr_scale",
    "hr_upscaler": "hr_upscaler",
    "hr_denoising_strength": "denoising_strength",
    "hr_second_pass_steps": "hr_second_pass_steps",
    "refiner_checkpoint": "refiner_checkpoint",
    "refiner_switch_at": "refiner_switch_at",
}
_IMG2IMG = {
    "enabled": "enabled",
    "steps": "steps",
    "cfg_scale": "cfg_scale",
    "denoising_strength": "denoising_strength",
}
_UPSCALE = {
    "enabled": "enabled",
    "upscaler": "upscaler",
    "mode": "upscale_mode",
    "factor": "upscale_factor",
    "tile_size": "tile_size",
    "denoising_strength": "denoising_strength",
}
_AD_FIELDS = {field_name: arg for arg, field_name in AD_ARGS.items()}


def _pass_args(prefix: str, ad_pass: ADetailerPass) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in ad_pass.model_dump().items():
        if value is not None:
            out[f"{prefix}{_AD_FIELDS[name]}"] = value
    return out


def preset_data(spec: JobSpec, name: str) -> dict[str, Any]:
    """A spec's settings as a preset file (StableNew2's flat form, which `load_preset` and a
    pack's `preset_data` read): every stage setting, without the prompt."""
    txt2img = {key: getattr(spec, f) for f, key in _TXT2IMG.items() if getattr(spec, f) != ""}
    txt2img = {k: v for k, v in txt2img.items() if v is not None}
    txt2img |= {
        key: getattr(spec.txt2img, f)
        for f, key in _HIRES.items()
        if getattr(spec.txt2img, f) is not None
    }
    img2img = {
        key: getattr(spec.img2img, f)
        for f, key in _IMG2IMG.items()
        if getattr(spec.img2img, f) is not None
    }
    upscale = {key: getattr(spec.upscale, f) for f, key in _UPSCALE.items()}
    adetailer: dict[str, Any] = {"ad_enabled": spec.adetailer.enabled}
    face, hands = spec.adetailer.face, spec.adetailer.hands
    if face is None:
        adetailer["ad_tab_enable"] = False
    else:
        adetailer |= _pass_args("ad_", face)
    if hands is not None:
        adetailer |= {"ad_hands_tab_enable": True, **_pass_args("ad_hands_", hands)}
    return {
        "pack_data": {"name": name},
        "preset_data": {
            "txt2img": txt2img,
            "img2img": img2img,
            "adetailer": adetailer,
            "upscale": upscale,
            "pipeline": {"images_per_prompt": spec.images},
        },
    }


def save_preset(path: Path, spec: JobSpec) -> Path:
    """Write a preset file (NAME.json) that `load_preset` reads back to the same settings."""
    if path.suffix != ".json":
        path = path.with_suffix(".json")
    try:
        text = json.dumps(preset_data(spec, path.stem), indent=2) + "\n"
        private_files.write(path, text.encode("utf-8"))  # its prompts
    except OSError as exc:
        raise InputError(f"{path}: cannot write it: {exc.strerror or exc}") from exc
    return path


def apply_preset(fields: dict[str, Any], spec_data: dict[str, Any]) -> dict[str, Any]:
    """Composed JobSpec data with a preset's fields over it (the prompt stays; a preset's
    negative text follows the typed one, as `Preset.spec` does)."""
    negative = str(fields.get("negative_prompt") or "")
    out = merge(spec_data, {k: v for k, v in fields.items() if k != "negative_prompt"})
    if negative:
        typed = str(spec_data.get("negative_prompt") or "")
        out["negative_prompt"] = ", ".join(p for p in (typed, negative) if p)
    return out
