"""`stablenew pack show`, `stablenew config show`, `stablenew doctor`: look before you run."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from stablenew.app.config import shown
from stablenew.cli.common import console, specs_from_flags
from stablenew.pipeline.payloads import prompts
from stablenew.pipeline.settings import PipelineSettings
from stablenew.webui.errors import BackendError
from stablenew.webui.process import BackendStartError

pack_app = typer.Typer(help="Prompt packs.", no_args_is_help=True)
config_app = typer.Typer(help="Configuration.", no_args_is_help=True)


@pack_app.command("show")
def pack_show(
    ctx: typer.Context,
    pack: Path = typer.Argument(..., help="NAME.txt, NAME.json or NAME."),
    stages: str | None = typer.Option(None),
    images: int | None = typer.Option(None, min=1),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Parse and expand a pack without queueing: what this shows is what would be sent."""
    specs, expansion = specs_from_flags(ctx.obj, None, pack, stages, images, None)
    assert expansion is not None
    config = ctx.obj.config()
    pipeline = PipelineSettings(
        global_positive=config.prompts.global_positive,
        global_negative=config.prompts.global_negative,
    )
    jobs = []
    for spec in specs:
        positive, negative = prompts(spec, pipeline)
        jobs.append(
            {
                "row": spec.provenance.row,
                "variant": spec.provenance.variant,
                "positive": positive,
                "negative": negative,
                "images": spec.images,
                "stages": spec.stages(),
                "seed": spec.seed,
            }
        )
    if json_out:
        print(json.dumps({**expansion.preview(), "job_list": jobs}, indent=2))
        return
    preview = expansion.preview()
    console.print(
        f"[bold]{escape(preview['pack'])}[/]: {preview['rows']} row(s), variants per row "
        f"{preview['variants_per_row']}, {preview['jobs']} job(s), {preview['images']} image(s)"
    )
    table = Table()
    for column in ("row", "variant", "positive", "negative", "stages"):
        table.add_column(column, overflow="fold")
    for job in jobs:
        variant = ", ".join(f"{k}={v}" for k, v in job["variant"].items())
        table.add_row(
            str(job["row"]),
            escape(variant),
            escape(job["positive"]),
            escape(job["negative"]),
            ",".join(job["stages"]),
        )
    console.print(table)


@config_app.command("show")
def config_show(ctx: typer.Context) -> None:
    """The effective configuration (defaults plus <home>/config.toml)."""
    config = ctx.obj.config()
    print(json.dumps({"home": str(ctx.obj.home), **shown(config)}, indent=2))


def doctor(
    ctx: typer.Context,
    backend: str | None = typer.Option(None, help="Check a running backend at this URL."),
) -> None:
    """Check the configuration and the backend, each with a clear verdict."""
    ok = True

    def verdict(name: str, good: bool, detail: str) -> None:
        nonlocal ok
        ok &= good
        mark = "[green]ok[/]  " if good else "[red]FAIL[/]"
        console.print(f"{mark} {name}: {escape(detail)}", highlight=False)

    config = ctx.obj.config()
    verdict("config", True, f"{ctx.obj.home / 'config.toml'} (defaults where absent)")
    services = ctx.obj.services(backend_url=backend)
    try:
        # A managed backend gets its full start-up time; an attached one must answer now.
        url = services.start_backend(None if services.manager.managed else 10.0)
        verdict("backend", True, f"answers at {url}")
        client = services.client
        models = [m["model_name"] for m in client.sd_models()]
        verdict("models", bool(models), ", ".join(models) or "none installed")
        samplers = [s["name"] for s in client.samplers()]
        verdict("samplers", bool(samplers), f"{len(samplers)} available")
        upscalers = [u["name"] for u in client.upscalers()]
        verdict("upscalers", bool(upscalers), ", ".join(upscalers))
        scripts = client.scripts()
        has_ad = any("adetailer" in s.lower() for s in scripts.get("img2img", []))
        verdict("adetailer", True, "installed" if has_ad else "not installed (stage unavailable)")
    except (BackendStartError, BackendError) as exc:
        verdict("backend", False, str(exc).splitlines()[0])
    finally:
        services.close()
    limits = config.limits
    tiles = f"tiles {limits.tile_min}..{limits.tile_max}"
    verdict(
        "limits",
        limits.tile_min <= limits.tile_max,
        f"upscale <= {limits.max_upscale_megapixels} MP, {tiles}",
    )
    raise typer.Exit(0 if ok else 1)
