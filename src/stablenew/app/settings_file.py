"""Writing `<home>/config.toml` from a door (the desktop app's Settings and its first-start offer).

The file is validated with the same models that read it (`Config`), so a value the loader would
refuse is refused before it is written, with the key named. It holds credentials, so it is
written owner-only (0600), atomically (a crash never leaves half a file), and the previous
version is kept as `config.toml.bak` (also 0600): rewriting drops the comments a user wrote.
Only values that differ from the defaults are written, so a later release's better default is
not pinned by a file the user never edited by hand. A running process keeps the configuration it
started with; the new one applies at the next start.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from stablenew import private_files
from stablenew.app.config import Config, load_config
from stablenew.errors import ConfigError
from stablenew.jobs.spec import problems

FILE_NAME = "config.toml"
HEADER = (
    "# Written by StableNew's Settings. A key that is not here has its default (see the README).\n"
    "# Read at start: a running StableNew keeps the settings it started with.\n\n"
)


def config_path(home: Path) -> Path:
    return home / FILE_NAME


def exists(home: Path) -> bool:
    return config_path(home).is_file()


def read(home: Path) -> Config:
    """The configuration as the next start will load it (defaults when there is no file)."""
    return load_config(home)


def validate(data: dict[str, Any]) -> Config:
    """A configuration from plain values (as a form has them); a ConfigError names each key."""
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(problems(exc)) from exc


def discovery_wanted(config: Config) -> bool:
    """Look for an A1111 at start: asked for (the default), and the backend is still the
    built-in reference backend (a configured backend is the user's choice already)."""
    b = config.backend
    return b.discover and b.mode == "managed" and b.command is None and b.url is None


def dumps(config: Config) -> str:
    """The TOML text of every value that differs from its default, one table per section."""
    data = config.model_dump(mode="json", exclude_defaults=True)
    blocks: list[str] = []
    for section, values in data.items():
        # [[backends]] and [[webhooks]] are arrays of tables: one [[section]] per entry
        for entry in values if isinstance(values, list) else [values]:
            blocks += _section(section, entry, array=isinstance(values, list))
    text = HEADER + "\n".join(blocks)
    try:
        faithful = Config.model_validate(tomllib.loads(text)) == config
    except (tomllib.TOMLDecodeError, ValidationError):
        faithful = False
    if not faithful:  # the writer's own check: what the next start reads is what was saved
        raise ConfigError("the settings cannot be written as TOML faithfully")
    return text


def _section(name: str, values: dict[str, Any], array: bool) -> list[str]:
    """A table and its sub-tables ([backends.env] belongs to the [[backends]] just above)."""
    scalars = {k: v for k, v in values.items() if not isinstance(v, dict) and v is not None}
    tables = {k: v for k, v in values.items() if isinstance(v, dict) and v}
    header = f"[[{name}]]" if array else f"[{name}]"
    blocks = [_table(header, scalars)] if scalars or array else []
    blocks += [_table(f"[{name}.{_key(key)}]", table) for key, table in tables.items()]
    return blocks


def _table(header: str, values: dict[str, Any]) -> str:
    return f"{header}\n" + "".join(f"{_key(k)} = {_value(v)}\n" for k, v in values.items())


def write(home: Path, config: Config) -> Path:
    """Write `config` as `<home>/config.toml`, owner-only; returns the path."""
    path = config_path(home)
    text = dumps(config)
    try:
        if path.is_file():
            private_files.write(path.with_name(FILE_NAME + ".bak"), path.read_bytes(), durable=True)
        private_files.write(path, text.encode("utf-8"), durable=True)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot write it: {exc.strerror or exc}") from exc
    return path


def _key(key: str) -> str:
    bare = key.replace("_", "").replace("-", "").isalnum() and key.isascii()
    return key if bare else json.dumps(key)


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    # A JSON string is a TOML basic string (same escapes), non-ASCII kept as it is; TOML also
    # wants DEL escaped, which JSON leaves alone.
    return json.dumps(str(value), ensure_ascii=False).replace("\x7f", "\\u007f")
