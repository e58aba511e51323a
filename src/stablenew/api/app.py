"""The FastAPI app of `stablenew serve`: routes by resource, one error handler, the guard.

`create_app` wires an app around Services that the caller owns (started as the home's owner by
`stablenew serve`; tests may pass any Services). The routes call the controllers only.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.middleware.gzip import GZipMiddleware
from fastapi.staticfiles import StaticFiles

import stablenew
from stablenew.api import problems
from stablenew.api.context import ApiContext
from stablenew.api.headers import SecurityHeaders
from stablenew.api.routes import (
    a1111,
    agent_scheduler,
    backend,
    compose,
    events,
    jobs,
    outputs,
    queue,
    site,
    web,
)
from stablenew.api.security import Guard, Security
from stablenew.api.sse import EventHub
from stablenew.app.metrics import Metrics
from stablenew.app.services import Services

DESCRIPTION = """\
StableNew's HTTP API: submit and follow jobs, the queue and the backend, a job's files, the
event stream (SSE, replayable with `Last-Event-ID`), an A1111-shaped door and an
agent-scheduler-compatible one. The web UI at `/` uses nothing else. Off loopback every request
needs `Authorization: Bearer <token>` (the token is in the home, see `stablenew serve`'s first
lines), or the cookie `/login` sets.
"""


def create_app(services: Services, security: Security, metrics: Metrics | None = None) -> FastAPI:
    metrics = metrics or Metrics(services.jobs, services.backends)
    hub = EventHub(services.jobs, on_clients=metrics.sse_clients.set)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        hub.start(asyncio.get_running_loop())
        try:
            yield
        finally:
            hub.close()

    app = FastAPI(
        title="StableNew API",
        version=stablenew.__version__,
        description=DESCRIPTION,
        docs_url=None,  # served by routes/site.py with local assets
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.context = ApiContext(services, security, hub, metrics)
    problems.install(app)
    routers = (jobs, outputs, compose, queue, backend, events, a1111, agent_scheduler, site, web)
    for module in routers:
        app.include_router(module.router)
    app.include_router(backend.pool_router)
    static = Path(str(resources.files("stablenew.api").joinpath("static")))
    app.mount(site.STATIC, StaticFiles(directory=static), name="static")
    app.mount(web.WEB, web.WebFiles(directory=web.web_folder()), name="web")
    # JSON and the web UI's files compressed for a browser on the LAN (never the event stream,
    # whose frames must not wait in a compressor, nor images, which are compressed already).
    app.add_middleware(GZipMiddleware, minimum_size=1024, compresslevel=5)
    app.add_middleware(Guard, security=security)
    app.add_middleware(SecurityHeaders)  # around the guard: its refusals carry them too
    if security.cors_origins:  # outermost: a preflight carries no token and changes nothing
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(security.cors_origins),
            allow_methods=["*"],
            allow_headers=["*"],
            allow_credentials=True,
        )
    return app


def context_of(app: FastAPI) -> ApiContext:
    context: ApiContext = app.state.context
    return context
