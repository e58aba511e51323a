"""Typed backend errors. Each carries the endpoint, the stage, the HTTP status and a snippet.

The recovery layer decides from the type alone: Unavailable, ServerError, BadResponse and Timeout
may be cured by a restart; ApplicationError and Rejected will fail the same way again.
"""

from __future__ import annotations

import re

DETERMINISTIC_CAUSES = re.compile(
    r"out of memory|OutOfMemoryError|NansException|not enough precision|does not support half type",
    re.IGNORECASE,
)


class BackendError(Exception):
    def __init__(
        self,
        message: str,
        *,
        endpoint: str,
        stage: str | None = None,
        status: int | None = None,
        snippet: str = "",
    ) -> None:
        super().__init__(message)
        self.message = message
        self.endpoint = endpoint
        self.stage = stage
        self.status = status
        self.snippet = snippet[:500]

    def __str__(self) -> str:
        where = f"{self.stage} " if self.stage else ""
        status = f" HTTP {self.status}" if self.status else ""
        return f"{where}{self.endpoint}{status}: {self.message}"

    def to_dict(self) -> dict[str, object]:
        return {
            "type": type(self).__name__,
            "message": self.message,
            "endpoint": self.endpoint,
            "stage": self.stage,
            "status": self.status,
            "snippet": self.snippet,
        }


class BackendUnavailable(BackendError):
    """Connection refused, reset or closed mid-response."""


class BackendServerError(BackendError):
    """A 5xx answer; the backend may be in a bad state."""


class BackendApplicationError(BackendError):
    """A 5xx whose body names a deterministic cause (out of memory, NaNs, precision)."""


class BackendTimeout(BackendError):
    """No answer within the call kind's read timeout."""


class BackendBadResponse(BackendError):
    """A body that is not what the API promises: not JSON, no images, bad base64, not an image."""


class BackendRejected(BackendError):
    """A 4xx: the request itself is wrong and will be refused again."""


RECOVERABLE: tuple[type[BackendError], ...] = (
    BackendUnavailable,
    BackendServerError,
    BackendBadResponse,
    BackendTimeout,
)
