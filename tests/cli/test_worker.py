"""`stablenew worker` as a service: its log lines, its NDJSON, and one worker per home."""

from __future__ import annotations

import json
import re
import signal
import time
from pathlib import Path

import pytest

from tests.cli.clitools import (
    Lines,
    cli,
    one_line_error,
    popen,
    queue_failing_job,
    sim_command,
    write_config,
)
from tests.helpers import start_worker

pytestmark = pytest.mark.integration

STAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z "


def test_worker_logs_jobs_pauses_and_the_backend(tmp_path: Path) -> None:
    worker = start_worker(tmp_path, drain=False)
    lines = Lines(worker.proc.stdout)
    try:
        lines.expect(lambda x: bool(re.match(STAMP + "backend READY: http://127.0.0.1:", x)))
        added = cli(tmp_path, "queue", "add", "a lighthouse", "--images", "2")
        job = added.stdout.split()[1][:8]
        started = lines.expect(f"job {job} started")
        assert re.fullmatch(STAMP + f"job {job} started: txt2img, 2 image\\(s\\)", started)
        ended = lines.expect(f"job {job} COMPLETED")
        assert re.fullmatch(
            STAMP + f"job {job} COMPLETED: 2 image\\(s\\) in {re.escape(str(tmp_path))}/outputs/.+",
            ended,
        )

        failing = queue_failing_job(tmp_path)[:8]
        failed = lines.expect(f"job {failing} FAILED")
        assert "No Such Upscaler" in failed and "; run folder " + str(tmp_path) in failed

        assert cli(tmp_path, "queue", "pause", "--reason", "lunch").returncode == 0
        assert re.fullmatch(STAMP + "queue paused: lunch", lines.expect("queue paused"))
        assert cli(tmp_path, "queue", "resume").returncode == 0
        assert re.fullmatch(STAMP + "queue resumed", lines.expect("queue resumed"))
    finally:
        worker.proc.send_signal(signal.SIGTERM)
        code = worker.proc.wait(30)
    rest = lines.rest()
    assert code == 0
    assert any("backend STOPPED" in x for x in rest)
    assert rest[-1] == "worker stopped (SIGTERM)"
    assert all("\x1b" not in x for x in rest), "no colour codes in a service log"


def test_a_second_worker_refuses_and_names_the_first(tmp_path: Path) -> None:
    first = start_worker(tmp_path, drain=False)
    try:
        sent = time.monotonic()
        second = cli(tmp_path, "worker", timeout=60)
        assert time.monotonic() - sent < 30
        assert second.returncode == 2, second.stderr
        error = one_line_error(second)
        assert f"is owned by pid {first.proc.pid}" in error and "worker" in error
    finally:
        first.proc.send_signal(signal.SIGTERM)
        assert first.proc.wait(30) == 0


def test_worker_json_is_one_document_a_line(tmp_path: Path) -> None:
    proc = popen(tmp_path, "worker", "--json")
    lines = Lines(proc.stdout)
    try:
        hello = json.loads(lines.expect('"worker"'))
        assert hello["schema"] == 1 and hello["worker"]["state"] == "running"
        assert hello["worker"]["backend"].startswith("http://127.0.0.1:")
        assert hello["worker"]["backend_kind"] == "reference backend (simulated images)"
        job = cli(tmp_path, "queue", "add", "a kite", "--json")
        job_id = json.loads(job.stdout)["ids"][0]
        done = json.loads(lines.expect('"job_completed"'))
        assert done["schema"] == 1 and done["event"]["job_id"] == job_id
        assert done["event"]["ts"].endswith("Z")
        assert done["job"]["status"] == "COMPLETED" and done["job"]["id"] == job_id
    finally:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(30)
    assert code == 0
    documents = [json.loads(line) for line in lines.rest()]  # every line is JSON
    assert all(d["schema"] == 1 for d in documents)
    assert documents[-1]["worker"] == {"state": "stopped", "signal": "SIGINT", "pid": proc.pid}


def test_cancel_all_pending_keeps_the_running_job(tmp_path: Path) -> None:
    # The first txt2img hangs until interrupted: that job is running for as long as needed.
    hang = json.dumps(sim_command("--fault", "hang:txt2img:1:honour_interrupt"))
    write_config(tmp_path, f"[backend]\ncommand = {hang}\n[recovery]\nstall_timeout = 600\n")
    worker = start_worker(tmp_path, drain=False)
    lines = Lines(worker.proc.stdout)
    try:
        running = cli(tmp_path, "queue", "add", "running").stdout.split()[1]
        lines.expect(f"job {running[:8]} started")
        for n in range(3):
            assert cli(tmp_path, "queue", "add", f"pending {n}").returncode == 0
        cancelled = cli(tmp_path, "queue", "cancel", "--all-pending")
        assert cancelled.returncode == 0
        assert cancelled.stdout.strip() == "cancelled 3 queued job(s); the running job goes on"
        again = cli(tmp_path, "queue", "cancel", "--all-pending")
        assert again.returncode == 0 and again.stdout.strip().startswith("cancelled 0 queued")
        shown = json.loads(cli(tmp_path, "queue", "show", running, "--json").stdout)
        assert shown["job"]["status"] == "RUNNING" and not shown["job"]["cancel_requested"]
        assert cli(tmp_path, "queue", "cancel", running[:8]).returncode == 0  # now it, too
        assert "CANCELLED" in lines.expect(f"job {running[:8]} CANCELLED")
    finally:
        worker.proc.send_signal(signal.SIGTERM)
        assert worker.proc.wait(60) == 0


def test_worker_stops_while_its_backend_is_still_starting(tmp_path: Path) -> None:
    slow = json.dumps(sim_command("--slow-start", "60"))
    write_config(tmp_path, f"[backend]\ncommand = {slow}\n")
    proc = popen(tmp_path, "worker")
    assert proc.stderr is not None
    log = tmp_path / "logs" / "events.jsonl"
    deadline = time.monotonic() + 30
    while not (log.is_file() and "backend_starting" in log.read_text()):
        assert time.monotonic() < deadline and proc.poll() is None, "the start never began"
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(30) == 130
    assert "Traceback" not in proc.stderr.read()
