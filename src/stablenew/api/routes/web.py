"""The web UI at `/`: static files from the `stablenew.web` room, served by this process.

The UI is HTML, CSS and JavaScript files shipped in the Python package (no build step at
install, nothing fetched from another origin); it talks to the public API and its event stream
only. `/login` is its login page (for a bind that needs the token); `/api/v1/session` tells the
page whether a login is in use.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel
from starlette.responses import Response
from starlette.types import Scope

import stablenew
from stablenew.api.context import Ctx
from stablenew.api.strict_json import StrictJSONRoute

router = APIRouter(route_class=StrictJSONRoute)
WEB = "/web"
NO_CACHE = {"Cache-Control": "no-cache"}  # always revalidated (ETag): an upgrade shows at once


def web_folder() -> Path:
    """Where the web UI's files are (inside the installed package)."""
    return Path(str(resources.files("stablenew").joinpath("web")))


class WebFiles(StaticFiles):
    """The UI's files, revalidated on every load (cheap: 304 with the ETag)."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers.setdefault("cache-control", NO_CACHE["Cache-Control"])
        return response


class Session(BaseModel):
    token_required: bool  # a bind off loopback: the browser logged in with the token
    version: str


@router.get("/", include_in_schema=False)
def index() -> FileResponse:
    """The web UI."""
    return FileResponse(web_folder() / "index.html", headers=NO_CACHE)


@router.get("/login", include_in_schema=False)
def login_page() -> FileResponse:
    """Paste the API token once; the HttpOnly cookie it sets does the rest."""
    return FileResponse(web_folder() / "login.html", headers={"Cache-Control": "no-store"})


@router.get("/api/v1/session", tags=["auth"], response_model=Session)
def session(ctx: Ctx) -> Session:
    """Whether this server asks for the token (so the UI offers to log out), its version."""
    return Session(token_required=ctx.security.token_required, version=stablenew.__version__)
