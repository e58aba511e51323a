"""`stablenew run` with a queue that is not empty: its own jobs, the jobs ahead of them, and a
`stablenew worker` that owns the home."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from stablenew.jobs.status import JobStatus
from stablenew.queue.store import JobStore
from tests.cli.clitools import (
    Lines,
    cli,
    popen,
    queue_failing_job,
    sim_command,
    slow_backend,
    write_config,
)
from tests.helpers import start_worker

pytestmark = pytest.mark.integration


def _jobs(home: Path) -> dict[str, JobStatus]:
    store = JobStore(home / "jobs.db")
    try:
        return {j.spec.prompt: j.status for j in store.list_jobs()}
    finally:
        store.close()


def test_run_counts_the_jobs_ahead_and_answers_only_for_its_own(tmp_path: Path) -> None:
    ahead_out = tmp_path / "queued-earlier"
    assert cli(tmp_path, "queue", "add", "queued earlier", "--out", str(ahead_out)).returncode == 0
    failing = queue_failing_job(tmp_path)
    mine_out = tmp_path / "mine"

    done = cli(tmp_path, "run", "mine", "--images", "2", "--out", str(mine_out))

    # The job ahead failed, this run's own completed: the exit code is about its own.
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert "queued 1 job(s); 2 job(s) ahead of yours run first" in lines
    assert any(f"job {failing[:8]} (ahead of yours) FAILED: " in line for line in lines)
    assert any("(ahead of yours) COMPLETED: 1 image(s) in " + str(ahead_out) in x for x in lines)
    assert "summary of this run's 1 job(s):" in lines
    assert lines[-1] == "1 completed, 0 failed, 0 cancelled"
    summary = lines[lines.index("summary of this run's 1 job(s):") + 1]
    assert "COMPLETED 2 image(s): " + str(mine_out) in summary  # the full path, one line

    # Each job kept the output root it was queued with.
    store = JobStore(tmp_path / "jobs.db")
    by_prompt = {j.spec.prompt: j for j in store.list_jobs()}
    store.close()
    assert str(by_prompt["queued earlier"].result.run_dir).startswith(str(ahead_out))
    assert str(by_prompt["mine"].result.run_dir).startswith(str(mine_out))


def test_run_json_covers_its_own_jobs_and_says_how_many_were_ahead(tmp_path: Path) -> None:
    assert cli(tmp_path, "queue", "add", "queued earlier").returncode == 0
    done = cli(tmp_path, "run", "mine", "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["schema"] == 1 and result["ahead"] == 1
    assert [j["spec"]["prompt"] for j in result["jobs"]] == ["mine"]
    assert result["completed"] == 1 and result["failed"] == 0 and result["unfinished"] == 0


def test_run_fails_for_its_own_failure_only(tmp_path: Path) -> None:
    # Every upscale runs out of memory (a deterministic failure): the job ahead has none.
    command = sim_command("--fault", "http_error:upscale:99:oom")
    write_config(tmp_path, f"[backend]\ncommand = {json.dumps(command)}\n")
    assert cli(tmp_path, "queue", "add", "fine").returncode == 0
    done = cli(tmp_path, "run", "mine", "--stages", "txt2img,upscale")
    assert done.returncode == 1, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert any("(ahead of yours) COMPLETED" in line for line in lines)
    assert lines[-1] == "0 completed, 1 failed, 0 cancelled"
    assert _jobs(tmp_path) == {"fine": JobStatus.COMPLETED, "mine": JobStatus.FAILED}
    # The reason in the words every door uses (the desktop app, the web UI), not the backend's
    # raw "HTTP 500: OutOfMemoryError: CUDA out of memory. Tried to allocate…".
    reason = "upscale image 1: the backend ran out of memory"
    assert any(line.startswith("job ") and reason in line for line in lines), lines
    history = cli(tmp_path, "history", "--status", "failed")
    assert reason in history.stdout and "Tried to allocate" not in history.stdout, history.stdout


def test_run_as_a_client_of_a_worker_follows_its_jobs_to_the_end(tmp_path: Path) -> None:
    worker = start_worker(tmp_path)
    try:
        done = cli(tmp_path, "run", "through the worker", "--images", "2")
        assert done.returncode == 0, done.stdout + done.stderr
        assert f"this home is run by pid {worker.proc.pid}" in done.stderr
        assert "reference backend (simulated images)" in done.stderr
        lines = done.stdout.splitlines()
        assert "queued 1 job(s)" in lines
        started = [x for x in lines if " (1/1) started: txt2img, 2 image(s)" in x]
        assert len(started) == 1
        assert any(" (1/1) txt2img image 2/2" in x for x in lines)
        assert any(
            " (1/1) COMPLETED: 2 image(s) in " + str(tmp_path / "outputs") in x for x in lines
        )
        assert lines[-1] == "1 completed, 0 failed, 0 cancelled"
        assert worker.proc.poll() is None, "the worker goes on after the run"
    finally:
        worker.proc.send_signal(signal.SIGTERM)
        assert worker.proc.wait(30) == 0


def test_ctrl_c_in_a_client_run_cancels_only_its_own_jobs(tmp_path: Path) -> None:
    slow_backend(tmp_path, step_ms=100)  # 2 s an image: the job is still running at Ctrl+C
    worker = start_worker(tmp_path)
    try:
        run = popen(tmp_path, "run", "mine", "--images", "5")
        assert run.stdout is not None
        lines = Lines(run.stdout)
        lines.expect(" (1/1) txt2img image 1/5")
        assert cli(tmp_path, "queue", "add", "someone else's").returncode == 0
        run.send_signal(signal.SIGINT)
        assert run.wait(30) == 130
        rest = lines.rest()
        assert rest[-1] == "0 completed, 0 failed, 1 cancelled", rest
        jobs = _jobs(tmp_path)
        assert jobs["mine"] == JobStatus.CANCELLED
        assert jobs["someone else's"] != JobStatus.CANCELLED
        assert worker.proc.poll() is None, "the worker is not this run's to stop"
    finally:
        worker.proc.send_signal(signal.SIGTERM)
        assert worker.proc.wait(30) == 0


def test_sigterm_during_a_run_summarises_the_running_job_as_queued_again(tmp_path: Path) -> None:
    """A tester saw the summary call the job RUNNING after SIGTERM had re-queued it."""
    slow_backend(tmp_path, step_ms=100)
    run = popen(tmp_path, "run", "stopped midway", "--images", "5")
    assert run.stdout is not None and run.stderr is not None
    lines = Lines(run.stdout)
    lines.expect(" (1/1) txt2img image 1/5")
    run.send_signal(signal.SIGTERM)
    assert run.wait(60) == 143
    rest = lines.rest()
    assert _jobs(tmp_path)["stopped midway"] == JobStatus.QUEUED
    job_line = rest[next(n for n, x in enumerate(rest) if x.startswith("summary")) + 1]
    assert job_line.endswith(" QUEUED 0 image(s): stays queued; it resumes at the next start"), rest
    assert rest[-1] == "0 completed, 0 failed, 0 cancelled, 1 unfinished", rest
    assert "1 job(s) stay queued and resume at the next start" in run.stderr.read()


def test_a_run_on_a_paused_queue_says_why_it_waits(tmp_path: Path) -> None:
    assert cli(tmp_path, "queue", "pause", "--reason", "lunch").returncode == 0
    run = popen(tmp_path, "run", "waits")
    assert run.stdout is not None and run.stderr is not None
    notes = Lines(run.stderr)
    notes.expect("the queue is paused (lunch): the jobs wait until `stablenew queue resume`")
    run.send_signal(signal.SIGINT)
    assert run.wait(30) == 130
    assert _jobs(tmp_path)["waits"] == JobStatus.CANCELLED
