"""The one recovery layer: every generation call goes through `RecoveringBackend.call`.

It is the only place that restarts the backend or retries a call. While a call runs it watches
three things at once: the call itself, the job's CancelToken, and `/progress` (the stall
watchdog). A failure a restart may cure (a crash, a dropped connection, a malformed answer, a
stall) gets sanitized failure artifacts, one restart and one retry; a deterministic answer (4xx,
out of memory, an unknown upscaler) fails at once. The call returns what happened (`CallResult`)
or raises `CallFailed` with a `CallReport`, and tells each step to the caller's listener.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field

from stablenew.errors import (
    RECOVERABLE,
    BackendApplicationError,
    BackendError,
    BackendRejected,
    BackendStall,
    BackendStartError,
    BackendUnavailable,
    CallCancelled,
    CallFailed,
)
from stablenew.jobs.cancel import CancelToken
from stablenew.jobs.status import BackendState
from stablenew.webui.artifacts import write_failure_artifacts
from stablenew.webui.client import (
    ExtrasResult,
    GeneratedImage,
    GenerationResult,
    WebUIClient,
    decode_b64_image,
)
from stablenew.webui.lists import BackendLists, fetch_lists
from stablenew.webui.process import WebUIProcessManager


class RecoveryPolicy(BaseModel):
    """How the recovery layer waits and gives up (the `[recovery]` section of config.toml)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    stall_timeout: float = Field(90.0, gt=0)  # no progress change this long is a stall
    finished_stall: float = Field(20.0, gt=0)  # 100% with no response this long is a stall
    cancel_grace: float = Field(3.0, ge=0)  # after cancel: wait this long for the partial answer
    stall_grace: float = Field(5.0, ge=0)  # after a stall: wait this long for the interrupt
    poll_interval: float = Field(0.5, gt=0)  # /progress polling while a call runs
    restart_timeout: float = Field(120.0, gt=0)
    max_attempts: int = Field(3, ge=1)  # runner crashes before a job is quarantined
    breaker_cooldown: float = Field(600.0, gt=0)  # crash loop: wait this long, then one trial
    live_preview: bool = True  # ask for the backend's preview image while a stage samples
    preview_interval: float = Field(1.0, ge=0.2)  # ... at most this often


class Endpoint(StrEnum):
    TXT2IMG = "txt2img"
    IMG2IMG = "img2img"
    EXTRAS = "extras"


@dataclass(frozen=True)
class BackendCall:
    """One generation request. `label` names it in messages and artifact folders."""

    endpoint: Endpoint
    payload: dict[str, Any]
    label: str
    image_index: int | None
    artifacts_dir: Path  # failure artifacts go into a folder under here


@dataclass(frozen=True)
class Progress:
    step: int
    steps: int
    fraction: float
    eta: float


@dataclass(frozen=True)
class CallResult:
    """A call that succeeded: the first image, the backend's info, and how it went."""

    image: GeneratedImage
    info: dict[str, Any]
    attempts: int
    restarts: int
    causes: list[str]  # what was recovered from on the way


@dataclass(frozen=True)
class CallReport:
    """A call that could not be saved."""

    causes: list[BackendError]
    attempts: int
    restarts: int
    artifacts: list[str]
    backend_down: bool  # the backend is not running now (crashed, failed to start)

    @property
    def last(self) -> BackendError:
        return self.causes[-1]


@dataclass(frozen=True)
class RecoveryStep:
    """crash_detected, artifacts_written, restart, retry, gave_up."""

    step: str
    attempt: int
    cause: str = ""
    artifacts: tuple[str, ...] = ()


class ProgressListener(Protocol):
    def __call__(self, progress: Progress, /) -> None: ...


class PreviewListener(Protocol):
    """Gets the backend's live preview image (PNG or JPEG bytes) while a stage samples."""

    def __call__(self, image: bytes, /) -> None: ...


class RecoveryListener(Protocol):
    def __call__(self, step: RecoveryStep, /) -> None: ...


@dataclass
class _Call:
    """One backend call, made on the call thread while the caller keeps watching."""

    fn: Callable[[], Any]
    wake: threading.Event
    done: threading.Event = field(default_factory=threading.Event)
    result: Any = None
    error: BaseException | None = None

    def run(self) -> None:
        try:
            self.result = self.fn()
        except BaseException as exc:
            self.error = exc
        finally:
            self.done.set()
            self.wake.set()

    def outcome(self) -> Any:
        if self.error is not None:
            raise self.error
        return self.result


class _CallThread:
    """A long-lived thread that makes the calls, one at a time (a thread per call costs more
    than a small image's whole bookkeeping). A call given up on keeps its thread busy until the
    backend answers or dies, so the caller then retires this thread and starts a fresh one."""

    def __init__(self) -> None:
        self._calls: queue.SimpleQueue[_Call | None] = queue.SimpleQueue()
        threading.Thread(target=self._loop, name="webui-call", daemon=True).start()

    def submit(self, fn: Callable[[], Any], wake: threading.Event) -> _Call:
        call = _Call(fn, wake)
        self._calls.put(call)
        return call

    def retire(self) -> None:
        self._calls.put(None)

    def _loop(self) -> None:
        while (call := self._calls.get()) is not None:
            call.run()


class _StallWatch:
    def __init__(self, policy: RecoveryPolicy) -> None:
        self.policy = policy
        self.key: tuple[Any, ...] | None = None
        self.changed = time.monotonic()
        self.finished_since: float | None = None

    def stalled(self, progress: dict[str, Any]) -> str | None:
        now = time.monotonic()
        state = progress["state"]
        key = tuple(state.get(k) for k in ("job", "job_timestamp", "job_no", "sampling_step"))
        if key != self.key:
            self.key, self.changed = key, now
        if now - self.changed > self.policy.stall_timeout:
            return f"no progress for {now - self.changed:.0f}s"
        finished = float(progress.get("progress") or 0) >= 1.0
        self.finished_since = (self.finished_since or now) if finished else None
        if self.finished_since and now - self.finished_since > self.policy.finished_stall:
            return f"at 100% with no response for {now - self.finished_since:.0f}s"
        return None


class _PreviewClock:
    """Asks for the live preview at most every `preview_interval` (decoding a preview costs the
    backend time): the latest image, never a backlog."""

    def __init__(self, policy: RecoveryPolicy, listener: PreviewListener | None) -> None:
        self.listener = listener if policy.live_preview else None
        self.interval = policy.preview_interval
        self.next = time.monotonic()

    def due(self) -> bool:
        if self.listener is None or time.monotonic() < self.next:
            return False
        self.next = time.monotonic() + self.interval
        return True

    def deliver(self, image: object) -> None:
        if self.listener is None or not isinstance(image, str) or not image:
            return
        try:
            data, _ = decode_b64_image(image, "/progress", None)
        except BackendError:
            return  # a malformed preview is no reason to disturb the call
        self.listener(data)


class RecoveringBackend:
    """The client, the process manager and the recovery policy, used together by the pipeline."""

    def __init__(
        self,
        client: WebUIClient,
        manager: WebUIProcessManager,
        policy: RecoveryPolicy | None = None,
    ) -> None:
        self.client = client
        self.manager = manager
        self.policy = policy or RecoveryPolicy()
        # A call given up on (cancel or stall) that may still hold the backend's queue lock,
        # with the launch count at that moment.
        self._abandoned: tuple[_Call, int] | None = None
        self._caller: _CallThread | None = None
        self._options: dict[str, Any] = {}  # options set on the running process
        self._options_for = -1  # ... which process (the manager's launch count then)
        self._lists: tuple[int, BackendLists] | None = None
        self._lists_at = 0.0  # when they were asked (monotonic)
        self._loaded: tuple[int, str | None] | None = None

    @property
    def url(self) -> str:
        return self.client.base_url

    def call(
        self,
        request: BackendCall,
        cancel: CancelToken,
        on_progress: ProgressListener | None = None,
        on_step: RecoveryListener | None = None,
        on_preview: PreviewListener | None = None,
    ) -> CallResult:
        """Make the call; restart once and retry once when a restart may cure the failure."""
        causes: list[BackendError] = []
        artifacts: list[str] = []
        restarts = attempts = 0
        tell = on_step or (lambda step: None)
        for attempt in (1, 2):
            attempts = attempt
            mark = self.manager.mark()
            try:
                self._settle_abandoned_call()
                image, info = self._attempt(request, cancel, on_progress, on_preview)
            except CallCancelled:
                raise
            except (BackendApplicationError, BackendRejected) as exc:
                causes.append(exc)
                artifacts += self._artifacts(request, attempt, exc, mark, tell)
                break  # deterministic: a restart or a retry would fail the same way
            except BackendStartError as exc:  # the restart before this attempt failed
                causes.append(exc)
                break
            except RECOVERABLE as exc:
                causes.append(exc)
                if self._crashed(exc):
                    tell(RecoveryStep("crash_detected", attempt, str(exc)))
                artifacts += self._artifacts(request, attempt, exc, mark, tell)
                if attempt == 2:
                    if restarts:
                        self.manager.restart_did_not_help()
                    break
                if isinstance(exc, BackendStall) and exc.honoured:
                    tell(RecoveryStep("retry", attempt + 1, "the interrupt freed the backend"))
                    continue  # the backend freed itself on interrupt: retry without a restart
                tell(RecoveryStep("restart", attempt, str(exc)))
                try:
                    self.manager.restart_and_wait_ready(self.policy.restart_timeout)
                    restarts += 1
                except BackendStartError as start_error:
                    causes.append(start_error)
                    break
                tell(RecoveryStep("retry", attempt + 1, "after a restart"))
            else:
                self.manager.generation_completed()
                recovered = [str(c) for c in causes]
                return CallResult(image, info, attempts, restarts, recovered)
        report = CallReport(causes, attempts, restarts, artifacts, self._down(causes[-1]))
        tell(RecoveryStep("gave_up", attempts, str(causes[-1]), tuple(artifacts)))
        raise CallFailed(
            str(causes[-1]), endpoint=request.endpoint.value, stage=request.label, report=report
        )

    def _crashed(self, exc: BackendError) -> bool:
        if not self.manager.managed or isinstance(exc, BackendStall):
            return False
        return self.manager.exited(within=1.0 if isinstance(exc, BackendUnavailable) else 0.0)

    def _down(self, last: BackendError) -> bool:
        if isinstance(last, BackendStartError):
            return True
        return self.manager.state in (BackendState.FAILED, BackendState.CRASHED)

    def _settle_abandoned_call(self) -> None:
        """A call abandoned on cancel may still hold the backend's queue lock: restart first,
        unless the backend was restarted since (which ended that call)."""
        abandoned, self._abandoned = self._abandoned, None
        if abandoned is None:
            return
        call, launches = abandoned
        if not call.done.is_set() and self.manager.launches == launches:
            self.manager.restart_and_wait_ready(self.policy.restart_timeout)

    def _attempt(
        self,
        request: BackendCall,
        cancel: CancelToken,
        on_progress: ProgressListener | None,
        on_preview: PreviewListener | None,
    ) -> tuple[GeneratedImage, dict[str, Any]]:
        endpoint, label = request.endpoint, request.label
        if cancel.is_cancelled():
            raise CallCancelled(endpoint=endpoint.value, stage=label, abandoned=False)
        fn = self._function(request)
        wake = threading.Event()
        unsubscribe = cancel.on_cancel(wake.set)
        if self._caller is None:
            self._caller = _CallThread()
        call = self._caller.submit(fn, wake)
        watch = _StallWatch(self.policy)
        previews = _PreviewClock(self.policy, on_preview)
        try:
            while not call.done.is_set():
                wake.wait(self.policy.poll_interval)
                wake.clear()
                if call.done.is_set():
                    break
                if cancel.is_cancelled():
                    self._interrupt_and_wait(call, self.policy.cancel_grace)
                    if not call.done.is_set():
                        self._abandon(call)
                    raise CallCancelled(
                        endpoint=endpoint.value, stage=label, abandoned=not call.done.is_set()
                    )
                reason = self._poll(watch, on_progress, previews)
                if reason is not None:
                    honoured = self._interrupt_and_wait(call, self.policy.stall_grace)
                    if not honoured:
                        self._abandon(call)
                    raise BackendStall(
                        f"stall: {reason}" + ("" if honoured else "; interrupt ignored"),
                        endpoint=endpoint.value,
                        stage=label,
                        honoured=honoured,
                    )
            result = call.outcome()
        finally:
            unsubscribe()
        if isinstance(result, ExtrasResult):
            return result.image, {}
        assert isinstance(result, GenerationResult)
        return result.images[0], result.info

    def _function(self, request: BackendCall) -> Callable[[], Any]:
        payload, label = request.payload, request.label
        if request.endpoint is Endpoint.TXT2IMG:
            return lambda: self.client.txt2img(payload, label)
        if request.endpoint is Endpoint.IMG2IMG:
            return lambda: self.client.img2img(payload, label)
        return lambda: self.client.extra_single_image(payload, label)

    # -- settings the backend must hold --------------------------------------------------------

    def ensure_options(self, values: dict[str, Any]) -> None:
        """Server options a call depends on (e.g. ESRGAN_tile): sent when they change, and again
        after a restart (a new backend process may not have them)."""
        if self._options_for != self.manager.launches:
            self._options, self._options_for = {}, self.manager.launches
        missing = {k: v for k, v in values.items() if self._options.get(k, object()) != v}
        if missing:
            self.client.set_options(missing)
            self._options.update(missing)

    def lists(self, max_age: float | None = None) -> BackendLists:
        """What the running backend has (models, samplers, ...), asked once per process, or
        again when the answer is older than `max_age` seconds (an attached backend's owner
        may have changed its models without our seeing it go away)."""
        stale = max_age is not None and time.monotonic() - self._lists_at >= max_age
        if self._lists is None or self._lists[0] != self.manager.launches or stale:
            self._lists = (self.manager.launches, fetch_lists(self.client))
            self._lists_at = time.monotonic()
            self.read_loaded_model()
        return self._lists[1]

    def read_loaded_model(self) -> str | None:
        """Ask the running backend which checkpoint it has loaded: after every start, since a
        new process loads its own default whatever the last one had (None: it does not say)."""
        launches = self.manager.launches
        try:
            loaded = self.client.get_options().get("sd_model_checkpoint")
        except BackendError:
            loaded = None
        self._loaded = (launches, str(loaded) if loaded else None)
        return self._loaded[1]

    def known_lists(self) -> BackendLists | None:
        """The lists as last asked (no call): for placement decisions made elsewhere."""
        lists = self._lists
        return lists[1] if lists is not None and lists[0] == self.manager.launches else None

    @property
    def loaded_model(self) -> str | None:
        """The checkpoint the running backend has loaded, as it names it (its title)."""
        loaded = self._loaded
        return loaded[1] if loaded is not None and loaded[0] == self.manager.launches else None

    def set_model(self, name: str) -> str:
        title = self.client.set_model(name)
        self._loaded = (self.manager.launches, title)
        return title

    def set_vae(self, name: str) -> str:
        return self.client.set_vae(name)

    # -- the rest ------------------------------------------------------------------------------

    def close(self) -> None:
        """End the call thread (after the call it may still be making)."""
        if self._caller is not None:
            self._caller.retire()
            self._caller = None

    def _abandon(self, call: _Call) -> None:
        self._abandoned = (call, self.manager.launches)
        self.close()  # that thread ends when the abandoned call does; the next call gets a new one

    def _poll(
        self, watch: _StallWatch, on_progress: ProgressListener | None, previews: _PreviewClock
    ) -> str | None:
        want_preview = previews.due()
        try:
            progress = self.client.progress(skip_current_image=not want_preview)
        except BackendError:
            return None  # a dead backend shows up as the call's own error
        if want_preview:
            previews.deliver(progress.get("current_image"))
        state = progress["state"]
        if on_progress is not None and state.get("job_count"):
            on_progress(
                Progress(
                    int(state.get("sampling_step") or 0),
                    int(state.get("sampling_steps") or 0),
                    float(progress.get("progress") or 0.0),
                    float(progress.get("eta_relative") or 0.0),
                )
            )
        return watch.stalled(progress)

    def _interrupt_and_wait(self, call: _Call, grace: float) -> bool:
        with contextlib.suppress(BackendError):  # a dead backend: the grace still bounds the wait
            self.client.interrupt()
        return call.done.wait(grace)

    def _artifacts(
        self,
        request: BackendCall,
        attempt: int,
        error: BaseException,
        mark: int,
        tell: RecoveryListener,
    ) -> list[str]:
        index = request.image_index or 0
        folder = request.artifacts_dir / f"{request.label}_image{index}_attempt{attempt}"
        # Only what the backend printed during this attempt: an old crash's "CUDA error" must
        # never be blamed for this one. Its own traceback may still be on its way.
        self.manager.settle_output()
        tails = self.manager.get_tail_logs(200, since=mark)
        written = write_failure_artifacts(folder, request.label, request.payload, error, tails)
        tell(RecoveryStep("artifacts_written", attempt, str(error), tuple(written)))
        return written
