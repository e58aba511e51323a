"""Pools of real reference-backend processes, each its own home's member."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from stablenew.app.placement import PoolPolicy
from stablenew.app.pool import BackendConfig
from stablenew.app.services import ServiceConfig, Services
from stablenew.pipeline.settings import PipelineSettings
from stablenew.webui.process import LaunchConfig, reference_backend_command
from stablenew.webui.recovery import RecoveryPolicy

FAST = RecoveryPolicy(stall_timeout=5.0, stall_grace=1.0, cancel_grace=1.0, poll_interval=0.1)


def backend(
    home: Path, name: str, *flags: str, labels: tuple[str, ...] = (), **launch: object
) -> BackendConfig:
    return BackendConfig(
        name,
        LaunchConfig(
            command=reference_backend_command(0, *flags),
            log_dir=home / "logs",
            log_name=f"webui-{name}",
            pidfile=home / f"backend-{name}.pid",
            startup_timeout=30,
            **launch,  # type: ignore[arg-type]
        ),
        frozenset(labels),
    )


@pytest.fixture
def make_pool(tmp_path: Path) -> Iterator[Callable[..., Services]]:
    made: list[Services] = []

    def make(
        backends: list[BackendConfig], pool: PoolPolicy | None = None, **kw: object
    ) -> Services:
        config = ServiceConfig(
            home=tmp_path,
            database=tmp_path / "jobs.db",
            log_dir=tmp_path / "logs",
            backends=backends,
            pool=pool or PoolPolicy(),
            pipeline=PipelineSettings(output_root=tmp_path / "out"),
            policy=kw.pop("policy", FAST),  # type: ignore[arg-type]
        )
        services = Services(config)
        made.append(services)
        services.start()
        return services

    yield make
    for services in made:
        services.close(grace=3)
