"""From what a user typed to JobSpecs: a prompt with overrides, a prompt pack, input images.

The one place every door builds jobs, so the CLI, the GUI and the API expand the same pack the
same way (the configured wildcards folder included) and store input images the same way. Every
problem is an InputError that names the field, or the file, row and token; nothing is queued.
"""

from __future__ import annotations

import glob
import json
import random
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from stablenew.errors import InputError
from stablenew.jobs.infotext import spec_from_png
from stablenew.jobs.input_store import IMAGE_SUFFIXES, InputStore, display_name, read_image
from stablenew.jobs.packs import Expansion, expand, load_pack, survey
from stablenew.jobs.prompt_syntax import UNRESOLVED_MODES, Unresolved, render_prompt
from stablenew.jobs.references import restore
from stablenew.jobs.spec import STAGES, InputImage, JobSpec, build_spec
from stablenew.pipeline import payloads
from stablenew.pipeline.settings import PipelineSettings


@dataclass(frozen=True)
class Overrides:
    """Settings given with a prompt, a pack or images; they beat a pack's presets. None: not
    given (the spec's, or the preset's, default stays)."""

    stages: Sequence[str] | None = None  # the stage chain, in order
    images: int | None = None
    seed: int | None = None
    negative: str | None = None
    model: str | None = None
    vae: str | None = None
    sampler: str | None = None
    scheduler: str | None = None
    steps: int | None = None
    cfg: float | None = None
    size: tuple[int, int] | None = None
    clip_skip: int | None = None
    hires: float | None = None  # hires fix scale (turns it on)
    hires_upscaler: str | None = None
    hires_steps: int | None = None
    hires_denoise: float | None = None
    denoise: float | None = None  # img2img denoising strength
    upscaler: str | None = None
    backend: str | None = None  # pinned to this backend of the pool (a name or a label)

    def fields(self, from_images: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.stages is not None:
            out = stage_fields(self.stages, from_images)
        plain = {
            "images": self.images,
            "seed": self.seed,
            "negative_prompt": self.negative,
            "model": self.model,
            "vae": self.vae,
            "sampler": self.sampler,
            "scheduler": self.scheduler,
            "steps": self.steps,
            "cfg_scale": self.cfg,
            "clip_skip": self.clip_skip,
            "backend": self.backend,
        }
        out |= {k: v for k, v in plain.items() if v is not None}
        if self.size is not None:
            out["width"], out["height"] = self.size
        hires = {
            "hr_scale": self.hires,
            "hr_upscaler": self.hires_upscaler,
            "hr_second_pass_steps": self.hires_steps,
            "hr_denoising_strength": self.hires_denoise,
        }
        # Only the scale turns hires fix on: `--hires-steps 10` alone would otherwise switch it
        # on at 2x, unasked; on a preset that has it on, the others change it.
        txt2img = {k: v for k, v in hires.items() if v is not None}
        if self.hires is not None:
            txt2img["enable_hr"] = True
        if txt2img:
            out["txt2img"] = txt2img
        if self.denoise is not None:
            out.setdefault("img2img", {})["denoising_strength"] = self.denoise
        if self.upscaler is not None:
            out.setdefault("upscale", {})["upscaler"] = self.upscaler
        return out

    def given(self) -> list[str]:
        return [f.name for f in fields(self) if getattr(self, f.name) is not None]

    def unused(self, spec: JobSpec) -> list[str]:
        """The options given that `spec`'s chain would ignore, each with what it needs."""
        stages = spec.stages()
        hires = (
            "hires fix turned on (give hires SCALE)"
            if "txt2img" in stages
            else "txt2img (a job from images has no hires fix)"
        )
        hires_on = "txt2img" in stages and spec.txt2img.enable_hr
        needs = {
            "denoise": ("img2img" in stages, "img2img in the stages"),
            "upscaler": ("upscale" in stages, "upscale in the stages"),
            "hires": (hires_on, hires),
            "hires_upscaler": (hires_on, hires),
            "hires_steps": (hires_on, hires),
            "hires_denoise": (hires_on, hires),
        }
        return [
            f"{name}: needs {what}; it would be ignored"
            for name, (used, what) in needs.items()
            if getattr(self, name) is not None and not used
        ]

    def check_used(self, specs: Sequence[JobSpec]) -> None:
        """Refuse options that no job would use (a denoise with no img2img to denoise)."""
        problems = list(dict.fromkeys(p for spec in specs for p in self.unused(spec)))
        if problems:
            raise InputError("; ".join(problems) + "; nothing was queued")


def parse_stages(text: str) -> list[str]:
    """ "txt2img,img2img,upscale" -> the stage names, checked."""
    wanted = [s.strip() for s in text.split(",") if s.strip()]
    unknown = [s for s in wanted if s not in STAGES]
    if unknown:
        raise InputError(f"stages: unknown stage {unknown[0]!r} (choose from {', '.join(STAGES)})")
    return wanted


def stage_fields(stages: Sequence[str], from_images: bool = False) -> dict[str, Any]:
    unknown = [s for s in stages if s not in STAGES]
    if unknown:
        raise InputError(f"stages: unknown stage {unknown[0]!r} (choose from {', '.join(STAGES)})")
    if from_images and "txt2img" in stages:
        raise InputError("stages: a job that starts from images has no txt2img stage")
    if not from_images and "txt2img" not in stages:
        raise InputError("stages: txt2img always runs first; include it (or give input images)")
    return {stage: {"enabled": stage in stages} for stage in STAGES if stage != "txt2img"}


def parse_size(text: str) -> tuple[int, int]:
    """ "768x512" -> (768, 512)."""
    width, sep, height = text.lower().partition("x")
    if not sep or not width.strip().isdigit() or not height.strip().isdigit():
        raise InputError(f"size: {text!r} is not WIDTHxHEIGHT, e.g. 768x512")
    return int(width), int(height)


class Intents:
    def __init__(
        self,
        wildcards_dir: Path | None = None,
        prompts: PipelineSettings | None = None,
        unresolved: Unresolved = "error",
    ) -> None:
        self.wildcards_dir = wildcards_dir
        self.settings = prompts or PipelineSettings()
        self.unresolved = unresolved  # a pack's unresolved tokens, unless a call says
        self.inputs = InputStore(self.settings.inputs_dir) if self.settings.inputs_dir else None

    def sent_prompts(self, spec: JobSpec) -> tuple[str, str]:
        """The positive and negative prompt exactly as the backend will get them."""
        return payloads.prompts(spec, self.settings)

    def expanded(self, prompt: str, seed: int | None = None) -> str:
        """A typed prompt with the dynamic-prompts syntax users' collections are written in
        (`{a|b}`, `__folder/name__`) expanded; picks are seeded (random for a random seed).
        Anything left unresolved is an error naming the token."""
        picks = seed if seed is not None and seed >= 0 else random.randrange(2**31)
        return render_prompt(prompt, self.wildcards_dir, picks).text

    def prompt(
        self, prompt: str, overrides: Overrides = Overrides(), source: str = "api"
    ) -> JobSpec:
        text = self.expanded(prompt, overrides.seed)
        return build_spec({"prompt": text, "provenance": {"source": source}, **overrides.fields()})

    def pack(
        self,
        path: Path,
        overrides: Overrides = Overrides(),
        seed: int = 0,
        unresolved: str | None = None,
    ) -> Expansion:
        """Every job of a pack; nothing is queued here, and nothing at all if a row is wrong
        (unless `unresolved` says to drop or keep unresolved tokens)."""
        pack = load_pack(path)
        policy = unresolved or self.unresolved
        if policy not in UNRESOLVED_MODES:
            modes = ", ".join(UNRESOLVED_MODES)
            raise InputError(f"unresolved: {policy!r} is not one of {modes}")
        return expand(
            pack,
            seed=seed,
            wildcards_dir=self.wildcards_dir,
            overrides=overrides.fields(),
            unresolved=policy,
        )

    def png(self, path: Path, reroll_seed: bool = False) -> ImportedJob:
        """The job that made a PNG (ours, A1111's, Forge's, SD.Next's), ready to queue again.
        Images it referenced come from its run folder's `inputs/` or the input store; one that
        is in neither is named, and the job is refused."""
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise InputError(f"{path}: cannot read it: {exc.strerror or exc}") from exc
        imported = spec_from_png(data, display_name(path))
        warnings = list(imported.warnings)
        if imported.unparsed:
            keys = ", ".join(sorted(imported.unparsed))
            warnings.append(f"{path}: not taken from its infotext (no such setting): {keys}")
        beside = path.parent / "inputs"

        def lookup(sha: str) -> bytes | None:
            for candidate in sorted(beside.glob(f"{sha}*")) if beside.is_dir() else []:
                return candidate.read_bytes()
            return self.inputs.get(sha) if self.inputs is not None else None

        data_json, missing = restore(imported.spec.model_dump(mode="json"), lookup)
        missing += [i.sha256 for i in imported.spec.inputs if lookup(i.sha256) is None]
        if missing:
            names = ", ".join(m[:12] for m in missing)
            raise InputError(
                f"{path}: image(s) the job used are missing ({names}): not in {beside} nor in "
                "the input store"
            )
        for image in imported.spec.inputs:  # into the store, where a job's inputs live
            found = lookup(image.sha256)
            if found is not None and self.inputs is not None:
                self.inputs.put(found)
        data_json["output"] = {"root": None, "label": data_json["output"].get("label")}
        data_json["provenance"] = {**data_json["provenance"], "source": "import"}
        if reroll_seed:
            data_json["seed"] = -1
        return ImportedJob(path, build_spec(data_json), imported.source, warnings)

    def survey(self, path: Path, overrides: Overrides = Overrides()) -> tuple[Expansion, list[str]]:
        """A whole pack as `pack show` shows it: every job that can be built (unresolved tokens
        kept as written) and every problem, file, row and token; nothing raises for a problem."""
        expansion, found = survey(load_pack(path), self.wildcards_dir, overrides=overrides.fields())
        return expansion, [str(problem) for problem in found]

    def images(
        self,
        paths: Sequence[str],
        overrides: Overrides = Overrides(),
        prompt: str = "",
        one_job: bool = False,
        source: str = "api",
    ) -> list[JobSpec]:
        """Jobs that start from image files (a file, a folder or a glob each): one job per image
        in sorted order, or one job with all of them. Every file is read and checked before
        anything is kept; a file that is not an image is an error naming it."""
        if self.inputs is None:
            raise InputError("this StableNew has no input store (no home): cannot take images")
        files = [file for given in paths for file in image_files(given)]
        if not files:
            raise InputError(f"no image files in {', '.join(paths)}")
        read = [read_image(file) for file in files]  # all checked before any is stored
        self.inputs.put_all(image.data for image in read)
        groups: list[list[InputImage]] = (
            [[r.image for r in read]] if one_job else [[r.image] for r in read]
        )
        base = overrides.fields(from_images=True)
        if overrides.stages is None:
            raise InputError("stages: say what to do with the images, e.g. --stages upscale")
        return [
            build_spec(
                {
                    **base,
                    "prompt": prompt,
                    "inputs": [i.model_dump() for i in group],
                    "images": len(group),
                    "output": {"label": Path(group[0].name).stem if len(group) == 1 else None},
                    "provenance": {"source": source},
                }
            )
            for group in groups
        ]


@dataclass(frozen=True)
class ImportedJob:
    """A job rebuilt from a PNG: exactly (our chunk) or from A1111's infotext."""

    file: Path
    spec: JobSpec
    source: str  # "stablenew" or "infotext"
    warnings: list[str]


def parse_assignments(pairs: Sequence[str]) -> dict[str, Any]:
    """["steps=30", "upscale.enabled=true", "prompt=a fox"] -> {dotted field: value}; a value
    that reads as JSON (numbers, true/false/null, lists, objects) is taken as such."""
    changes: dict[str, Any] = {}
    for pair in pairs:
        field, sep, raw = pair.partition("=")
        if not sep or not field.strip():
            raise InputError(f"--set {pair!r}: expected FIELD=VALUE, e.g. steps=30")
        try:
            value: Any = json.loads(raw)
        except ValueError:
            value = raw
        changes[field.strip()] = value
    return changes


def changed(spec: JobSpec, changes: dict[str, Any]) -> JobSpec:
    """The spec with dotted fields replaced, validated as a whole (errors name the field)."""
    data = spec.model_dump(mode="json")
    for dotted, value in changes.items():
        *parents, last = dotted.split(".")
        target = data
        for part in parents:
            if not isinstance(target.get(part), dict):
                raise InputError(f"{dotted}: {part!r} is not a group of settings")
            target = target[part]
        target[last] = value
    return build_spec(data)


def image_files(given: str) -> list[Path]:
    """A file, every image in a folder, or every image a glob matches; sorted."""
    return scan(given)[0]


def skipped_files(paths: Sequence[str]) -> list[str]:
    """A note for every file a folder or a glob holds that is not taken as an image."""
    return [note for given in paths for note in scan(given)[1]]


def scan(given: str) -> tuple[list[Path], list[str]]:
    """The image files a path names (sorted), and a note for each other file it holds."""
    path = Path(given).expanduser()
    if path.is_dir():
        found = sorted(path.iterdir())
    elif any(ch in given for ch in "*?["):
        found = sorted(Path(p) for p in glob.glob(given, recursive=True))
    elif not path.exists():
        raise InputError(f"{given}: no such file or folder")
    else:
        return [path], []
    files = [p for p in found if p.suffix.lower() in IMAGE_SUFFIXES and not p.is_dir()]
    notes = [
        f"skipped {display_name(p)}: " + ("a folder" if p.is_dir() else "not an image file")
        for p in found
        if p not in files
    ]
    return files, notes
