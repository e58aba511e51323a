"""Shared fixtures: the reference backend as a real process on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from stablenew.webui.client import Timeouts, WebUIClient
from stablenew.webui.process import LaunchConfig, WebUIProcessManager, reference_backend_command


@dataclass
class Sim:
    manager: WebUIProcessManager
    client: WebUIClient
    auth: tuple[str, str] | None = None  # /sim/* takes the same credentials as /sdapi

    @property
    def url(self) -> str:
        return self.manager.url

    def faults(self, spec: dict[str, object]) -> None:
        httpx.post(
            f"{self.url}/sim/faults", json=spec, auth=self.auth, timeout=5
        ).raise_for_status()

    def stats(self) -> dict[str, object]:
        return httpx.get(f"{self.url}/sim/stats", auth=self.auth, timeout=5).json()


SimFactory = Callable[..., Sim]


@pytest.fixture
def start_sim(tmp_path: Path) -> Iterator[SimFactory]:
    """Start reference backends with extra `webui-sim` flags; all are stopped afterwards."""
    started: list[Sim] = []

    def start(*flags: str, auth: tuple[str, str] | None = None, **launch: object) -> Sim:
        config = LaunchConfig(
            command=reference_backend_command(0, *flags),
            log_dir=tmp_path / "logs",
            startup_timeout=30,
            **launch,  # type: ignore[arg-type]
        )
        probe_client: dict[str, WebUIClient] = {}

        def probe(url: str) -> bool:
            client = probe_client.setdefault(url, WebUIClient(url, auth=auth))
            return client.health()

        manager = WebUIProcessManager(config, probe=probe)
        manager.start()
        client = WebUIClient(manager.url, auth=auth, timeouts=Timeouts(generate=60))
        sim = Sim(manager, client, auth)
        started.append(sim)
        return sim

    yield start
    for sim in started:
        sim.manager.stop(grace=3)
        sim.client.close()


@pytest.fixture(scope="module")
def sim_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One plain reference backend shared by a module's read-mostly checks."""
    config = LaunchConfig(
        command=reference_backend_command(0), log_dir=tmp_path_factory.mktemp("logs")
    )
    manager = WebUIProcessManager(config, probe=lambda url: WebUIClient(url).health())
    manager.start()
    yield manager.url
    manager.stop(grace=3)


SLOW = ("benchmarks", "chaos", "hostile", "web")  # minutes of CPU: CI runs them with `-m slow`


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.parent.name in SLOW:
            item.add_marker(pytest.mark.slow)
