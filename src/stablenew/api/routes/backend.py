"""/api/v1/backend: the backend (a pool's first) with its lists, output and restart;
/api/v1/backends: every backend of the pool, each by name."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query

from stablenew.api.context import ApiContext, Ctx
from stablenew.api.models import BackendPoolMember, BackendView, Empty
from stablenew.api.strict_json import StrictJSONRoute
from stablenew.app.backend_info import backend_kind
from stablenew.app.controllers import BackendController, BackendStatus

router = APIRouter(prefix="/api/v1/backend", tags=["backend"], route_class=StrictJSONRoute)


def backend_view(ctx: ApiContext) -> BackendView:
    b = ctx.services.backend
    return BackendView(
        state=b.state.value,
        url=b.shown_url,
        managed=b.managed,
        restarts=b.restarts,
        breaker=b.breaker.value,
        kind=backend_kind(b) if b.url else None,
    )


@router.get("", response_model=BackendView)
def state(ctx: Ctx) -> BackendView:
    return backend_view(ctx)


@router.post("/restart", response_model=BackendView)
def restart(ctx: Ctx, body: Empty | None = None) -> BackendView:
    """Restart the managed backend and wait until it is ready (a running job's call is
    recovered as after a crash). Resets the crash-loop breaker."""
    ctx.services.backend.restart()
    return backend_view(ctx)


@router.get("/tail")
def tail(ctx: Ctx, lines: Annotated[int, Query(ge=1, le=5000)] = 200) -> dict[str, str]:
    """The last lines the managed backend printed (stdout, stderr), credentials masked."""
    return ctx.services.backend.tail(lines)


def _list(ctx: ApiContext, ask: Callable[[Any], Any]) -> Any:
    return ask(ctx.services.backend.client())


@router.get("/models")
def models(ctx: Ctx) -> Any:
    """The backend's checkpoints, as A1111's /sdapi/v1/sd-models lists them."""
    return _list(ctx, lambda c: c.sd_models())


@router.get("/vaes")
def vaes(ctx: Ctx) -> Any:
    return _list(ctx, lambda c: c.sd_vae())


@router.get("/samplers")
def samplers(ctx: Ctx) -> Any:
    return _list(ctx, lambda c: c.samplers())


@router.get("/schedulers")
def schedulers(ctx: Ctx) -> Any:
    return _list(ctx, lambda c: c.schedulers())


@router.get("/upscalers")
def upscalers(ctx: Ctx) -> Any:
    return _list(ctx, lambda c: c.upscalers())


@router.get("/loras")
def loras(ctx: Ctx) -> Any:
    return _list(ctx, lambda c: c.loras())


@router.get("/embeddings")
def embeddings(ctx: Ctx) -> Any:
    """Textual-inversion embeddings, as A1111's /sdapi/v1/embeddings lists them
    (`{"loaded": {...}, "skipped": {...}}`); a prompt names one as `<embedding:NAME>`."""
    return _list(ctx, lambda c: c.embeddings())


pool_router = APIRouter(prefix="/api/v1/backends", tags=["backend"], route_class=StrictJSONRoute)


def _member(status: BackendStatus) -> BackendPoolMember:
    return BackendPoolMember(
        name=status.name,
        labels=status.labels,
        state=status.state.value,
        url=status.url,
        managed=status.managed,
        loaded_model=status.loaded_model,
        current_job=status.current_job,
        held=status.held,
        restarts=status.restarts,
    )


def _named(ctx: ApiContext, name: str) -> BackendController:
    for controller in ctx.services.backends:
        if controller.name == name:
            return controller
    known = ", ".join(b.name for b in ctx.services.backends)
    raise HTTPException(404, f"no backend named {name!r} (backends: {known})")


@pool_router.get("", response_model=list[BackendPoolMember])
def pool(ctx: Ctx) -> list[BackendPoolMember]:
    """Every backend of the pool: state, the model it has loaded, the job it runs, whether its
    crash-loop breaker holds it (a single `[backend]` is a pool of one named "default")."""
    return [_member(status) for status in ctx.services.backend_statuses()]


@pool_router.get("/{name}", response_model=BackendPoolMember)
def one(ctx: Ctx, name: str) -> BackendPoolMember:
    """One backend of the pool, by name."""
    _named(ctx, name)
    return next(_member(s) for s in ctx.services.backend_statuses() if s.name == name)


@pool_router.post("/{name}/restart", response_model=BackendPoolMember)
def restart_one(ctx: Ctx, name: str, body: Empty | None = None) -> BackendPoolMember:
    """Restart this managed backend and wait until it is ready; resets its breaker (a set-aside
    backend takes jobs again)."""
    controller = _named(ctx, name)
    controller.restart()
    return _member(controller.status())


@pool_router.get("/{name}/tail")
def tail_one(
    ctx: Ctx, name: str, lines: Annotated[int, Query(ge=1, le=5000)] = 200
) -> dict[str, str]:
    """The last lines this managed backend printed (stdout, stderr), credentials masked."""
    return _named(ctx, name).tail(lines)


@pool_router.get("/{name}/models")
def models_of(ctx: Ctx, name: str) -> Any:
    """This backend's checkpoints: what capability matching sends it jobs for."""
    return _named(ctx, name).client().sd_models()
