"""The crash-loop breaker: a backend that keeps dying must stop being started.

It counts two things, whoever caused them (the recovery layer's restart, the runner waiting for
a healthy backend, a Start button):
- crashes: the process died unasked. `limit` crashes within `window` seconds with no job
  completed in between open the breaker: a backend that crashes on every img2img still makes
  txt2img images, but it never finishes a job.
- starts: a process that never completes a generation is unproven; `limit` unproven starts in a
  row open it (a backend that dies while loading), and so do more than `max_restarts` restarts
  within `window`.
- futile restarts: a restart after which the retry failed again did not help; until a generation
  completes, the next restart would not either (a backend that answers garbage every time
  lives on, so nothing crashes and no job has to start it), so it opens the breaker.

While open, nothing starts the backend: the job in flight goes back to the queue, which pauses
with the reason instead of failing job after job. After `cooldown` seconds one trial start is
allowed (half-open); it counts as healthy only once a generation completes, and one more crash
or failed start opens the breaker again. The user closes it by resuming the queue or starting
the backend by hand.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from enum import StrEnum

from stablenew.errors import BackendCrashLoop


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


BreakerListener = Callable[[BreakerState, str], None]


class CrashLoopBreaker:
    def __init__(
        self,
        *,
        max_restarts: int = 3,
        window: float = 300.0,
        cooldown: float = 600.0,
        limit: int = 3,
        on_change: BreakerListener | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_restarts = max_restarts
        self.window = window
        self.cooldown = cooldown
        self.limit = limit
        self.on_change = on_change
        self._clock = clock
        self._lock = threading.Lock()
        self._starts: deque[float] = deque()
        self._crashes: deque[float] = deque()  # since the last completed job
        self._unproven = 0  # starts in a row with no completed generation since
        self._futile = False  # a restart did not cure a failure; nothing completed since
        self._opened_at = 0.0
        self.state = BreakerState.CLOSED
        self.reason = ""

    # -- what happens to the backend -----------------------------------------------------------

    def allow_start(self) -> None:
        """Count a start about to happen, or raise BackendCrashLoop when it must not."""
        with self._lock:
            now = self._forget_old()
            reason = ""
            if self.state != BreakerState.OPEN:
                limit = 1 if self.state == BreakerState.HALF_OPEN else self.limit
                if self._futile:
                    crashed = (
                        f"the backend crashed {len(self._crashes)} time(s) within "
                        f"{self.window:g}s and "
                        if self._crashes
                        else ""
                    )
                    reason = (
                        f"{crashed}a restart did not help the last failed job; the backend "
                        "has completed no generation since"
                    )
                elif self._unproven >= limit:
                    reason = (
                        f"the backend was started {self._unproven} time(s) in a row and never "
                        "completed a generation"
                    )
                elif len(self._starts) > self.max_restarts:
                    reason = (
                        f"{len(self._starts) - 1} restarts within {self.window:g}s "
                        f"(max_restarts = {self.max_restarts})"
                    )
                if reason:
                    self._trip(reason)
            refused = self.state == BreakerState.OPEN
            if not refused:
                self._starts.append(now)
                self._unproven += 1
            refusal = self._refusal()
        if reason:
            self._tell(self.reason)
        if refused:
            raise BackendCrashLoop(refusal)

    def crashed(self) -> None:
        """The process died unasked."""
        with self._lock:
            now = self._forget_old()
            self._crashes.append(now)
            reason = ""
            if self.state == BreakerState.HALF_OPEN:
                reason = "the backend crashed again during its trial"
            elif self.state == BreakerState.CLOSED and len(self._crashes) >= self.limit:
                reason = (
                    f"the backend crashed {len(self._crashes)} times within {self.window:g}s "
                    "without completing a job"
                )
            if reason:
                self._trip(reason)
        if reason:
            self._tell(self.reason)

    def restart_did_not_help(self) -> None:
        """The retry after a restart failed again: the next restart opens the breaker, unless
        a generation completes first."""
        with self._lock:
            self._futile = True

    def proven(self) -> None:
        """A generation completed: the running process works."""
        changed = False
        with self._lock:
            self._unproven = 0
            self._futile = False
            if self.state == BreakerState.HALF_OPEN:
                self.state, self.reason, changed = BreakerState.CLOSED, "", True
        if changed:
            self._tell("the trial generation completed: the backend is healthy again")

    def job_completed(self) -> None:
        """A whole job went through: earlier crashes were not a loop."""
        with self._lock:
            self._crashes.clear()

    # -- what the user and the runner decide ---------------------------------------------------

    def reset(self, why: str = "reset by the user") -> None:
        """The user says the cause is fixed: count from zero."""
        with self._lock:
            was = self.state
            self.state, self.reason = BreakerState.CLOSED, ""
            self._unproven, self._futile = 0, False
            self._starts.clear()
            self._crashes.clear()
        if was != BreakerState.CLOSED:
            self._tell(why)

    def try_half_open(self) -> bool:
        """After the cooldown, allow one trial start; True when that happened just now."""
        with self._lock:
            if self.state != BreakerState.OPEN or self._cooldown_left() > 0:
                return False
            self.state = BreakerState.HALF_OPEN
            self._unproven, self._futile = 0, False  # the trial is judged on its own
            self._starts.clear()
            self._crashes.clear()
        self._tell(f"cooldown of {self.cooldown:g}s over: one trial start allowed")
        return True

    def cooldown_left(self) -> float:
        with self._lock:
            return self._cooldown_left()

    # -- inside --------------------------------------------------------------------------------

    def _forget_old(self) -> float:
        now = self._clock()
        for times in (self._starts, self._crashes):
            while times and now - times[0] > self.window:
                times.popleft()
        return now

    def _cooldown_left(self) -> float:
        if self.state != BreakerState.OPEN:
            return 0.0
        return max(0.0, self._opened_at + self.cooldown - self._clock())

    def _trip(self, reason: str) -> None:
        self.state = BreakerState.OPEN
        self.reason = f"crash loop: {reason}; not starting it again"
        self._opened_at = self._clock()

    def _refusal(self) -> str:
        return (
            f"{self.reason} (restart the backend or resume the queue to try again, or wait "
            f"{self.cooldown:g}s for one automatic trial)"
        )

    def _tell(self, detail: str) -> None:
        if self.on_change is not None:
            self.on_change(self.state, detail)
