"""`doctor`: every part a job depends on, checked with a clear verdict each.

On a home another process owns it only reads: it never starts, stops or reaps anything, and it
asks the owner's backend (at the URL the owner published) for its lists. On a free home it takes
the home for the moment it needs to start a managed backend, without running any job.
"""

from __future__ import annotations

import contextlib
import dataclasses
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from stablenew import redact
from stablenew.app.config import Config, output_root, service_config
from stablenew.app.services import Services
from stablenew.diskspace import free_mb
from stablenew.errors import BackendError, StoreError
from stablenew.queue.store import JobStore
from stablenew.webui.client import Timeouts, WebUIClient

LOW_DISK_MB = 200


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str

    def __post_init__(self) -> None:
        # Details quote URLs and errors as they are: a `user:pass@` must not reach the screen.
        object.__setattr__(self, "detail", redact.text(self.detail))


def diagnose(
    home: Path, config: Config, backend_url: str | None = None, timeout: float = 10.0
) -> Iterator[Check]:
    """The checks, one at a time (a slow backend start shows the earlier verdicts first)."""
    yield Check("config", True, f"{home / 'config.toml'} (defaults where absent)")
    database = home / "jobs.db"
    usable = True
    try:
        store = JobStore(database)
        integrity = store.integrity()
        store.close()
        yield Check("database", integrity == "ok", f"{database}: integrity {integrity}")
    except StoreError as exc:
        usable = False
        yield Check("database", False, str(exc))
    # A database failure is often the disk's: the checks below say what else is wrong too.
    for name, folder in (("home disk", home), ("output disk", output_root(home, config))):
        free = free_mb(folder)
        if free is not None:
            yield Check(name, free >= LOW_DISK_MB, f"{free:,} MB free under {folder}")
    wiring = service_config(home, config, backend_url=backend_url)
    with contextlib.ExitStack() as scratch:
        if not usable:
            # Doctor runs no job, so a throwaway queue lets it check the backend all the same.
            folder = Path(scratch.enter_context(tempfile.TemporaryDirectory(prefix="doctor-")))
            wiring = dataclasses.replace(wiring, database=folder / "jobs.db")
        try:
            services = Services(wiring)
        except StoreError as exc:
            yield Check("backend", False, f"not checked: {exc}")
        else:
            try:
                yield from _backend(services, backend_url, timeout)
            finally:
                services.close()
    lim = config.limits
    yield Check(
        "limits",
        True,
        f"upscale <= {lim.max_upscale_megapixels} MP, tiles {lim.tile_min}..{lim.tile_max}",
    )


def _backend(services: Services, backend_url: str | None, timeout: float) -> Iterator[Check]:
    """Every backend of the pool, one after the other, each check named for its backend."""
    owner = services.owner()
    pool = len(services.backends) > 1
    if owner is not None:
        yield Check("home", True, f"owned by {owner.describe()}: its backends are read, only")
        timeouts = Timeouts(query=timeout, probe=timeout)
        for b in services.backends:
            which = f" {b.name}" if pool else ""
            url = (
                backend_url
                or owner.backend_urls.get(b.name)
                or (None if pool else owner.backend_url)
            )
            if url is None:
                yield Check(f"backend{which}", False, "the owner has not published its URL yet")
                continue
            client = WebUIClient(url, auth=services.auth_of(b.name), timeouts=timeouts)
            try:
                yield from _lists(client, url, which)
            except BackendError as exc:
                yield Check(f"backend{which}", False, str(exc).splitlines()[0])
            finally:
                client.close()
        return
    try:
        # A managed backend gets its full start-up time; an attached one must answer now.
        managed = any(b.managed for b in services.backends)
        services.start(run_queue=False, timeout=None if managed else timeout)
    except BackendError as exc:
        yield Check("backend" if not pool else "backends", False, str(exc).splitlines()[0])
        return
    for b in services.backends:
        which = f" {b.name}" if pool else ""
        failed = services.start_failures.get(b.name)
        if failed is not None:
            yield Check(f"backend{which}", False, failed.splitlines()[0])
            continue
        try:
            yield from _lists(b.client(), b.url or "", which)
        except BackendError as exc:
            yield Check(f"backend{which}", False, str(exc).splitlines()[0])


def _lists(client: WebUIClient, url: str, which: str = "") -> Iterator[Check]:
    reference = client.reference_version()
    what = "the reference backend (simulated images)" if reference else "an A1111-compatible API"
    models = [str(m["model_name"]) for m in client.sd_models()]
    yield Check(f"backend{which}", True, f"{what} answers at {url}")
    yield Check(f"models{which}", bool(models), ", ".join(models) or "none installed")
    samplers = [s["name"] for s in client.samplers()]
    yield Check(f"samplers{which}", bool(samplers), f"{len(samplers)} available")
    upscalers = [str(u["name"]) for u in client.upscalers()]
    yield Check(f"upscalers{which}", bool(upscalers), ", ".join(upscalers))
    try:
        loras = [str(x["name"]) for x in client.loras()]
        yield Check(f"loras{which}", True, ", ".join(loras) or "none")
    except BackendError:
        yield Check(f"loras{which}", True, "not listed by this backend")
    try:
        embeddings = sorted(client.embeddings().get("loaded", {}))
        yield Check(f"embeddings{which}", True, ", ".join(embeddings) or "none")
    except BackendError:
        yield Check(f"embeddings{which}", True, "not listed by this backend")
    scripts = client.scripts()
    has_ad = any("adetailer" in s.lower() for s in scripts.get("img2img", []))
    yield Check(
        f"adetailer{which}", True, "installed" if has_ad else "not installed (stage unavailable)"
    )
