"""Which error an A1111 answer is, read from its status and its error body (reference §2, §9).

A1111 turns any exception into `{"error": <class name>, "detail", "body", "errors": str(e)}` with
status 500. Some of those are deterministic: the same request fails the same way after a restart
(an unknown upscaler is an AssertionError, a bad init image "Invalid encoded image", CUDA out of
memory); others mean the backend is in a bad state (a CUDA error, a generic RuntimeError), which
a restart may cure. The recovery layer then decides from the type alone.
"""

from __future__ import annotations

import re
from typing import Any

from stablenew.errors import (
    BackendApplicationError,
    BackendAuthRejected,
    BackendError,
    BackendOutOfMemory,
    BackendRejected,
    BackendServerError,
)

OUT_OF_MEMORY = re.compile(r"out of memory|OutOfMemoryError", re.IGNORECASE)
DETERMINISTIC_TEXT = re.compile(
    r"could not find upscaler|Invalid encoded image|not found|NansException|"
    r"not enough precision|does not support half type|Requests not allowed|"
    r"Request to local resource",
    re.IGNORECASE,
)
# Exception classes that come from the request itself, not from the state of the process.
DETERMINISTIC_NAMES = {
    "AssertionError",
    "HTTPException",
    "NansException",
    "ValueError",
    "KeyError",
    "TypeError",
    "IndexError",
    "FileNotFoundError",
    "NotImplementedError",
    "OutOfMemoryError",
}


def error_kind(status: int, body: Any, text: str) -> type[BackendError]:
    """The error type for an HTTP answer of `status` >= 400."""
    if status in (401, 403):
        return BackendAuthRejected
    if status < 500:
        return BackendRejected
    name = str(body.get("error", "")) if isinstance(body, dict) else ""
    if OUT_OF_MEMORY.search(text) or name == "OutOfMemoryError":
        return BackendOutOfMemory
    if name in DETERMINISTIC_NAMES or DETERMINISTIC_TEXT.search(text):
        return BackendApplicationError
    return BackendServerError


def error_message(body: Any) -> str:
    if isinstance(body, dict):
        parts = [str(body.get(k)) for k in ("error", "errors", "detail") if body.get(k)]
        return ": ".join(dict.fromkeys(parts))
    return ""
