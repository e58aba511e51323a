"""Configuration: one TOML file, defaults that work with no file at all.

Everything StableNew keeps (config, database, logs, outputs) lives under one home folder:
`--home DIR`, else `$STABLENEW_HOME`, else the platform's user data folder. A value that cannot
work is an error naming the key, at load time. Each section that the runtime uses *is* the
runtime setting (`[limits]` is SizeLimits, `[recovery]` RecoveryPolicy, `[timeouts]` Timeouts),
and `[backend]` builds the LaunchConfig field by field: one declaration, one default. Reading a
configuration registers its secrets with `redact`, so none is ever written or printed.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal

import httpx
import platformdirs
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from stablenew import redact
from stablenew.app.intents import Intents
from stablenew.app.placement import PoolPolicy
from stablenew.app.pool import BackendConfig
from stablenew.app.services import ServiceConfig
from stablenew.app.webhooks import hooks_of
from stablenew.errors import ConfigError
from stablenew.jobs.spec import problems
from stablenew.observe.events import EventKind
from stablenew.pipeline.settings import PipelineSettings, SizeLimits
from stablenew.webui.client import Timeouts
from stablenew.webui.process import LaunchConfig, reference_backend_command
from stablenew.webui.recovery import RecoveryPolicy

_LAUNCH = LaunchConfig()  # the runtime's defaults, which the [backend] section repeats by name


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _check_url(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        url = httpx.URL(value)
    except (httpx.InvalidURL, TypeError) as exc:
        raise ValueError(f"{value!r} is not a URL") from exc
    if url.scheme not in ("http", "https") or not url.host:
        raise ValueError(f"{value!r} is not an http(s) URL such as http://127.0.0.1:7860")
    return value


class BackendSection(_Section):
    mode: Literal["managed", "attached"] = "managed"
    command: list[str] | None = None  # None: the built-in reference backend
    cwd: str | None = None
    env: dict[str, str] = Field(default_factory=dict)
    url: str | None = None  # attached mode, or a managed backend's fixed URL
    username: str | None = None
    password: str | None = None
    startup_timeout: float = Field(_LAUNCH.startup_timeout, gt=0)
    max_restarts: int = Field(_LAUNCH.max_restarts, ge=0)
    restart_window: float = Field(_LAUNCH.restart_window, gt=0)
    crash_loop_limit: int = Field(_LAUNCH.crash_loop_limit, ge=1)
    discover: bool = True  # look for an A1111 on 127.0.0.1:7860/7861 at first start

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return _check_url(value)

    @field_validator("command")
    @classmethod
    def _command(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and (not value or not value[0].strip()):
            raise ValueError("is empty: give the program and its arguments, or leave it out")
        return value

    @model_validator(mode="after")
    def _attached_needs_url(self) -> BackendSection:
        if self.mode == "attached" and not self.url:
            raise ValueError("backend.url is required when backend.mode is 'attached'")
        return self


class BackendEntry(BackendSection):
    """One backend of a pool: `[[backends]]`, every key of `[backend]` plus a name and labels."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=40)
    labels: list[str] = Field(default_factory=list)

    def address(self) -> tuple[str, int] | None:
        """(host, port) the backend answers on, when the config says: its url, or a managed
        command's `--port N`. Names are compared as written: 127.0.0.1 and localhost differ."""
        if self.url is not None:
            url = httpx.URL(self.url)
            return url.host.lower(), url.port or (443 if url.scheme == "https" else 80)
        command = self.command or []
        if self.mode == "managed" and "--port" in command[:-1]:
            port = command[command.index("--port") + 1]
            if port.isdigit() and int(port) > 0:  # 0: the OS picks a free one
                return "127.0.0.1", int(port)
        return None


class OutputSection(_Section):
    root: str | None = None  # None: <home>/outputs


class PromptsSection(_Section):
    global_positive: str = ""
    global_negative: str = ""


class PacksSection(_Section):
    wildcards_dir: str | None = None
    unresolved: Literal["error", "drop", "keep"] = "error"  # a [[slot]] a pack cannot fill


class ServerSection(_Section):
    """`stablenew serve`: where the HTTP API listens and who may call it."""

    host: str = "127.0.0.1"  # anything but loopback requires the API token on every request
    port: int = Field(7870, ge=0, le=65535)  # 0: a free port, printed at start
    token_file: str | None = None  # None: <home>/api_token (created at first start, 0600)
    cors_origins: list[str] = Field(default_factory=list)  # none: no CORS headers at all

    @field_validator("cors_origins")
    @classmethod
    def _origins(cls, value: list[str]) -> list[str]:
        for origin in value:
            if origin != "*":
                _check_url(origin)
        return value


# What a webhook may subscribe to: the kinds the store's event log records.
WEBHOOK_KINDS = frozenset(
    k.value for k in EventKind if k not in (EventKind.PROGRESS, EventKind.LIFECYCLE)
)
DEFAULT_WEBHOOK_EVENTS = ["job_completed", "job_failed", "job_cancelled"]


class WebhookSection(_Section):
    """One `[[webhooks]]` entry: POST these events to `url`, signed with `secret`."""

    url: str
    events: list[str] = Field(default_factory=lambda: list(DEFAULT_WEBHOOK_EVENTS))
    secret: str = Field(min_length=16)  # HMAC-SHA256 key: receivers verify every delivery

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        checked = _check_url(value)
        assert checked is not None
        return checked

    @field_validator("events")
    @classmethod
    def _events(cls, value: list[str]) -> list[str]:
        unknown = [e for e in value if e != "*" and e not in WEBHOOK_KINDS]
        if unknown:
            raise ValueError(
                f"unknown event {unknown[0]!r} (choose from *, {', '.join(sorted(WEBHOOK_KINDS))})"
            )
        return value


class Config(_Section):
    backend: BackendSection = BackendSection()
    backends: list[BackendEntry] = Field(default_factory=list)  # a pool (else [backend] alone)
    pool: PoolPolicy = PoolPolicy()
    output: OutputSection = OutputSection()
    limits: SizeLimits = SizeLimits()
    timeouts: Timeouts = Timeouts()
    recovery: RecoveryPolicy = RecoveryPolicy()
    prompts: PromptsSection = PromptsSection()
    packs: PacksSection = PacksSection()
    server: ServerSection = ServerSection()
    webhooks: list[WebhookSection] = Field(default_factory=list)

    @model_validator(mode="after")
    def _one_kind_of_backend(self) -> Config:
        if self.backends and "backend" in self.model_fields_set:
            raise ValueError(
                "[backend] and [[backends]] are both set: a pool lists every backend in "
                "[[backends]] (a pool of one is fine), a single backend is [backend] alone"
            )
        names = [b.name for b in self.backends]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"backends: the name {twice[0]!r} is used twice")
        for b in self.backends:
            clash = sorted(set(b.labels) & (set(names) - {b.name}))
            if clash:
                raise ValueError(
                    f"backends: {b.name!r} has the label {clash[0]!r}, the name of another "
                    f"backend: --on {clash[0]} would mean both; rename the label"
                )
        listed: dict[tuple[str, int], str] = {}
        for b in self.backends:
            where = b.address()
            if where is None:
                continue
            if where in listed:
                # Two runners would call one server at once, and the second managed process
                # would die on the port while the first one answers for it.
                raise ValueError(
                    f"backends: {listed[where]!r} and {b.name!r} are the same backend "
                    f"({where[0]}:{where[1]}): list each backend once"
                )
            listed[where] = b.name
        return self

    def pool_entries(self) -> list[BackendEntry]:
        """Every backend to drive: the pool, or the single [backend] as a pool of one."""
        if self.backends:
            return list(self.backends)
        return [BackendEntry(name="default", **self.backend.model_dump())]

    @field_validator("webhooks")
    @classmethod
    def _one_entry_per_url(cls, value: list[WebhookSection]) -> list[WebhookSection]:
        urls = [hook.url for hook in value]
        twice = sorted({u for u in urls if urls.count(u) > 1})
        if twice:
            raise ValueError(f"{twice[0]} is listed twice: give it one entry with every event")
        return value


def home_dir(home: Path | None = None) -> Path:
    if home is not None:
        return home.absolute()
    env = os.environ.get("STABLENEW_HOME")
    return Path(env).absolute() if env else Path(platformdirs.user_data_dir("stablenew"))


def load_config(home: Path) -> Config:
    path = home / "config.toml"
    if not path.is_file():
        return Config()
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read it: {exc.strerror or exc}") from exc
    try:
        text = raw.decode("utf-8-sig")  # a BOM from a Windows editor is harmless
    except UnicodeDecodeError as exc:
        hint = (
            " (it looks like UTF-16: save it as UTF-8)"
            if raw[:2] in (b"\xff\xfe", b"\xfe\xff")
            else ""
        )
        raise ConfigError(f"{path}: not UTF-8 text{hint}") from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{path}: {problems(exc)}") from exc
    register_secrets(config)
    return config


def register_secrets(config: Config, *urls: str | None) -> None:
    for b in [config.backend, *config.backends]:
        credentials = f"{b.username}:{b.password}" if b.username and b.password else None
        redact.register_launch(b.command, b.env, (b.url, *urls), (b.password, credentials))
    redact.register(hook.secret for hook in config.webhooks)


def output_root(home: Path, config: Config, output: Path | None = None) -> Path:
    """Absolute, so a job resumed from any folder writes where it was submitted to."""
    return (output or Path(config.output.root or home / "outputs")).absolute()


def service_config(
    home: Path, config: Config, *, backend_url: str | None = None, output: Path | None = None
) -> ServiceConfig:
    """The runtime wiring for a configuration; `backend_url` attaches to a running backend
    (instead of the configured one or pool)."""
    if backend_url is not None:
        try:
            _check_url(backend_url)
        except ValueError as exc:
            raise ConfigError(f"--backend: {exc}") from exc
        register_secrets(config, backend_url)
        entries = [
            BackendEntry(name="default", **config.backend.model_dump()).model_copy(
                update={"mode": "attached", "url": backend_url}
            )
        ]
    else:
        entries = config.pool_entries()
    pool = len(entries) > 1
    backends = [_backend(home, config, entry, pool) for entry in entries]
    return ServiceConfig(
        home=home,
        database=home / "jobs.db",
        log_dir=home / "logs",
        backends=backends,
        pool=config.pool,
        pipeline=PipelineSettings(
            output_root=output_root(home, config, output),
            global_positive=config.prompts.global_positive,
            global_negative=config.prompts.global_negative,
            limits=config.limits,
            inputs_dir=home / "inputs",
        ),
        policy=config.recovery,
        timeouts=config.timeouts,
        auth=backends[0].auth,
        wildcards_dir=Path(config.packs.wildcards_dir) if config.packs.wildcards_dir else None,
        unresolved=config.packs.unresolved,
        webhooks=hooks_of(config.webhooks),
    )


def _backend(home: Path, config: Config, b: BackendEntry, pool: bool) -> BackendConfig:
    """One backend's runtime settings, field by field from its section."""
    fields: dict[str, Any] = {
        "startup_timeout": b.startup_timeout,
        "max_restarts": b.max_restarts,
        "restart_window": b.restart_window,
        "crash_loop_limit": b.crash_loop_limit,
        "breaker_cooldown": config.recovery.breaker_cooldown,
    }
    if b.mode == "attached":
        launch = LaunchConfig(url=b.url, **fields)
    else:
        suffix = f"-{b.name}" if pool else ""
        launch = LaunchConfig(
            command=b.command or reference_backend_command(0),
            url=b.url,
            cwd=Path(b.cwd) if b.cwd else None,
            env=b.env,
            log_dir=home / "logs",
            log_name=f"webui{suffix}",
            pidfile=home / f"backend{suffix}.pid",
            **fields,
        )
    auth = (b.username, b.password or "") if b.username else None
    return BackendConfig(b.name, launch, frozenset(b.labels), auth)


def intents_for(home: Path, config: Config) -> Intents:
    """Job building as this configuration has it (wildcards folder, global prompts)."""
    wildcards = Path(config.packs.wildcards_dir) if config.packs.wildcards_dir else None
    prompts = PipelineSettings(
        global_positive=config.prompts.global_positive,
        global_negative=config.prompts.global_negative,
    )
    return Intents(wildcards, prompts, config.packs.unresolved)


def shown(config: Config) -> dict[str, object]:
    """The effective configuration, fit to print: every credential masked."""
    data = config.model_dump()
    for backend in [data["backend"], *data["backends"]]:
        if backend.get("password"):
            backend["password"] = redact.MASK
        if backend.get("command"):
            backend["command"] = redact.command(backend["command"])
        backend["env"] = redact.mapping(backend.get("env") or {})
        if backend.get("url"):
            backend["url"] = redact.text(backend["url"])
    if not data["backends"]:
        del data["backends"]  # a single [backend]: no empty pool to show
    else:  # a pool: [backend] is not in use (both at once would be an error)
        del data["backend"]
        data["backends"] = [
            {"name": b.pop("name"), "labels": b.pop("labels"), **b} for b in data["backends"]
        ]
    for hook in data.get("webhooks", []):
        hook["secret"] = redact.MASK
    return data
