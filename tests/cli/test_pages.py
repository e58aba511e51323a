"""Big queues: listings in pages that say how many more there are, and bulk undo."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stablenew.jobs.spec import build_spec
from stablenew.jobs.status import JobStatus
from stablenew.queue.store import JobStore
from tests.cli.clitools import cli, document

ROWS = 10_004  # a 10,000-row pack and a few more


@pytest.fixture(scope="module")
def big_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("big")
    store = JobStore(home / "jobs.db")
    specs = [build_spec({"prompt": f"row {n}"}) for n in range(ROWS)]
    store.submit_many(specs, source="api")
    store.close()
    return home


def _rows(stdout: str) -> list[str]:
    lines = stdout.splitlines()
    assert lines[0].startswith("#\tjob\tstatus"), lines[:2]  # the header of a plain table
    return lines[1:-1]


def test_queue_list_pages_and_says_how_many_more(big_home: Path) -> None:
    first = cli(big_home, "queue", "list")
    assert first.returncode == 0
    assert len(_rows(first.stdout)) == 50
    assert first.stdout.splitlines()[-1] == (
        f"jobs 1-50 of {ROWS}; {ROWS - 50} more (--offset 50 for the next page, --all)"
    )
    last = cli(big_home, "queue", "list", "--limit", "10", "--offset", str(ROWS - 4))
    rows = _rows(last.stdout)
    assert [r.split("\t")[6] for r in rows] == [f"row {n}" for n in range(ROWS - 4, ROWS)]
    assert last.stdout.splitlines()[-1] == f"jobs {ROWS - 3}-{ROWS} of {ROWS}; 0 more"
    beyond = cli(big_home, "queue", "list", "--offset", str(ROWS + 5))
    assert beyond.stdout.splitlines() == [f"no jobs shown of {ROWS}; 0 more"]


def test_queue_list_all_and_json_pages(big_home: Path) -> None:
    everything = cli(big_home, "queue", "list", "--all")
    assert len(_rows(everything.stdout)) == ROWS
    assert everything.stdout.splitlines()[-1] == f"jobs 1-{ROWS} of {ROWS}; 0 more"
    page = cli(big_home, "queue", "list", "--limit", "3", "--offset", "2", "--json")
    jobs = document(page, "jobs")
    assert [j["spec"]["prompt"] for j in jobs] == ["row 2", "row 3", "row 4"]
    data = json.loads(page.stdout)
    assert (data["total"], data["offset"], data["more"]) == (ROWS, 2, ROWS - 5)
    assert len(document(cli(big_home, "queue", "list", "--all", "--json"), "jobs")) == ROWS


def test_bulk_undo_of_a_big_pack(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "jobs.db")
    store.submit_many([build_spec({"prompt": f"row {n}"}) for n in range(ROWS)], source="api")

    cancelled = cli(tmp_path, "queue", "cancel", "--all-pending")
    assert cancelled.returncode == 0
    assert cancelled.stdout.strip() == f"cancelled {ROWS} queued job(s)"
    none_left = cli(tmp_path, "queue", "cancel", "--all-pending")
    assert none_left.returncode == 0 and none_left.stdout.strip() == "cancelled 0 queued job(s)"

    history = cli(tmp_path, "history", "--limit", "5", "--status", "cancelled")
    assert history.stdout.splitlines()[-1] == (
        f"jobs 1-5 of {ROWS}; {ROWS - 5} more (--offset 5 for the next page, --all)"
    )
    assert document(cli(tmp_path, "history", "--json", "--limit", "1"), "jobs")[0][
        "finished_at"
    ].endswith("Z")

    removed = cli(tmp_path, "queue", "remove", "--status", "cancelled,failed")
    assert removed.returncode == 0
    assert removed.stdout.strip() == f"removed {ROWS} job(s) (CANCELLED, FAILED)"
    assert store.list_jobs() == []
    store.close()


def test_remove_and_cancel_take_a_job_or_a_bulk_option_not_both(tmp_path: Path) -> None:
    for args in (
        ("queue", "cancel"),
        ("queue", "cancel", "abc", "--all-pending"),
        ("queue", "remove"),
        ("queue", "remove", "abc", "--status", "queued"),
    ):
        done = cli(tmp_path, *args)
        assert done.returncode == 2 and "give either a JOB or" in done.stderr, args
    running = cli(tmp_path, "queue", "remove", "--status", "running")
    assert running.returncode == 2 and "a running job cannot be removed" in running.stderr
    bad = cli(tmp_path, "queue", "remove", "--status", "done")
    assert bad.returncode == 2 and "--status: choose from QUEUED, RUNNING" in bad.stderr


def test_cancel_says_what_it_did_to_a_queued_and_a_finished_job(tmp_path: Path) -> None:
    """A queued job was reported as "CANCELLED already: nothing to cancel" by the very command
    that cancelled it."""
    store = JobStore(tmp_path / "jobs.db")
    (job_id,) = store.submit_many([build_spec({"prompt": "p"})])
    store.close()
    first = cli(tmp_path, "queue", "cancel", job_id)
    assert first.returncode == 0 and first.stdout.strip() == f"cancelled {job_id[:8]}"
    again = cli(tmp_path, "queue", "cancel", job_id)
    assert again.stdout.strip() == f"{job_id[:8]} is CANCELLED already: nothing to cancel"


def test_clear_says_it_empties_the_history(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "jobs.db")
    ids = store.submit_many([build_spec({"prompt": "p"}), build_spec({"prompt": "q"})])
    store.cancel(ids[0])
    store.close()
    cleared = cli(tmp_path, "queue", "clear")
    assert cleared.stdout.strip() == (
        "removed 1 finished job(s): the history is empty now (their images stay on disk)"
    )
    assert "empties the history" in " ".join(cli(tmp_path, "queue", "clear", "-h").stdout.split())
    left = document(cli(tmp_path, "queue", "list", "--json"), "jobs")
    assert [j["status"] for j in left] == [JobStatus.QUEUED.value]
