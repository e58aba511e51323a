"""Headers every answer carries: a strict Content-Security-Policy and its companions.

The web UI's pages load only StableNew's own files: no inline script or style (a page that has
one, such as /docs, names it by hash in its own policy), no other origin for anything (no CDN, no
web fonts, nothing leaves the machine), and no framing by another site. A route that sets its own
`Content-Security-Policy` keeps it; every other answer gets `POLICY`.

A pure ASGI middleware, so the event stream passes through untouched.
"""

from __future__ import annotations

import base64
import hashlib
import re

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",  # data: only for icons inside a stylesheet (Swagger UI's)
        "connect-src 'self'",
        "font-src 'self'",
        "manifest-src 'self'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
COMPANIONS = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-resource-policy": "same-origin",
}
_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)


def script_hashes(html: str) -> list[str]:
    """The CSP source of every inline script of a page (`'sha256-...'`)."""
    return [
        "'sha256-" + base64.b64encode(hashlib.sha256(body.encode()).digest()).decode() + "'"
        for body in _INLINE_SCRIPT.findall(html)
    ]


def policy_with_scripts(html: str, extra: str = "") -> str:
    """POLICY, with this page's inline scripts allowed by hash (and nothing else inline)."""
    scripts = " ".join(["'self'", *script_hashes(html)])
    return POLICY.replace("script-src 'self'", f"script-src {scripts}") + extra


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                if "content-security-policy" not in headers:
                    headers["content-security-policy"] = POLICY
                for name, value in COMPANIONS.items():
                    if name not in headers:
                        headers[name] = value
            await send(message)

        await self.app(scope, receive, with_headers)
