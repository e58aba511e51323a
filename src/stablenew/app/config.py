"""Configuration: one TOML file, defaults that work with no file at all.

Everything StableNew keeps (config, database, logs, outputs) lives under one home folder:
`--home DIR`, else `$STABLENEW_HOME`, else the platform's user data folder. A bad value is an
error that names the key.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Literal

import platformdirs
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from stablenew.app.services import ServiceConfig
from stablenew.jobs.spec import problems
from stablenew.pipeline.settings import PipelineSettings, SizeLimits
from stablenew.webui.client import Timeouts
from stablenew.webui.process import LaunchConfig, reference_backend_command
from stablenew.webui.recovery import RecoveryPolicy


class ConfigError(ValueError):
    pass


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BackendSection(_Section):
    mode: Literal["managed", "attached"] = "managed"
    command: list[str] | None = None  # None: the built-in reference backend
    cwd: str | None = None
    env: dict[str, str] = Field(default_factory=dict)
    url: str | None = None  # attached mode, or a managed backend's fixed URL
    username: str | None = None
    password: str | None = None
    startup_timeout: float = Field(120.0, gt=0)
    max_restarts: int = Field(3, ge=0)
    restart_window: float = Field(300.0, gt=0)

    @model_validator(mode="after")
    def _attached_needs_url(self) -> BackendSection:
        if self.mode == "attached" and not self.url:
            raise ValueError("backend.url is required when backend.mode is 'attached'")
        return self


class OutputSection(_Section):
    root: str | None = None  # None: <home>/outputs


class LimitsSection(_Section):
    max_upscale_megapixels: float = Field(16.0, gt=0)
    on_oversize: Literal["refuse", "scale_down"] = "scale_down"
    tile_min: int = Field(64, ge=0)
    tile_max: int = Field(1024, ge=1)


class TimeoutsSection(_Section):
    connect: float = Field(5.0, gt=0)
    query: float = Field(30.0, gt=0)
    generate: float = Field(3600.0, gt=0)


class RecoverySection(_Section):
    stall_timeout: float = Field(90.0, gt=0)
    finished_stall: float = Field(20.0, gt=0)
    cancel_grace: float = Field(3.0, ge=0)
    stall_grace: float = Field(5.0, ge=0)
    restart_timeout: float = Field(120.0, gt=0)
    max_attempts: int = Field(3, ge=1)


class PromptsSection(_Section):
    global_positive: str = ""
    global_negative: str = ""


class PacksSection(_Section):
    wildcards_dir: str | None = None


class Config(_Section):
    backend: BackendSection = BackendSection()
    output: OutputSection = OutputSection()
    limits: LimitsSection = LimitsSection()
    timeouts: TimeoutsSection = TimeoutsSection()
    recovery: RecoverySection = RecoverySection()
    prompts: PromptsSection = PromptsSection()
    packs: PacksSection = PacksSection()


def home_dir(home: Path | None = None) -> Path:
    if home is not None:
        return home
    env = os.environ.get("STABLENEW_HOME")
    return Path(env) if env else Path(platformdirs.user_data_dir("stablenew"))


def load_config(home: Path) -> Config:
    path = home / "config.toml"
    if not path.is_file():
        return Config()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{path}: {problems(exc)}") from exc


def service_config(
    home: Path, config: Config, *, backend_url: str | None = None, output: Path | None = None
) -> ServiceConfig:
    """The runtime wiring for a configuration; `backend_url` attaches to a running backend."""
    b = config.backend
    if backend_url or b.mode == "attached":
        launch = LaunchConfig(url=backend_url or b.url, startup_timeout=b.startup_timeout)
    else:
        launch = LaunchConfig(
            command=b.command or reference_backend_command(0),
            url=b.url,
            cwd=Path(b.cwd) if b.cwd else None,
            env=b.env,
            startup_timeout=b.startup_timeout,
            max_restarts=b.max_restarts,
            restart_window=b.restart_window,
            log_dir=home / "logs",
            pidfile=home / "backend.pid",
        )
    r, t, lim = config.recovery, config.timeouts, config.limits
    return ServiceConfig(
        database=home / "jobs.db",
        log_dir=home / "logs",
        launch=launch,
        pipeline=PipelineSettings(
            output_root=output or Path(config.output.root or home / "outputs"),
            global_positive=config.prompts.global_positive,
            global_negative=config.prompts.global_negative,
            limits=SizeLimits(
                lim.max_upscale_megapixels, lim.on_oversize, lim.tile_min, lim.tile_max
            ),
        ),
        policy=RecoveryPolicy(
            stall_timeout=r.stall_timeout,
            finished_stall=r.finished_stall,
            cancel_grace=r.cancel_grace,
            stall_grace=r.stall_grace,
            restart_timeout=r.restart_timeout,
        ),
        timeouts=Timeouts(connect=t.connect, query=t.query, generate=t.generate),
        auth=(b.username, b.password or "") if b.username else None,
        max_attempts=r.max_attempts,
    )


def shown(config: Config) -> dict[str, object]:
    """The effective configuration, with the password hidden."""
    data = config.model_dump()
    if data["backend"].get("password"):
        data["backend"]["password"] = "***"
    return data
