"""The crash-loop breaker: a backend that dies every time it starts must stop being started.

Every start of the backend process counts, whoever asked for it (the recovery layer's restart,
the runner waiting for a healthy backend, a Start button); a generation that completes proves the
running process healthy. The breaker opens when `limit` starts in a row have produced no
completed generation, or when more than `max_restarts` restarts fall within `window` seconds.
While open, nothing starts the backend: the runner gives the job back to the queue and pauses it
with the reason. After `cooldown` seconds one trial start is allowed (half-open); it counts as
healthy only once a generation completes, and one more failure opens the breaker again. The user
closes it by resuming the queue (or starting the backend by hand).
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
        self._unproven = 0  # starts in a row with no completed generation since
        self._opened_at = 0.0
        self.state = BreakerState.CLOSED
        self.reason = ""

    def allow_start(self) -> None:
        """Count a start about to happen, or raise BackendCrashLoop when it must not."""
        tripped = False
        with self._lock:
            now = self._clock()
            while self._starts and now - self._starts[0] > self.window:
                self._starts.popleft()
            if self.state != BreakerState.OPEN:
                limit = 1 if self.state == BreakerState.HALF_OPEN else self.limit
                if self._unproven >= limit:
                    tripped = self._trip(
                        f"the backend was started {self._unproven} time(s) in a row and never "
                        "completed a generation"
                    )
                elif len(self._starts) > self.max_restarts:
                    tripped = self._trip(
                        f"{len(self._starts) - 1} restarts within {self.window:g}s "
                        f"(max_restarts = {self.max_restarts})"
                    )
            refused = self.state == BreakerState.OPEN
            if not refused:
                self._starts.append(now)
                self._unproven += 1
            refusal = self._refusal()
        if tripped:
            self._tell(self.reason)
        if refused:
            raise BackendCrashLoop(refusal)

    def proven(self) -> None:
        """A generation completed: the running process works."""
        changed = False
        with self._lock:
            self._unproven = 0
            if self.state == BreakerState.HALF_OPEN:
                self.state, self.reason, changed = BreakerState.CLOSED, "", True
        if changed:
            self._tell("the trial generation completed: the backend is healthy again")

    def reset(self, why: str = "reset by the user") -> None:
        """The user says the cause is fixed: count from zero."""
        with self._lock:
            was = self.state
            self.state, self.reason = BreakerState.CLOSED, ""
            self._unproven = 0
            self._starts.clear()
        if was != BreakerState.CLOSED:
            self._tell(why)

    def try_half_open(self) -> bool:
        """After the cooldown, allow one trial start; True when that happened just now."""
        with self._lock:
            if self.state != BreakerState.OPEN or self._cooldown_left() > 0:
                return False
            self.state = BreakerState.HALF_OPEN
            self._unproven = 0
        self._tell(f"cooldown of {self.cooldown:g}s over: one trial start allowed")
        return True

    def cooldown_left(self) -> float:
        with self._lock:
            return self._cooldown_left()

    def _cooldown_left(self) -> float:
        if self.state != BreakerState.OPEN:
            return 0.0
        return max(0.0, self._opened_at + self.cooldown - self._clock())

    def _trip(self, reason: str) -> bool:
        self.state = BreakerState.OPEN
        self.reason = f"crash loop: {reason}; not starting it again"
        self._opened_at = self._clock()
        return True

    def _refusal(self) -> str:
        return (
            f"{self.reason} (resume the queue to try again, or wait {self.cooldown:g}s for one "
            "automatic trial)"
        )

    def _tell(self, detail: str) -> None:
        if self.on_change is not None:
            self.on_change(self.state, detail)
