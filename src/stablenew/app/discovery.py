"""Finding a backend: is there an A1111-compatible API at a URL, and is it a real one?

The desktop app looks on 127.0.0.1:7860 and 7861 (where A1111, Forge and SD.Next listen by
default) at first start, and its Settings dialog tests a URL or a launch command before saving.
StableNew's own reference backend says so in a header on every answer, so it is never offered
as "an A1111 found on this machine".
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from stablenew.webui.client import Health, Timeouts, WebUIClient

HOST = "127.0.0.1"
PORTS: tuple[int, ...] = (7860, 7861)  # A1111's and Forge's defaults (read at call time)
REFERENCE_TEXT = "reference backend (simulated images)"
# A probe of a port where nothing listens fails at once; one that answers slowly is not a
# backend a user is waiting to use. Short bounds keep the first start quick.
PROBE_TIMEOUTS = Timeouts(connect=1.0, probe=2.0, query=2.0)


class Verdict(StrEnum):
    A1111 = "a1111"  # an A1111-compatible API answers
    REFERENCE = "reference"  # StableNew's own reference backend answers
    AUTH_REJECTED = "auth_rejected"  # something answers and refuses the credentials
    NOT_READY = "not_ready"  # something answers, but not with the API (yet)
    REFUSED = "refused"  # nothing listens there
    BAD_LAUNCH = "bad_launch"  # a managed backend's command or folder does not exist
    LAUNCHABLE = "launchable"  # a managed backend that looks startable


@dataclass(frozen=True)
class Probe:
    """What answered at a URL (or what a launch command looks like), in one readable line."""

    verdict: Verdict
    message: str
    url: str | None = None
    models: int | None = None
    reference_version: str | None = None  # set when StableNew's reference backend answered

    @property
    def ok(self) -> bool:
        return self.verdict in (Verdict.A1111, Verdict.REFERENCE, Verdict.LAUNCHABLE)


def probe(
    url: str, auth: tuple[str, str] | None = None, timeouts: Timeouts = PROBE_TIMEOUTS
) -> Probe:
    """Ask `url` whether it is an A1111-compatible API; never raises for a network problem."""
    with WebUIClient(url, auth=auth, timeouts=timeouts, get_retries=0) as client:
        health = client.health()
        if health is Health.REFUSED:
            return Probe(Verdict.REFUSED, f"nothing answers at {url}", url)
        # The reference backend names itself on every answer, a 401 included.
        version = client.reference_version()
        who = f"StableNew's {REFERENCE_TEXT} {version}" if version else "an A1111-compatible API"
        if health is Health.AUTH_REJECTED:
            return Probe(
                Verdict.AUTH_REJECTED,
                f"{who} at {url} rejected the credentials (HTTP 401/403)",
                url,
                reference_version=version,
            )
        if health is Health.NOT_READY:
            return Probe(
                Verdict.NOT_READY,
                f"{url} answers, but not with the A1111 API (is it started with --api?)",
                url,
            )
        try:
            models: int | None = len(client.sd_models())
        except Exception:  # the probe said OK a moment ago: the count is a nicety
            models = None
    count = f", {models} model(s)" if models is not None else ""
    verdict = Verdict.REFERENCE if version else Verdict.A1111
    return Probe(verdict, f"{who} answers at {url}{count}", url, models, version)


def check_launch(command: list[str] | None, cwd: str | None) -> Probe:
    """Whether a managed backend's command and working folder exist (nothing is started)."""
    if not command:
        return Probe(Verdict.LAUNCHABLE, f"the built-in {REFERENCE_TEXT}: nothing to set up")
    folder = Path(cwd).expanduser() if cwd else None
    if folder is not None and not folder.is_dir():
        return Probe(Verdict.BAD_LAUNCH, f"the working folder {folder} does not exist")
    program = command[0]
    relative = folder / program if folder is not None else Path(program)
    found = shutil.which(program) or (str(relative) if relative.is_file() else None)
    if found is None:
        return Probe(Verdict.BAD_LAUNCH, f"the program {program!r} is not found")
    return Probe(Verdict.LAUNCHABLE, f"{program} found ({found}); StableNew starts it when needed")


def discover(
    ports: Iterable[int] | None = None, host: str = HOST, auth: tuple[str, str] | None = None
) -> list[Probe]:
    """The A1111-compatible APIs listening on `host` at `ports` (default 7860 and 7861) that are
    not StableNew's reference backend. Ports are probed side by side: at most one probe's time."""
    wanted = list(PORTS if ports is None else ports)
    if not wanted:
        return []
    urls = [f"http://{host}:{port}" for port in wanted]
    with ThreadPoolExecutor(max_workers=len(urls), thread_name_prefix="discover") as pool:
        found = list(pool.map(lambda url: probe(url, auth), urls))
    return [
        p
        for p in found
        if p.verdict in (Verdict.A1111, Verdict.AUTH_REJECTED) and p.reference_version is None
    ]
