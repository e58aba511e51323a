"""`stablenew pack show`, `stablenew config show`, `stablenew doctor`: look before you run."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from stablenew.app.config import output_root, shown
from stablenew.app.intents import Intents, Overrides, parse_stages
from stablenew.app.services import Role
from stablenew.cli.common import console
from stablenew.errors import BackendError, StoreError
from stablenew.pipeline.payloads import prompts
from stablenew.pipeline.settings import PipelineSettings
from stablenew.queue.store import JobStore
from stablenew.webui.client import Timeouts, WebUIClient

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
    overrides = Overrides(
        stages=parse_stages(stages) if stages is not None else None, images=images
    )
    config = ctx.obj.config()
    wildcards = Path(config.packs.wildcards_dir) if config.packs.wildcards_dir else None
    expansion = Intents(wildcards).pack(pack, overrides)
    specs = expansion.specs
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
    timeout: float = typer.Option(10.0, help="Seconds an attached backend has to answer."),
) -> None:
    """Check the configuration, the job database, the disk and the backend, each with a clear
    verdict. On a home another process owns, it only reads: it never starts or stops anything."""
    ok = True

    def verdict(name: str, good: bool, detail: str) -> None:
        nonlocal ok
        ok &= good
        mark = "[green]ok[/]  " if good else "[red]FAIL[/]"
        console.print(f"{mark} {name}: {escape(detail)}", soft_wrap=True)

    home = ctx.obj.home
    config = ctx.obj.config()
    verdict("config", True, f"{home / 'config.toml'} (defaults where absent)")
    database = home / "jobs.db"
    try:
        store = JobStore(database)
        integrity = store.integrity()
        store.close()
        verdict("database", integrity == "ok", f"{database}: integrity {integrity}")
    except StoreError as exc:
        verdict("database", False, str(exc))
        raise typer.Exit(1) from None
    for name, folder in (("home disk", home), ("output disk", output_root(home, config))):
        free = _free_mb(folder)
        if free is not None:
            verdict(name, free >= 200, f"{free:,} MB free under {folder}")
    services = ctx.obj.services(backend_url=backend)
    try:
        owner = services.owner()
        if owner is not None:
            verdict("home", True, f"owned by {owner.describe()}: checking its backend read-only")
            url = backend or owner.backend_url
            if url is None:
                verdict("backend", False, "the owner has not published its backend's URL yet")
                raise typer.Exit(1)
            client = WebUIClient(url, auth=services.config.auth, timeouts=Timeouts(query=timeout))
        else:
            services.start(run_queue=False)
            assert services.role == Role.OWNER
            url = services.backend.url or ""
            client = services.backend.client()
        try:
            _check_backend(client, url, verdict)
        finally:
            if owner is not None:
                client.close()
    except (BackendError, StoreError) as exc:
        verdict("backend", False, str(exc).splitlines()[0])
    finally:
        services.close()
    lim = config.limits
    verdict(
        "limits",
        True,
        f"upscale <= {lim.max_upscale_megapixels} MP, tiles {lim.tile_min}..{lim.tile_max}",
    )
    raise typer.Exit(0 if ok else 1)


def _check_backend(client: WebUIClient, url: str, verdict: Any) -> None:
    models = [m["model_name"] for m in client.sd_models()]
    verdict("backend", True, f"answers at {url}")
    verdict("models", bool(models), ", ".join(models) or "none installed")
    samplers = [s["name"] for s in client.samplers()]
    verdict("samplers", bool(samplers), f"{len(samplers)} available")
    upscalers = [u["name"] for u in client.upscalers()]
    verdict("upscalers", bool(upscalers), ", ".join(upscalers))
    scripts = client.scripts()
    has_ad = any("adetailer" in s.lower() for s in scripts.get("img2img", []))
    verdict("adetailer", True, "installed" if has_ad else "not installed (stage unavailable)")


def _free_mb(folder: Path) -> int | None:
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        return shutil.disk_usage(probe).free // 2**20
    except OSError:
        return None
