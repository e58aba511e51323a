"""`queue list` and `queue show` say why a queued job waits, and where it is pinned."""

from __future__ import annotations

from pathlib import Path

from stablenew.jobs.spec import JobSpec
from stablenew.queue.store import JobStore
from tests.cli.clitools import cli


def test_queue_list_and_show_say_why_a_job_waits_and_its_pin(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "jobs.db")
    waiting = store.submit(JobSpec(prompt="for the big gpu", backend="gpu1"))
    pinned = store.submit(JobSpec(prompt="also pinned", backend="gpu0"))
    free = store.submit(JobSpec(prompt="anywhere"))
    # What the owner's placement writes when gpu1 is down.
    store.set_notes({waiting: "waiting for backend gpu1 (pinned)"}, [waiting])
    store.close()

    listed = cli(tmp_path, "queue", "list")
    assert listed.returncode == 0, listed.stderr
    rows = {line.split()[1]: line for line in listed.stdout.splitlines()[1:-1]}
    assert rows[waiting[:8]].endswith("waiting for backend gpu1 (pinned)"), listed.stdout
    assert rows[pinned[:8]].endswith("on gpu0"), listed.stdout
    assert rows[free[:8]].split("\t")[-1] == "", listed.stdout

    shown = cli(tmp_path, "queue", "show", waiting[:8])
    assert shown.returncode == 0, shown.stderr
    lines = [" ".join(line.split()) for line in shown.stdout.splitlines()]
    assert "waiting: waiting for backend gpu1 (pinned)" in lines, shown.stdout
    assert "backend: gpu1" in lines, shown.stdout
