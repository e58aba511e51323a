"""The whole product against a reference backend process: Services built as the CLI builds them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from stablenew.app.services import ServiceConfig, Services
from stablenew.pipeline.settings import PipelineSettings, SizeLimits
from stablenew.webui.process import LaunchConfig, reference_backend_command
from stablenew.webui.recovery import RecoveryPolicy

FAST = RecoveryPolicy(stall_timeout=2.0, stall_grace=1.0, cancel_grace=1.0, poll_interval=0.1)


def service_config(
    home: Path,
    *flags: str,
    url: str | None = None,
    limits: SizeLimits | None = None,
    policy: RecoveryPolicy = FAST,
) -> ServiceConfig:
    launch = (
        LaunchConfig(url=url, startup_timeout=30)
        if url
        else LaunchConfig(
            command=reference_backend_command(0, *flags),
            log_dir=home / "logs",
            startup_timeout=30,
            pidfile=home / "backend.pid",
        )
    )
    return ServiceConfig(
        home=home,
        database=home / "jobs.db",
        log_dir=home / "logs",
        launch=launch,
        pipeline=PipelineSettings(output_root=home / "out", limits=limits or SizeLimits()),
        policy=policy,
    )


def sim_stats(services: Services) -> dict:
    return httpx.get(f"{services.backend.url}/sim/stats", timeout=5).json()


def sim_faults(services: Services, spec: dict) -> None:
    httpx.post(f"{services.backend.url}/sim/faults", json=spec, timeout=5).raise_for_status()


@pytest.fixture
def make_services(tmp_path: Path) -> Iterator[Callable[..., Services]]:
    created: list[Services] = []

    def make(*flags: str, **kw: object) -> Services:
        services = Services(service_config(tmp_path, *flags, **kw))  # type: ignore[arg-type]
        created.append(services)
        services.start()
        return services

    yield make
    for services in created:
        services.close(grace=3)
