"""`stablenew webui-sim`: run the reference backend."""

from __future__ import annotations

import typer

from stablenew.webui_sim.faults import FaultSpec, merge, parse_fault_flag


def _parse_auth(value: str | None) -> dict[str, str]:
    users: dict[str, str] = {}
    for pair in (value or "").split(","):
        if not pair:
            continue
        user, sep, password = pair.partition(":")
        if not sep or not user:
            raise typer.BadParameter(
                f"expected user:password, got {pair!r}", param_hint="--api-auth"
            )
        users[user] = password
    return users


def webui_sim(
    host: str = typer.Option("127.0.0.1", help="Interface to bind (loopback by default)."),
    port: int = typer.Option(7861, help="Port to bind; 0 picks a free one (printed at start)."),
    step_ms: float = typer.Option(0.0, help="Time per sampling step, in milliseconds."),
    upscale_ms_per_mp: float = typer.Option(0.0, help="Upscale time per output megapixel (ms)."),
    model_load_ms: float = typer.Option(0.0, help="Time a checkpoint load takes (ms)."),
    fault: list[str] = typer.Option(
        [],
        help="Inject a fault: kind:stage[:number[:option]], e.g. crash:txt2img:1, "
        "hang:upscale:1:ignore_interrupt[:end], http_error:upscale:2:oom, "
        "garbage:txt2img:1:bad_base64.",
    ),
    slow_start: float = typer.Option(0.0, help="Seconds to wait before binding the port."),
    fail_start: bool = typer.Option(False, help="Exit at once with an error on stderr."),
    api_auth: str | None = typer.Option(
        None, help="Basic auth for /sdapi and /sim: user:pass[,user:pass]."
    ),
    nowebui: bool = typer.Option(False, help="API-only mode: /internal/ping answers 404."),
    models: str | None = typer.Option(
        None,
        help="Only these checkpoints, by model_name: NAME,NAME (the first loads at start). "
        "Default: the whole catalog.",
    ),
) -> None:
    """Run the reference backend: an A1111-compatible server that misbehaves on demand."""
    from stablenew.webui_sim import catalog
    from stablenew.webui_sim.backend import SimConfig
    from stablenew.webui_sim.processing import Speed
    from stablenew.webui_sim.serve import serve

    try:
        faults = merge([parse_fault_flag(f) for f in fault]) if fault else FaultSpec()
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--fault") from exc
    model_names = tuple(name.strip() for name in (models or "").split(",") if name.strip())
    try:
        catalog.select_checkpoints(model_names)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--models") from exc
    config = SimConfig(
        speed=Speed(step_ms=step_ms, upscale_ms_per_mp=upscale_ms_per_mp),
        model_load_ms=model_load_ms,
        faults=faults,
        api_auth=_parse_auth(api_auth),
        nowebui=nowebui,
        models=model_names,
    )
    raise typer.Exit(serve(config, host, port, slow_start=slow_start, fail_start=fail_start))
