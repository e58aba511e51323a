"""From what a user typed to JobSpecs: a prompt with overrides, or a prompt pack.

The one place every door builds jobs, so the CLI, the GUI and the API expand the same pack the
same way (the configured wildcards folder included). Every problem is an InputError that names
the field, or the file, row and token.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stablenew.errors import InputError
from stablenew.jobs.packs import Expansion, expand, load_pack
from stablenew.jobs.spec import STAGES, JobSpec, build_spec
from stablenew.pipeline import payloads
from stablenew.pipeline.settings import PipelineSettings


@dataclass(frozen=True)
class Overrides:
    """Settings given with a prompt or a pack; they beat a pack's presets."""

    stages: Sequence[str] | None = None  # the stage chain, txt2img first
    images: int | None = None
    seed: int | None = None

    def fields(self) -> dict[str, Any]:
        out: dict[str, Any] = stage_fields(self.stages) if self.stages is not None else {}
        if self.images is not None:
            out["images"] = self.images
        if self.seed is not None:
            out["seed"] = self.seed
        return out


def parse_stages(text: str) -> list[str]:
    """ "txt2img,img2img,upscale" -> the stage names, checked."""
    wanted = [s.strip() for s in text.split(",") if s.strip()]
    stage_fields(wanted)
    return wanted


def stage_fields(stages: Sequence[str]) -> dict[str, Any]:
    unknown = [s for s in stages if s not in STAGES]
    if unknown:
        raise InputError(f"stages: unknown stage {unknown[0]!r} (choose from {', '.join(STAGES)})")
    if "txt2img" not in stages:
        raise InputError("stages: txt2img always runs first; include it")
    return {stage: {"enabled": stage in stages} for stage in STAGES if stage != "txt2img"}


class Intents:
    def __init__(
        self, wildcards_dir: Path | None = None, prompts: PipelineSettings | None = None
    ) -> None:
        self.wildcards_dir = wildcards_dir
        self.settings = prompts or PipelineSettings()

    def sent_prompts(self, spec: JobSpec) -> tuple[str, str]:
        """The positive and negative prompt exactly as the backend will get them."""
        return payloads.prompts(spec, self.settings)

    def prompt(
        self, prompt: str, overrides: Overrides = Overrides(), source: str = "api"
    ) -> JobSpec:
        return build_spec(
            {"prompt": prompt, "provenance": {"source": source}, **overrides.fields()}
        )

    def pack(self, path: Path, overrides: Overrides = Overrides(), seed: int = 0) -> Expansion:
        """Every job of a pack; nothing is queued here, and nothing at all if a row is wrong."""
        pack = load_pack(path)
        return expand(
            pack, seed=seed, wildcards_dir=self.wildcards_dir, overrides=overrides.fields()
        )
