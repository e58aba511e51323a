"""What the commands share: the home folder, the configuration, specs from flags, errors."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from stablenew.app.config import Config, ConfigError, home_dir, load_config, service_config
from stablenew.app.services import Services
from stablenew.jobs.packs import Expansion, PackError, expand, load_pack
from stablenew.jobs.spec import STAGES, JobSpec, SpecError, build_spec
from stablenew.queue.store import QueueError

console = Console()
errors = Console(stderr=True)


@dataclass
class Context:
    home_option: Path | None

    @property
    def home(self) -> Path:
        return home_dir(self.home_option)

    def config(self) -> Config:
        try:
            return load_config(self.home)
        except ConfigError as exc:
            fail(str(exc), code=2)

    def services(self, backend_url: str | None = None, output: Path | None = None) -> Services:
        return Services(
            service_config(self.home, self.config(), backend_url=backend_url, output=output)
        )


def fail(message: str, code: int = 1) -> NoReturn:
    errors.print(f"[bold red]error:[/] {escape(message)}", highlight=False)
    raise typer.Exit(code)


def stage_overrides(stages: str | None) -> dict[str, Any]:
    if stages is None:
        return {}
    wanted = [s.strip() for s in stages.split(",") if s.strip()]
    unknown = [s for s in wanted if s not in STAGES]
    if unknown:
        fail(f"--stages: unknown stage {unknown[0]!r} (choose from {', '.join(STAGES)})", 2)
    if "txt2img" not in wanted:
        fail("--stages: txt2img always runs first; include it", 2)
    return {stage: {"enabled": stage in wanted} for stage in STAGES if stage != "txt2img"}


def specs_from_flags(
    ctx: Context,
    prompt: str | None,
    pack: Path | None,
    stages: str | None,
    images: int | None,
    seed: int | None,
    source: str = "cli",
) -> tuple[list[JobSpec], Expansion | None]:
    """A prompt or a pack into JobSpecs, through the same code path as every other door."""
    if bool(prompt) == bool(pack):
        fail("give either a PROMPT or --pack FILE", 2)
    overrides: dict[str, Any] = stage_overrides(stages)
    if images is not None:
        overrides["images"] = images
    if seed is not None:
        overrides["seed"] = seed
    if pack is not None:
        config = ctx.config()
        wildcards = Path(config.packs.wildcards_dir) if config.packs.wildcards_dir else None
        try:
            expansion = expand(load_pack(pack), wildcards_dir=wildcards, overrides=overrides)
        except (PackError, OSError) as exc:
            fail(str(exc), 2)
        for warning in expansion.pack.warnings:
            errors.print(f"[yellow]warning:[/] {escape(warning)}", highlight=False)
        return expansion.specs, expansion
    try:
        spec = build_spec({"prompt": prompt, "provenance": {"source": source}, **overrides})
    except SpecError as exc:
        fail(str(exc), 2)
    return [spec], None


def find_job(services: Services, prefix: str) -> str:
    try:
        return services.store.find(prefix)
    except QueueError as exc:
        fail(str(exc), 2)


def is_tty() -> bool:
    return sys.stdout.isatty()
