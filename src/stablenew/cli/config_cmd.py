"""`stablenew config show`: the effective configuration (defaults plus <home>/config.toml),
every credential masked."""

from __future__ import annotations

import json
from typing import Any

import typer

from stablenew.app.config import shown
from stablenew.cli.common import json_option
from stablenew.cli.output import out

config_app = typer.Typer(help="Configuration.", no_args_is_help=True)


@config_app.command("show")
def config_show(ctx: typer.Context, json_out: bool = json_option()) -> None:
    """The effective configuration: the defaults, overridden by <home>/config.toml. Shown as
    TOML, so a section can be copied into the file."""
    out.json = json_out
    config = shown(ctx.obj.config())
    if out.json:
        out.document("config", config, home=str(ctx.obj.home))
        return
    out.line(f"# home: {ctx.obj.home}")
    out.line(f"# file: {ctx.obj.home / 'config.toml'}")
    for section, values in config.items():
        if isinstance(values, list):  # an array of tables: [[backends]], [[webhooks]]
            if not values:
                out.line("")
                out.line(f"# [[{section}]]: none")
            for entry in values:
                out.line("")
                out.line((f"[[{section}]]", "bold"))
                for key, value in entry.items():
                    out.line(*toml_line(key, value))
            continue
        out.line("")
        out.line((f"[{section}]", "bold"))
        for key, value in values.items() if isinstance(values, dict) else ():
            out.line(*toml_line(key, value))


def toml_line(key: str, value: Any) -> tuple[str, ...]:
    """`key = value` in TOML; a value that is not set is a comment (TOML has no null)."""
    if value is None:
        return (f"# {key} = (not set)",)
    return (f"{key} = {toml_value(value)}",)


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {toml_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return json.dumps(str(value), ensure_ascii=False)  # a TOML basic string is a JSON string
