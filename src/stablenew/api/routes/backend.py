"""/api/v1/backend: its state, its lists (models, samplers, ...), its output, restart."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Query

from stablenew.api.context import ApiContext, Ctx
from stablenew.api.models import BackendPoolMember, BackendView, Empty
from stablenew.app.backend_info import backend_kind

router = APIRouter(prefix="/api/v1/backend", tags=["backend"])


def backend_view(ctx: ApiContext) -> BackendView:
    b = ctx.services.backend
    return BackendView(
        state=b.state.value,
        url=b.url,
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


pool_router = APIRouter(prefix="/api/v1/backends", tags=["backend"])


@pool_router.get("", response_model=list[BackendPoolMember])
def pool(ctx: Ctx) -> list[BackendPoolMember]:
    """Every backend of the pool: state, the model it has loaded, the job it runs, whether its
    crash-loop breaker holds it (a single `[backend]` is a pool of one named "default")."""
    members = []
    for controller in ctx.services.backends:
        status = controller.status()
        members.append(
            BackendPoolMember(
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
        )
    return members
