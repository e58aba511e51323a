"""The crash-loop breaker, on a clock the test moves: every rule, every way out."""

from __future__ import annotations

import pytest

from stablenew.errors import BackendCrashLoop
from stablenew.webui.breaker import BreakerState, CrashLoopBreaker


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def breaker(clock: Clock, **kw: float) -> tuple[CrashLoopBreaker, list[tuple[BreakerState, str]]]:
    told: list[tuple[BreakerState, str]] = []
    made = CrashLoopBreaker(
        max_restarts=int(kw.get("max_restarts", 3)),
        window=kw.get("window", 300),
        cooldown=kw.get("cooldown", 60),
        limit=int(kw.get("limit", 3)),
        on_change=lambda state, detail: told.append((state, detail)),
        clock=clock,
    )
    return made, told


def test_a_crash_on_every_img2img_trips_without_a_completed_job(clock: Clock) -> None:
    """Each process makes txt2img images (generations complete) and dies on img2img."""
    b, told = breaker(clock)
    for _ in range(2):
        b.allow_start()
        b.proven()  # txt2img went through
        b.crashed()
    b.allow_start()
    b.proven()
    b.crashed()  # the third crash with no job completed
    assert b.state == BreakerState.OPEN and "crashed 3 times" in b.reason
    with pytest.raises(BackendCrashLoop, match="resume the queue"):
        b.allow_start()
    assert [s for s, _ in told] == [BreakerState.OPEN]


def test_a_completed_job_forgives_earlier_crashes(clock: Clock) -> None:
    b, _ = breaker(clock)
    for _ in range(5):
        b.allow_start()
        b.proven()
        b.crashed()
        b.job_completed()
        clock.now += 200  # also outside the restart window, so the starts do not add up
    assert b.state == BreakerState.CLOSED


def test_crashes_spread_over_time_are_not_a_loop(clock: Clock) -> None:
    b, _ = breaker(clock, window=300)
    for _ in range(6):
        b.allow_start()
        b.proven()
        b.crashed()
        clock.now += 301
    assert b.state == BreakerState.CLOSED


def test_starts_that_never_complete_a_generation_trip(clock: Clock) -> None:
    b, _ = breaker(clock, limit=3)
    for _ in range(3):
        b.allow_start()  # each dies while loading: no generation, no crash seen mid-call
    with pytest.raises(BackendCrashLoop, match="started 3 time"):
        b.allow_start()
    assert b.state == BreakerState.OPEN


def test_too_many_restarts_in_the_window_trip(clock: Clock) -> None:
    b, _ = breaker(clock, max_restarts=2, limit=100)
    for _ in range(3):
        b.allow_start()
        b.proven()
    with pytest.raises(BackendCrashLoop, match="2 restarts within 300s"):
        b.allow_start()


def test_half_open_after_the_cooldown_closes_on_a_generation(clock: Clock) -> None:
    b, told = breaker(clock, cooldown=60)
    for _ in range(3):
        b.allow_start()
        b.crashed()
    assert b.state == BreakerState.OPEN
    assert not b.try_half_open()  # not yet
    clock.now += 61
    assert b.try_half_open() and b.state == BreakerState.HALF_OPEN
    b.allow_start()  # the one trial
    b.proven()
    assert b.state == BreakerState.CLOSED
    assert [s for s, _ in told] == [BreakerState.OPEN, BreakerState.HALF_OPEN, BreakerState.CLOSED]


def test_half_open_reopens_on_the_next_crash_or_failed_start(clock: Clock) -> None:
    b, _ = breaker(clock, cooldown=60)
    for _ in range(3):
        b.allow_start()
        b.crashed()
    clock.now += 61
    assert b.try_half_open()
    b.allow_start()
    b.crashed()  # the trial crashed before completing anything
    assert b.state == BreakerState.OPEN and "during its trial" in b.reason
    clock.now += 61
    assert b.try_half_open()
    b.allow_start()  # started, never completed a generation...
    with pytest.raises(BackendCrashLoop):
        b.allow_start()  # ...so a second start in the trial is refused


def test_the_users_reset_closes_and_forgets(clock: Clock) -> None:
    b, told = breaker(clock)
    for _ in range(3):
        b.allow_start()
        b.crashed()
    b.reset("the user resumed the queue")
    assert b.state == BreakerState.CLOSED
    b.allow_start()
    b.crashed()
    assert b.state == BreakerState.CLOSED
    assert told[-1] == (BreakerState.CLOSED, "the user resumed the queue")
