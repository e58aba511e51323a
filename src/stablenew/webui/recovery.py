"""The one recovery layer: every stage call goes through `generate_with_recovery`.

It is the only place that restarts the backend or retries a call. While a call runs it watches
three things at once: the call itself, the job's CancelToken, and `/progress` (the stall watchdog).
On a failure a restart may cure, it writes sanitized failure artifacts, restarts the backend once
and retries once; then it gives up with an envelope naming the stage, the causes and the artifacts.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stablenew.jobs.cancel import CancelToken
from stablenew.webui.artifacts import write_failure_artifacts
from stablenew.webui.client import ExtrasResult, GenerationResult, WebUIClient
from stablenew.webui.errors import (
    RECOVERABLE,
    BackendApplicationError,
    BackendError,
    BackendRejected,
)
from stablenew.webui.process import BackendStartError, WebUIProcessManager

ENDPOINT_OF_STAGE = {
    "txt2img": "txt2img",
    "img2img": "img2img",
    "adetailer": "img2img",
    "upscale": "extras",
}


@dataclass(frozen=True)
class RecoveryPolicy:
    stall_timeout: float = 90.0  # no progress change this long is a stall
    finished_stall: float = 20.0  # 100% with no response this long is a stall
    cancel_grace: float = 3.0  # after cancel: wait this long for the partial response
    stall_grace: float = 5.0  # after a stall: wait this long for the interrupt to be honoured
    poll_interval: float = 0.5  # /progress polling while a call runs
    restart_timeout: float = 120.0


@dataclass(frozen=True)
class Progress:
    stage: str
    image_index: int | None
    step: int
    steps: int
    fraction: float
    eta: float


@dataclass(frozen=True)
class CallStats:
    """How the last successful stage call went (the pipeline calls one at a time)."""

    attempts: int
    restarts: int
    causes: list[str]


class StageCancelled(Exception):
    def __init__(self, stage: str, image_index: int | None, abandoned: bool) -> None:
        super().__init__(f"{stage} cancelled" + (" (call abandoned)" if abandoned else ""))
        self.stage = stage
        self.image_index = image_index
        self.abandoned = abandoned


class StageFailed(Exception):
    """The stage could not be completed; `envelope` is what the job's error record shows."""

    def __init__(self, envelope: dict[str, Any]) -> None:
        super().__init__(envelope["message"])
        self.envelope = envelope


class StallDetected(BackendError):
    """No progress for too long; `honoured` says whether the interrupt freed the call."""

    def __init__(self, message: str, *, endpoint: str, stage: str, honoured: bool) -> None:
        super().__init__(message, endpoint=endpoint, stage=stage)
        self.honoured = honoured


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


class RecoveringBackend:
    """The client, the process manager and the recovery policy, used together by the pipeline."""

    def __init__(
        self,
        client: WebUIClient,
        manager: WebUIProcessManager,
        policy: RecoveryPolicy | None = None,
        on_progress: Callable[[Progress], None] | None = None,
    ) -> None:
        self.client = client
        self.manager = manager
        self.policy = policy or RecoveryPolicy()
        self.on_progress = on_progress
        # A call given up on (cancel or stall) that may still hold the backend's queue lock,
        # with the restart count at that moment.
        self._abandoned: tuple[_Call, int] | None = None
        self._caller: _CallThread | None = None
        self.last_call = CallStats(0, 0, [])

    def generate_with_recovery(
        self,
        stage: str,
        payload: dict[str, Any],
        run_dir: Path,
        job_id: str,
        cancel_token: CancelToken,
        *,
        image_index: int | None = None,
        endpoint: str | None = None,
    ) -> GenerationResult | ExtrasResult:
        endpoint = endpoint or ENDPOINT_OF_STAGE[stage]
        causes: list[BackendError | BackendStartError] = []
        artifacts: list[str] = []
        restarts = attempts = 0
        for attempt in (1, 2):
            attempts = attempt
            self._settle_abandoned_call()
            try:
                result = self._attempt(stage, endpoint, payload, cancel_token, image_index)
                self.last_call = CallStats(attempts, restarts, [str(c) for c in causes])
                return result
            except (BackendApplicationError, BackendRejected) as exc:
                causes.append(exc)
                artifacts += self._artifacts(run_dir, stage, image_index, attempt, payload, exc)
                break  # deterministic: a restart or a retry would fail the same way
            except (*RECOVERABLE, StallDetected) as exc:
                causes.append(exc)
                artifacts += self._artifacts(run_dir, stage, image_index, attempt, payload, exc)
                if attempt == 2:
                    break
                if isinstance(exc, StallDetected) and exc.honoured:
                    continue  # the backend freed itself on interrupt: retry without a restart
                try:
                    self.manager.restart_and_wait_ready(self.policy.restart_timeout)
                    restarts += 1
                except BackendStartError as start_error:
                    causes.append(start_error)
                    break
        raise StageFailed(
            _envelope(stage, job_id, image_index, causes, attempts, restarts, artifacts)
        )

    def _settle_abandoned_call(self) -> None:
        """A call abandoned on cancel may still hold the backend's queue lock: restart first,
        unless the backend was restarted since (which ended that call)."""
        abandoned, self._abandoned = self._abandoned, None
        if abandoned is None:
            return
        call, restarts = abandoned
        if not call.done.is_set() and self.manager.restarts == restarts:
            self.manager.restart_and_wait_ready(self.policy.restart_timeout)

    def _attempt(
        self,
        stage: str,
        endpoint: str,
        payload: dict[str, Any],
        cancel_token: CancelToken,
        image_index: int | None,
    ) -> Any:
        if cancel_token.is_cancelled():
            raise StageCancelled(stage, image_index, abandoned=False)
        fn = {
            "txt2img": lambda: self.client.txt2img(payload, stage),
            "img2img": lambda: self.client.img2img(payload, stage),
            "extras": lambda: self.client.extra_single_image(payload, stage),
        }[endpoint]
        wake = threading.Event()
        unsubscribe = cancel_token.on_cancel(wake.set)
        if self._caller is None:
            self._caller = _CallThread()
        call = self._caller.submit(fn, wake)
        watch = _StallWatch(self.policy)
        try:
            while not call.done.is_set():
                wake.wait(self.policy.poll_interval)
                wake.clear()
                if call.done.is_set():
                    break
                if cancel_token.is_cancelled():
                    self._interrupt_and_wait(call, self.policy.cancel_grace)
                    if not call.done.is_set():
                        self._abandon(call)
                    raise StageCancelled(stage, image_index, abandoned=not call.done.is_set())
                reason = self._poll(stage, image_index, watch)
                if reason is not None:
                    honoured = self._interrupt_and_wait(call, self.policy.stall_grace)
                    if not honoured:
                        self._abandon(call)
                    raise StallDetected(
                        f"stall: {reason}" + ("" if honoured else "; interrupt ignored"),
                        endpoint=endpoint,
                        stage=stage,
                        honoured=honoured,
                    )
            return call.outcome()
        finally:
            unsubscribe()

    def close(self) -> None:
        """End the call thread (after the call it may still be making)."""
        if self._caller is not None:
            self._caller.retire()
            self._caller = None

    def _abandon(self, call: _Call) -> None:
        self._abandoned = (call, self.manager.restarts)
        self.close()  # that thread ends when the abandoned call does; the next call gets a new one

    def _poll(self, stage: str, image_index: int | None, watch: _StallWatch) -> str | None:
        try:
            progress = self.client.progress(skip_current_image=True)
        except BackendError:
            return None  # a dead backend shows up as the call's own error
        state = progress["state"]
        if self.on_progress is not None and state.get("job_count"):
            self.on_progress(
                Progress(
                    stage,
                    image_index,
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
        run_dir: Path,
        stage: str,
        image_index: int | None,
        attempt: int,
        payload: dict[str, Any],
        error: BaseException,
    ) -> list[str]:
        folder = run_dir / "failures" / f"{stage}_image{image_index or 0}_attempt{attempt}"
        return write_failure_artifacts(
            folder, stage, payload, error, self.manager.get_tail_logs(200)
        )


def _envelope(
    stage: str,
    job_id: str,
    image_index: int | None,
    causes: list[BackendError | BackendStartError],
    attempts: int,
    restarts: int,
    artifacts: list[str],
) -> dict[str, Any]:
    last = causes[-1]
    where = f"image {image_index}" if image_index is not None else "the job"
    return {
        "type": "StageFailed",
        "stage": stage,
        "job_id": job_id,
        "image_index": image_index,
        "message": f"{stage} failed for {where} after {attempts} attempt(s): {last}",
        "cause_chain": [
            c.to_dict()
            if isinstance(c, BackendError)
            else {"type": type(c).__name__, "message": str(c)}
            for c in causes
        ],
        "attempts": attempts,
        "restarts": restarts,
        "artifacts": artifacts,
    }
