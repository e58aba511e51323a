"""Every error StableNew raises on purpose, in one tree under `StableNewError`.

    StableNewError
    ├── InputError (ValueError)       bad input from a user: nothing was queued or changed
    │   ├── ConfigError               config.toml: names the key
    │   ├── SpecError                 a JobSpec that does not validate: names each field
    │   └── PackError                 a prompt pack: names the file, row and token
    ├── QueueError                    a queue operation that does not apply (unknown job, status)
    ├── StoreError                    jobs.db cannot be used: corrupt, not a database, disk full
    ├── HomeOwnedError                another process owns this home (runner + backend)
    ├── FolderNotOpened               the platform's file manager did not open a folder
    ├── PipelineError                 running one job
    │   ├── StageCancelled            the job's CancelToken stopped a stage
    │   ├── StageFailed               a stage could not be completed; carries the ErrorEnvelope
    │   ├── GuardViolation            an invariant of the run was about to break
    │   ├── UpscaleRefused            over the size limit, and the policy is to refuse
    │   └── OutputError               the output folder cannot be written (unwritable, full)
    └── BackendError                  talking to the backend; carries endpoint, stage, status
        ├── BackendUnavailable        transport: refused, reset, closed mid-answer   (restart)
        ├── BackendTimeout            no answer within the read timeout              (restart)
        ├── BackendBadResponse        protocol: not JSON, no images, bad base64      (restart)
        ├── BackendServerError        a 5xx from a backend in a bad state            (restart)
        ├── BackendStall              no progress for too long                       (restart)
        ├── BackendApplicationError   a 5xx that will repeat: unknown upscaler ...   (fail now)
        │   └── BackendOutOfMemory    CUDA out of memory                             (fail now)
        ├── BackendRejected           a 4xx: the request itself is wrong             (fail now)
        │   └── BackendAuthRejected   401/403: the credentials are wrong             (fail now)
        ├── BackendStartError         the backend did not become ready
        │   └── BackendCrashLoop      the crash-loop breaker is open: nothing starts it now
        ├── CallCancelled             a call given up on because its job was cancelled
        └── CallFailed                a call that recovery could not save; carries the report

The recovery layer decides from the type alone (`RECOVERABLE`); nothing matches type names.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from stablenew.jobs.outcome import ErrorEnvelope


class StableNewError(Exception):
    """The root: `except StableNewError` catches everything StableNew raises on purpose."""


class InputError(StableNewError, ValueError):
    """Input that cannot be used as it is; the message says where and what to fix."""


class ConfigError(InputError):
    """config.toml has a problem; the message names the file and the key."""


class SpecError(InputError):
    """A JobSpec that does not validate; the message names each field and why."""


class PackError(InputError):
    """A pack that cannot be used as it is; the message names the file, the row and the token."""


class QueueError(StableNewError, ValueError):
    """A queue operation that does not apply (unknown job, wrong status)."""


class StoreError(StableNewError):
    """The job database cannot be used; the message says what to do about it."""


class HomeOwnedError(StableNewError):
    """Another StableNew process owns this home: it runs the jobs and the backend."""


class FolderNotOpened(StableNewError, OSError):
    """The platform's file manager did not open a folder; names the folder and why."""

    def __init__(self, folder: str, reason: str) -> None:
        super().__init__(f"Could not open {folder}: {reason}")
        self.folder = folder
        self.reason = reason


# -- running a job ----------------------------------------------------------------------------


class PipelineError(StableNewError):
    """Something went wrong running one job (not the backend's own failures)."""


class StageCancelled(PipelineError):
    def __init__(self, stage: str, image_index: int | None, abandoned: bool) -> None:
        super().__init__(f"{stage} cancelled" + (" (call abandoned)" if abandoned else ""))
        self.stage = stage
        self.image_index = image_index
        self.abandoned = abandoned


class StageFailed(PipelineError):
    """The stage could not be completed; `envelope` is what the job's error record shows."""

    def __init__(self, envelope: ErrorEnvelope) -> None:
        super().__init__(envelope.message)
        self.envelope = envelope


class GuardViolation(PipelineError):
    """An invariant of the run was about to break (e.g. a second concurrent upscale)."""


class UpscaleRefused(PipelineError, ValueError):
    """The upscale would exceed the configured size limit and the policy is to refuse."""


class OutputError(PipelineError, OSError):
    """The output folder cannot be written. `reason` tells unwritable from full."""

    def __init__(self, message: str, *, reason: str, path: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.path = path


# -- the backend ------------------------------------------------------------------------------


class BackendError(StableNewError):
    """A failure talking to the backend; carries where (endpoint, stage) and what it answered."""

    def __init__(
        self,
        message: str,
        *,
        endpoint: str = "",
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
        where = " ".join(p for p in (self.stage or "", self.endpoint) if p)
        status = f" HTTP {self.status}" if self.status else ""
        return f"{where}{status}: {self.message}" if where or status else self.message

    def details(self) -> dict[str, Any]:
        return {
            "endpoint": self.endpoint or None,
            "stage": self.stage,
            "status": self.status,
            "snippet": self.snippet,
        }


class BackendUnavailable(BackendError):
    """Connection refused, reset or closed mid-response."""


class BackendTimeout(BackendError):
    """No answer within the call kind's read timeout."""


class BackendBadResponse(BackendError):
    """A body that is not what the API promises: not JSON, no images, bad base64, not an image."""


class BackendServerError(BackendError):
    """A 5xx answer from a backend that may be in a bad state."""


class BackendStall(BackendError):
    """No progress for too long; `honoured` says whether the interrupt freed the call."""

    def __init__(self, message: str, *, endpoint: str, stage: str | None, honoured: bool) -> None:
        super().__init__(message, endpoint=endpoint, stage=stage)
        self.honoured = honoured


class BackendApplicationError(BackendError):
    """A 5xx that names a cause a restart will not cure (unknown upscaler, bad image, NaNs)."""


class BackendOutOfMemory(BackendApplicationError):
    """The backend ran out of (GPU) memory for this request."""


class BackendRejected(BackendError):
    """A 4xx: the request itself is wrong and will be refused again."""


class BackendAuthRejected(BackendRejected):
    """401/403: the backend rejected the credentials."""


class BackendStartError(BackendError):
    """The backend did not become ready; the message carries the reason and the output tail."""


class BackendCrashLoop(BackendStartError):
    """The crash-loop breaker is open: the backend is not started again until the user resumes
    the queue or the cooldown allows one trial."""


class CallCancelled(BackendError):
    """A backend call given up on because its job was cancelled."""

    def __init__(self, *, endpoint: str, stage: str | None, abandoned: bool) -> None:
        super().__init__(
            "cancelled" + (" (call abandoned)" if abandoned else ""), endpoint=endpoint, stage=stage
        )
        self.abandoned = abandoned


class CallFailed(BackendError):
    """A call the recovery layer could not save; `report` says what was tried."""

    def __init__(self, message: str, *, endpoint: str, stage: str | None, report: Any) -> None:
        super().__init__(message, endpoint=endpoint, stage=stage)
        self.report = report


# Failures a restart may cure: the recovery layer restarts once and retries once.
RECOVERABLE: tuple[type[BackendError], ...] = (
    BackendUnavailable,
    BackendTimeout,
    BackendBadResponse,
    BackendServerError,
    BackendStall,
)
