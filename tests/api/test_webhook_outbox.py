"""The webhook dispatcher in process: backoff, giving up, bounds, the cursor, the signature."""

from __future__ import annotations

import hashlib
import hmac
import logging
import socket
from pathlib import Path

import pytest

from stablenew.app.config import Config, service_config
from stablenew.app.events import EventKind
from stablenew.app.services import Services
from stablenew.app.webhooks import Backoff, Hook, WebhookDispatcher, signature
from stablenew.errors import StoreError
from tests.api.conftest import wait_for
from tests.api.test_webhooks import Receiver


def closed_port() -> str:
    """A URL where nothing listens (connection refused at once)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/hook"


def test_backoff_doubles_up_to_a_bound() -> None:
    backoff = Backoff(first=1, longest=300, attempts=10)
    assert [backoff.delay(n) for n in range(1, 12)] == [
        1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300,
    ]  # fmt: skip


def test_signature_is_hmac_of_timestamp_and_body() -> None:
    expected = hmac.new(b"k" * 16, b"1700000000.{}", hashlib.sha256).hexdigest()
    assert signature("k" * 16, "1700000000", b"{}") == f"sha256={expected}"


def test_a_dead_endpoint_is_given_up_and_bounded(local_services: Services, tmp_path: Path) -> None:
    jobs = local_services.jobs
    url = closed_port()
    attempts: list[bool] = []
    dispatcher = WebhookDispatcher(
        jobs,
        [Hook(url, frozenset({"*"}), "s" * 16)],
        tmp_path / "webhooks.seq",
        backoff=Backoff(first=0.01, longest=0.02, attempts=3),
        keep_per_url=5,
        on_attempt=attempts.append,
    )
    (tmp_path / "webhooks.seq").write_text(str(jobs.last_seq()))  # delivered up to here
    for n in range(8):  # more than the outbox keeps for one URL, read in one batch
        jobs.bus.emit(EventKind.WARNING, f"warning {n}", source="test")
    dispatcher.start()
    try:
        # settled: every event made a delivery, and each was tried out or dropped
        wait_for(lambda: jobs.outbox_counts()["failed"] == 8, 30, "every delivery settled")
    finally:
        dispatcher.close()
    counts = jobs.outbox_counts()
    assert counts == {"delivered": 0, "failed": 8, "pending": 0}
    assert len(attempts) == 5 * 3 and not any(attempts)  # 3 dropped unsent (outbox full)
    assert (tmp_path / "webhooks.seq").read_text() == f"{jobs.log_id()} {jobs.last_seq()}"


def test_the_cursor_starts_at_now_and_survives_a_restart(
    local_services: Services, tmp_path: Path
) -> None:
    jobs = local_services.jobs
    jobs.bus.emit(EventKind.WARNING, "before the first start: history, not delivered")
    cursor = tmp_path / "webhooks.seq"
    hooks = [Hook(closed_port(), frozenset({"warning"}), "s" * 16)]
    first = WebhookDispatcher(jobs, hooks, cursor, backoff=Backoff(first=60))
    first.start()
    first.close()
    assert jobs.outbox_counts()["pending"] == 0
    jobs.bus.emit(EventKind.WARNING, "while nothing delivers")
    second = WebhookDispatcher(jobs, hooks, cursor, backoff=Backoff(first=60))
    second.start()
    try:
        wait_for(lambda: jobs.outbox_counts()["pending"] == 1, 30, "the missed event queued")
    finally:
        second.close()


def test_a_new_database_is_delivered_from_its_first_event(tmp_path: Path) -> None:
    """Before the fix the cursor of the deleted database (seq 25, say) hid the new one's
    events 1..25 for good."""
    home = tmp_path / "home"
    cursor = home / "webhooks.seq"
    hooks = [Hook(closed_port(), frozenset({"warning"}), "s" * 16)]
    old = Services(service_config(home, Config()))
    try:
        for n in range(30):
            old.jobs.bus.emit(EventKind.WARNING, f"old {n}")
        first = WebhookDispatcher(old.jobs, hooks, cursor, backoff=Backoff(first=60))
        first.start()
        first.close()
    finally:
        old.close()
    for db in home.glob("jobs.db*"):  # the user starts the history afresh
        db.unlink()
    new = Services(service_config(home, Config()))
    try:
        new.jobs.bus.emit(EventKind.WARNING, "new database, first event")
        second = WebhookDispatcher(new.jobs, hooks, cursor, backoff=Backoff(first=60))
        second.start()
        try:
            wait_for(lambda: new.jobs.outbox_counts()["pending"] == 1, 30, "the new log read")
        finally:
            second.close()
    finally:
        new.close()


def test_a_hanging_receiver_holds_up_only_its_own_deliveries(
    local_services: Services, tmp_path: Path
) -> None:
    jobs = local_services.jobs
    hang = socket.socket()  # accepts connections (the kernel does), never answers
    hang.bind(("127.0.0.1", 0))
    hang.listen(64)
    receiver = Receiver()
    receiver.start()
    attempts: list[bool] = []
    hooks = [
        Hook(f"http://127.0.0.1:{hang.getsockname()[1]}/hang", frozenset({"*"}), "h" * 16),
        Hook(receiver.url, frozenset({"warning"}), "r" * 16),
    ]
    dispatcher = WebhookDispatcher(
        jobs, hooks, tmp_path / "webhooks.seq", timeout=30, on_attempt=attempts.append
    )
    (tmp_path / "webhooks.seq").write_text(str(jobs.last_seq()))
    for n in range(5):
        jobs.bus.emit(EventKind.WARNING, f"warning {n}")
    dispatcher.start()
    try:
        wait_for(lambda: len(receiver.delivered()) == 5, 25, "the healthy receiver served")
        # Before the fix, the first request to the hanging URL held every later row for the
        # whole 30 s timeout, the healthy receiver's included.
        assert attempts == [True] * 5
    finally:
        dispatcher.close(timeout=1)
        receiver.stop()
        hang.close()


class FlakyStore:
    """The jobs controller with a store that is locked for the first reads of the event log."""

    def __init__(self, jobs: object, failures: int) -> None:
        self._jobs = jobs
        self.failures = failures

    def events_since(self, seq: int, limit: int) -> object:
        if self.failures > 0:
            self.failures -= 1
            raise StoreError("database is locked")
        return self._jobs.events_since(seq, limit=limit)  # type: ignore[attr-defined]

    def __getattr__(self, name: str) -> object:
        return getattr(self._jobs, name)


def test_a_busy_store_is_said_once_and_deliveries_go_on(
    local_services: Services, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    jobs = local_services.jobs
    flaky = FlakyStore(jobs, failures=3)
    url = closed_port()
    dispatcher = WebhookDispatcher(
        flaky,  # type: ignore[arg-type]
        [Hook(url, frozenset({"*"}), "s" * 16)],
        tmp_path / "webhooks.seq",
        backoff=Backoff(first=0.01, longest=0.02, attempts=1),
    )
    (tmp_path / "webhooks.seq").write_text(str(jobs.last_seq()))
    jobs.bus.emit(EventKind.WARNING, "after the lock", source="test")
    with caplog.at_level(logging.WARNING, logger="stablenew.webhooks"):
        dispatcher.start()
        try:
            wait_for(lambda: jobs.outbox_counts()["failed"] == 1, 30, "the delivery settled")
        finally:
            dispatcher.close()
    said = [r.getMessage() for r in caplog.records if r.name == "stablenew.webhooks"]
    assert said == ["webhook deliveries wait: database is locked"]  # once, not three times
    assert flaky.failures == 0
