"""The reference backend's HTTP surface: A1111's routes, error shapes and auth, plus `/sim/*`.

Handlers are plain sync functions (run in the thread pool, as in A1111), so a generation waiting
for the queue lock never blocks `/progress`, `/interrupt` or the GET lists.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

import psutil
from fastapi import Body, FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.responses import Response

from stablenew.webui_sim import catalog
from stablenew.webui_sim.backend import SimBackend, encode_preview, log_api_error
from stablenew.webui_sim.faults import FaultSpec
from stablenew.webui_sim.models import (
    ExtrasSingleImageRequest,
    Img2ImgRequest,
    Txt2ImgRequest,
)
from stablenew.webui_sim.processing import ApiError, Extras, Img2Img, Txt2Img
from stablenew.webui_sim.runner import ProcessingRequest

# Paths behind `--api-auth`: A1111's own routes, and the reference backend's control surface.
PROTECTED = ("/sdapi/", "/sim/")
# Generation calls whose raw bodies `/sim/requests` keeps.
LOGGED = frozenset({"/sdapi/v1/txt2img", "/sdapi/v1/img2img", "/sdapi/v1/extra-single-image"})


def _error_body(error: str, detail: str, errors: str) -> dict[str, str]:
    return {"error": error, "detail": detail, "body": "", "errors": errors}


def _unauthorized(detail: str) -> JSONResponse:
    return JSONResponse(_error_body("HTTPException", detail, f"401: {detail}"), status_code=401)


def _check_auth(request: Request, users: dict[str, str]) -> JSONResponse | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "basic" or not token:
        return _unauthorized("Not authenticated")
    try:
        user, _, password = base64.b64decode(token).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return _unauthorized("Not authenticated")
    expected = users.get(user)
    if expected is None or not secrets.compare_digest(expected, password):
        return _unauthorized("Incorrect username or password")
    return None


def create_app(backend: SimBackend) -> FastAPI:
    app = FastAPI(title="StableNew reference backend", version=catalog.VERSION)
    users = backend.config.api_auth

    @app.middleware("http")
    async def api_middleware(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await _handle(request, call_next)
        # Every answer says what we are, errors and 401s included: a client probing a port for
        # A1111 must be able to tell the reference backend apart without credentials.
        response.headers[catalog.IDENTITY_HEADER] = catalog.VERSION
        return response

    async def _handle(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        # A1111's api_middleware: auth on /sdapi, any escaping exception as its JSON error body.
        # /sim/* takes the same credentials: faults and stats are no less privileged than /sdapi.
        path = request.url.path
        backend.stats.count_endpoint(path)
        if users and path.startswith(PROTECTED):
            denied = _check_auth(request, users)
            if denied is not None:
                return denied
        if request.method == "POST" and path in LOGGED:
            # Read here, before any parsing; Starlette hands the same bytes on to the handler.
            backend.requests.record(path, await request.body())
        try:
            return await call_next(request)
        except Exception as exc:
            log_api_error(request.method, str(request.url), exc)
            status = getattr(exc, "status_code", 500)
            name = getattr(exc, "error_name", type(exc).__name__)
            return JSONResponse(_error_body(name, "", str(exc)), status_code=status)

    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> JSONResponse:
        errors = f"{exc.status_code}: {exc.detail}" if exc.error == "HTTPException" else exc.detail
        return JSONResponse(_error_body(exc.error, exc.detail, errors), status_code=exc.status_code)

    def run(processing: Any) -> Any:
        return backend.runner.run(ProcessingRequest(processing))

    @app.post("/sdapi/v1/txt2img")
    def txt2img(req: Txt2ImgRequest) -> Any:
        return run(Txt2Img(req, backend.context()))

    @app.post("/sdapi/v1/img2img")
    def img2img(req: Img2ImgRequest) -> Any:
        return run(Img2Img(req, backend.context()))

    @app.post("/sdapi/v1/extra-single-image")
    def extra_single_image(req: ExtrasSingleImageRequest) -> Any:
        return run(Extras(req, backend.context()))

    @app.get("/sdapi/v1/progress")
    def progress(skip_current_image: bool = False) -> dict[str, Any]:
        # A live preview needs live_previews_enable (on by default, as in A1111) and appears
        # every show_progress_every_n_steps steps (10 by default): none before the 10th step.
        options = backend.context().options
        show = bool(options.get("live_previews_enable")) and not skip_current_image
        every = int(options.get("show_progress_every_n_steps") or 0) if show else 0
        snap = backend.progress.snapshot(preview_every=every)
        preview = snap.pop("current_image")
        snap["current_image"] = encode_preview(preview) if show and preview is not None else None
        snap["textinfo"] = None
        return snap

    @app.post("/sdapi/v1/interrupt")
    def interrupt() -> dict[str, Any]:
        backend.stats.count_interrupt()
        backend.progress.interrupt()
        return {}

    @app.post("/sdapi/v1/skip")
    def skip() -> None:
        backend.stats.count_skip()
        backend.progress.skip()

    @app.get("/sdapi/v1/options")
    def get_options() -> dict[str, Any]:
        return backend.context().options

    @app.post("/sdapi/v1/options")
    def set_options(values: dict[str, Any] = Body(...)) -> None:
        backend.set_options(values)

    @app.get("/sdapi/v1/sd-models")
    def sd_models() -> list[dict[str, object]]:
        return [c.as_api() for c in backend.checkpoints]

    @app.get("/sdapi/v1/sd-vae")
    def sd_vae() -> list[dict[str, object]]:
        return [{"model_name": v, "filename": f"/models/VAE/{v}"} for v in catalog.VAES]

    @app.get("/sdapi/v1/samplers")
    def samplers() -> list[dict[str, object]]:
        return [{"name": s, "aliases": [], "options": {}} for s in catalog.SAMPLERS]

    @app.get("/sdapi/v1/schedulers")
    def schedulers() -> list[dict[str, object]]:
        return [
            {"name": n, "label": lbl, "aliases": None, "default_rho": -1, "need_inner_model": False}
            for n, lbl in catalog.SCHEDULERS
        ]

    @app.get("/sdapi/v1/upscalers")
    def upscalers() -> list[dict[str, object]]:
        return [
            {
                "name": u.name,
                "model_name": u.name if u.model else None,
                "model_path": f"/models/ESRGAN/{u.name}.pth" if u.model else None,
                "model_url": None,
                "scale": u.scale,
            }
            for u in catalog.UPSCALERS
        ]

    @app.get("/sdapi/v1/latent-upscale-modes")
    def latent_upscale_modes() -> list[dict[str, object]]:
        return [{"name": name} for name in catalog.LATENT_UPSCALE_MODES]

    @app.get("/sdapi/v1/loras")
    def loras() -> list[dict[str, object]]:
        return [lora.as_api() for lora in catalog.LORAS]

    @app.get("/sdapi/v1/embeddings")
    def embeddings() -> dict[str, object]:
        loaded = {
            name: {
                "step": None,
                "sd_checkpoint": None,
                "sd_checkpoint_name": None,
                "shape": 768,
                "vectors": 1,
            }
            for name in catalog.EMBEDDINGS
        }
        return {"loaded": loaded, "skipped": {}}

    @app.get("/sdapi/v1/scripts")
    def scripts() -> dict[str, list[str]]:
        names = [title.lower() for title in catalog.ALWAYSON_SCRIPTS]
        return {"txt2img": names, "img2img": list(names)}

    @app.get("/sdapi/v1/memory")
    def memory() -> dict[str, Any]:
        vm = psutil.virtual_memory()
        return {
            "ram": {"free": vm.available, "used": vm.total - vm.available, "total": vm.total},
            "cuda": {"error": "unavailable"},
        }

    @app.get("/adetailer/v1/version")
    def adetailer_version() -> dict[str, str]:
        return {"version": catalog.ADETAILER_VERSION}

    @app.get("/adetailer/v1/ad_model")
    def adetailer_models() -> dict[str, list[str]]:
        return {"ad_model": list(catalog.ADETAILER_MODELS)}

    if not backend.config.nowebui:

        @app.get("/internal/ping")
        def ping() -> dict[str, Any]:
            return {}

    @app.get("/sim/faults")
    def get_faults() -> dict[str, object]:
        return backend.faults.active()

    @app.post("/sim/faults")
    def set_faults(spec: dict[str, Any] = Body(...)) -> Any:
        try:
            backend.faults.replace(FaultSpec.model_validate(spec))
        except ValidationError as exc:
            detail = exc.errors(include_url=False, include_context=False)
            return JSONResponse({"detail": detail}, status_code=422)
        return backend.faults.active()

    @app.get("/sim/requests")
    def received() -> list[dict[str, str]]:
        return backend.requests.entries()

    @app.delete("/sim/requests")
    def clear_received() -> dict[str, int]:
        return {"cleared": backend.requests.clear()}

    @app.get("/sim/stats")
    def stats() -> dict[str, object]:
        return {**backend.stats.snapshot(), "active_faults": backend.faults.active()}

    return app
