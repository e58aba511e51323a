"""The pages around the API: /docs (served offline, its one inline script allowed by hash),
the login page (the web UI's, see routes/web.py), /metrics."""

from __future__ import annotations

import hmac

from fastapi import APIRouter, HTTPException, Response
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse

from stablenew.api.context import Ctx
from stablenew.api.headers import policy_with_scripts
from stablenew.api.models import LoginBody
from stablenew.api.security import COOKIE
from stablenew.api.strict_json import StrictJSONRoute
from stablenew.app.metrics import CONTENT_TYPE

router = APIRouter(route_class=StrictJSONRoute)
STATIC = "/static"
COOKIE_DAYS = 30


@router.get("/docs", include_in_schema=False)
def docs() -> HTMLResponse:
    """Swagger UI from StableNew's own files (no CDN): the docs work offline."""
    page = get_swagger_ui_html(
        openapi_url="/openapi.json",
        title="StableNew API",
        swagger_js_url=f"{STATIC}/swagger-ui/swagger-ui-bundle.js",
        swagger_css_url=f"{STATIC}/swagger-ui/swagger-ui.css",
        swagger_favicon_url=f"{STATIC}/swagger-ui/favicon-32x32.png",
        # No badge fetched from validator.swagger.io either.
        swagger_ui_parameters={"validatorUrl": None},
    )
    html = bytes(page.body).decode()
    # Swagger UI sets element styles from its script (allowed) and nothing else inline.
    page.headers["content-security-policy"] = policy_with_scripts(html)
    return page


@router.post("/api/v1/login", tags=["auth"])
def login(body: LoginBody, ctx: Ctx, response: Response) -> dict[str, bool]:
    """Exchange the API token for an HttpOnly SameSite=Strict cookie (for a browser, so
    EventSource needs no token in its URL)."""
    token = ctx.security.token
    if not hmac.compare_digest(body.token.strip().encode(), token.encode()):
        raise HTTPException(401, "that is not the API token")
    response.set_cookie(
        COOKIE,
        token,
        max_age=COOKIE_DAYS * 86400,
        httponly=True,
        samesite="strict",
        path="/",
    )
    return {"ok": True}


@router.post("/api/v1/logout", tags=["auth"])
def logout(response: Response) -> dict[str, bool]:
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
    return {"ok": True}


@router.get("/metrics", tags=["metrics"], response_class=Response)
def metrics(ctx: Ctx) -> Response:
    """Prometheus text: jobs by status, queue depth, stage durations, backend state and
    restarts, recoveries, webhook deliveries, event-stream clients."""
    return Response(ctx.metrics.render(), media_type=CONTENT_TYPE)
