"""Who may call the API, and what a request must look like to change anything.

- A token is created at first start (`<home>/api_token`, mode 0600). On any bind but loopback
  it is required on every request: `Authorization: Bearer <token>`, or for a browser the
  HttpOnly SameSite=Strict cookie the login page sets (so EventSource works without a token in
  the URL, where it would end up in logs and history).
- On a loopback bind, a request whose `Host` is not a loopback name is refused: a web page on
  another site that rebinds its DNS name to 127.0.0.1 still sends its own name (DNS rebinding,
  as Jupyter Server refuses it).
- A state-changing request must say `Content-Type: application/json` (an empty `{}` body is
  fine; uploads are base64 inside the JSON). A page on another site can send a form post or a
  bodiless POST without asking, but not a JSON one: that needs a CORS preflight, and no CORS
  header is ever sent unless `[server] cors_origins` lists the origin. A DELETE without a body
  is never sent across sites without a preflight either, so it needs no content type.
- A body larger than MAX_BODY is refused before it is read into memory.
- A browser that opens a page without the cookie is sent to the login page (303); an API call
  without the token is answered 401, as before.

A pure ASGI middleware (not BaseHTTPMiddleware), so the event stream passes through untouched.
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from starlette.datastructures import Headers
from starlette.requests import cookie_parser
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from stablenew import private_files

COOKIE = "stablenew_token"
MAX_BODY = 256 * 2**20  # bytes: packs and base64 init images fit; a runaway client does not
STATE_CHANGING = {"POST", "PUT", "PATCH"}
# Reachable without the token when one is required: the page and the call that log in, and the
# files that page uses (no data in them).
OPEN_PATHS = {"/login", "/api/v1/login", "/web/login.js", "/web/app.css", "/web/icon.svg"}


def is_loopback(host: str) -> bool:
    """A name or address that only this machine can reach."""
    name = host.strip().strip("[]").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def host_name(header: str) -> str:
    """The name of a Host header, without its port ("[::1]:8000" -> "::1")."""
    header = header.strip()
    if header.startswith("["):
        return header[1 : header.find("]")] if "]" in header else header
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


def load_or_create_token(path: Path) -> str:
    """The API token: read it, or create it (owner-only from its first byte)."""
    try:
        token = path.read_text().strip()
        if token:
            return token
    except FileNotFoundError:
        pass
    token = secrets.token_urlsafe(32)
    private_files.write(path, (token + "\n").encode())
    return token


@dataclass(frozen=True)
class Security:
    token: str
    token_required: bool  # any bind but loopback
    check_host: bool  # a loopback bind: refuse non-loopback Host headers
    cors_origins: tuple[str, ...] = field(default_factory=tuple)

    @classmethod
    def for_bind(cls, host: str, token: str, cors_origins: Iterable[str] = ()) -> Security:
        loopback = is_loopback(host)
        return cls(token, not loopback, loopback, tuple(cors_origins))

    def authorized(self, headers: Headers) -> bool:
        given = ""
        scheme, _, credentials = headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer":
            given = credentials.strip()
        elif "cookie" in headers:
            given = cookie_parser(headers["cookie"]).get(COOKIE, "")
        return bool(given) and hmac.compare_digest(given.encode(), self.token.encode())


class Guard:
    def __init__(self, app: ASGIApp, security: Security) -> None:
        self.app = app
        self.security = security

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        s = self.security
        method = scope["method"]
        if s.check_host and "host" in headers and not is_loopback(host_name(headers["host"])):
            await _refuse(send, 403, "refused: the Host header is not a loopback name")
            return
        if s.token_required and scope["path"] not in OPEN_PATHS and not s.authorized(headers):
            if _is_page_visit(method, scope["path"], headers):
                await _redirect(send, "/login")  # a person at a browser: the login page
                return
            await _refuse(
                send,
                401,
                "the API token is required: Authorization: Bearer <token> (or log in at /login)",
                [(b"www-authenticate", b"Bearer")],
            )
            return
        length = headers.get("content-length", "")
        has_body = (length.isdigit() and int(length) > 0) or "transfer-encoding" in headers
        if method in STATE_CHANGING or (method == "DELETE" and has_body):
            kind = headers.get("content-type", "").split(";")[0].strip().lower()
            if kind != "application/json":
                await _refuse(
                    send,
                    415,
                    "a request that changes something must be Content-Type: application/json",
                )
                return
        if length.isdigit() and int(length) > MAX_BODY:
            await _refuse(send, 413, f"the body is larger than {MAX_BODY // 2**20} MiB")
            return
        await self.app(scope, _bounded(receive), send)


def _is_page_visit(method: str, path: str, headers: Headers) -> bool:
    """A browser opening a page (not a script, not an API call): it gets the login page."""
    return (
        method == "GET"
        and not path.startswith("/api/")
        and "text/html" in headers.get("accept", "")
    )


async def _redirect(send: Send, location: str) -> None:
    headers: list[Any] = [
        (b"location", location.encode()),
        (b"content-length", b"0"),
        (b"cache-control", b"no-store"),
    ]
    await send({"type": "http.response.start", "status": 303, "headers": headers})
    await send({"type": "http.response.body", "body": b""})


def _bounded(receive: Receive) -> Receive:
    """A body sent without a length is cut off at MAX_BODY too."""
    seen = 0

    async def bounded() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > MAX_BODY:
                raise BodyTooLarge(f"the body is larger than {MAX_BODY // 2**20} MiB")
        return message

    return bounded


class BodyTooLarge(Exception):
    """A body sent without a length ran past MAX_BODY (answered 413)."""


async def _refuse(
    send: Send, status: int, detail: str, extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    body = orjson.dumps({"detail": detail, "type": "Refused"})
    headers: list[Any] = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *(extra or []),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
