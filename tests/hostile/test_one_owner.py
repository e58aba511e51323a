"""One owner per home: a second StableNew process on the same home never touches the owner's
backend; it refuses (a second worker), reads (doctor) or becomes a client (run)."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from pathlib import Path

import psutil

from stablenew.app.config import load_config, service_config
from stablenew.app.services import Role, Services
from stablenew.jobs.spec import JobSpec
from stablenew.jobs.status import JobStatus
from stablenew.observe.events import EventKind
from stablenew.queue.store import JobStore
from tests.helpers import Waiter, start_worker
from tests.hostile.conftest import (
    backend_config,
    cli,
    events,
    small,
    spawn,
    statuses,
    wait_for,
    write_config,
)


def backend_pid(home: Path) -> int:
    return int((home / "backend.pid").read_text().split()[0])


def test_a_second_worker_refuses_naming_the_owner(tmp_path: Path) -> None:
    worker = start_worker(tmp_path)
    try:
        pid = backend_pid(tmp_path)
        second = cli(tmp_path, "worker", timeout=60)
        assert second.returncode == 2, second.stderr
        assert f"pid {worker.proc.pid}" in second.stderr and "worker" in second.stderr
        assert "Traceback" not in second.stderr
        assert psutil.pid_exists(pid) and backend_pid(tmp_path) == pid  # untouched
    finally:
        worker.proc.send_signal(signal.SIGTERM)
        assert worker.proc.wait(30) == 0


def test_two_owners_racing_for_a_home_make_exactly_one(tmp_path: Path) -> None:
    procs = [spawn(tmp_path, "worker") for _ in range(3)]
    try:
        first_lines = [p.stdout.readline() for p in procs]  # type: ignore[union-attr]
        running = [p for p, line in zip(procs, first_lines, strict=True) if "running" in line]
        assert len(running) == 1, first_lines
        for p in procs:
            if p is not running[0]:
                assert p.wait(60) == 2
        backends = [
            c
            for c in psutil.Process(running[0].pid).children(recursive=True)
            if "webui-sim" in " ".join(c.cmdline())
        ]
        assert len(backends) == 1
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                p.wait(30)


def test_doctor_only_reads_an_owned_home(tmp_path: Path) -> None:
    worker = start_worker(tmp_path)
    try:
        pid = backend_pid(tmp_path)
        done = cli(tmp_path, "doctor")
        assert done.returncode == 0, done.stdout + done.stderr
        assert f"owned by pid {worker.proc.pid}" in done.stdout
        assert "models:" in done.stdout  # it asked the owner's backend, read-only
        assert psutil.Process(pid).is_running() and backend_pid(tmp_path) == pid
        starts = [e for e in events(tmp_path) if e.kind == EventKind.BACKEND_STARTING]
        assert len(starts) == 1  # the worker's own start, nothing else
    finally:
        worker.proc.send_signal(signal.SIGTERM)
        worker.proc.wait(30)


def test_run_on_an_owned_home_submits_and_follows_its_jobs(tmp_path: Path) -> None:
    worker = start_worker(tmp_path)
    try:
        pid = backend_pid(tmp_path)
        done = cli(tmp_path, "run", "a client's lighthouse", "--images", "2", "--json")
        assert done.returncode == 0, done.stderr
        assert f"run by pid {worker.proc.pid}" in done.stderr
        result = json.loads(done.stdout)
        assert result["completed"] == 1 and len(result["jobs"][0]["result"]["images"]) == 2
        assert backend_pid(tmp_path) == pid and psutil.pid_exists(pid)
        job_id = result["jobs"][0]["id"]
        owner_pids = {e.pid for e in events(tmp_path) if e.job_id == job_id and e.stage}
        assert owner_pids == {worker.proc.pid}  # the owner ran it, stage by stage in the log
    finally:
        worker.proc.send_signal(signal.SIGTERM)
        worker.proc.wait(30)


def test_the_follower_takes_over_when_the_owner_is_killed(tmp_path: Path) -> None:
    write_config(tmp_path, backend_config("--step-ms", "60"))
    worker = start_worker(tmp_path)
    owner_backend = backend_pid(tmp_path)
    run = spawn(tmp_path, "run", "survive the owner", "--images", "4", "--json")
    try:
        wait_for(
            lambda: any(e.kind == EventKind.STAGE_FINISHED for e in events(tmp_path)),
            60,
            "the owner to finish an image",
        )
        os.kill(worker.proc.pid, signal.SIGKILL)
        worker.proc.wait(10)
        out, err = run.communicate(timeout=120)
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode == 0, err  # nobody else was left to run it: the follower took over
    result = json.loads(out)
    assert result["completed"] == 1 and len(result["jobs"][0]["result"]["images"]) == 4
    assert not psutil.pid_exists(owner_backend) or (
        psutil.Process(owner_backend).status() == psutil.STATUS_ZOMBIE
    )  # the dead owner's orphan was reaped by the new owner
    assert not (tmp_path / "backend.pid").exists()  # and the new owner stopped its own


def test_sigterm_and_sighup_stop_an_owning_run_like_a_shutdown(tmp_path: Path) -> None:
    for sig in (signal.SIGTERM, signal.SIGHUP):
        home = tmp_path / sig.name
        write_config(home, backend_config("--step-ms", "100"))
        run = spawn(home, "run", "a long one", "--images", "3")
        wait_for(
            lambda h=home: any(e.kind == EventKind.STAGE_STARTED for e in events(h)),
            60,
            "the job to start",
        )
        family = [psutil.Process(run.pid), *psutil.Process(run.pid).children(recursive=True)]
        run.send_signal(sig)
        assert run.wait(60) == 143
        _, alive = psutil.wait_procs(family, timeout=10)
        assert not alive  # the managed backend stopped with it
        assert statuses(home) == [JobStatus.QUEUED]  # re-queued to resume, not cancelled


def test_sigterm_while_the_backend_starts_leaves_at_once_as_a_stop(tmp_path: Path) -> None:
    """Before the fix, worker and serve left as "interrupted" (130) and run waited for the
    backend to come up, queued its job and only then stopped."""
    for command in (["run", "never queued"], ["worker"], ["serve", "--port", "0"]):
        home = tmp_path / command[0]
        write_config(home, backend_config("--slow-start", "300"))
        proc = spawn(home, *command)
        wait_for(lambda h=home: (h / "backend.pid").exists(), 60, "the backend to be launched")
        family = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 143, command  # bounded far below the backend's 300 s start
        assert "stopped (SIGTERM) while the backend was starting" in proc.stderr.read()  # type: ignore[union-attr]
        _, alive = psutil.wait_procs(family, timeout=10)
        assert not alive, command  # the half-started backend went with it
        assert statuses(home) == []


def test_queue_commands_work_while_a_worker_owns_the_home(tmp_path: Path) -> None:
    worker = start_worker(tmp_path)
    try:
        added = cli(tmp_path, "queue", "add", "from another terminal")
        assert added.returncode == 0, added.stderr
        job_id = added.stdout.split()[-1]
        wait_for(
            lambda: JobStore(tmp_path / "jobs.db").get(job_id).status == JobStatus.COMPLETED,
            60,
            "the worker to run it",
        )
        assert cli(tmp_path, "queue", "list").returncode == 0
    finally:
        worker.proc.send_signal(signal.SIGTERM)
        worker.proc.wait(30)


def test_the_home_event_log_says_which_process_wrote_each_line(tmp_path: Path) -> None:
    worker = start_worker(tmp_path)
    try:
        done = cli(tmp_path, "run", "two writers", "--json")
        assert done.returncode == 0
    finally:
        worker.proc.send_signal(signal.SIGTERM)
        worker.proc.wait(30)
    records = [json.loads(x) for x in (tmp_path / "logs" / "events.jsonl").read_text().splitlines()]
    writers = {r["pid"] for r in records}
    assert worker.proc.pid in writers and len(writers) == 2  # the worker and the run
    for pid in writers:
        seqs = [r["seq"] for r in records if r["pid"] == pid]
        assert seqs == sorted(seqs)  # each writer's own order; the store's seq is global


def test_a_store_submit_races_a_running_owner_without_loss(tmp_path: Path) -> None:
    worker = start_worker(tmp_path)
    try:
        store = JobStore(tmp_path / "jobs.db")
        ids: list[str] = []

        def submit(n: int) -> None:
            own = JobStore(tmp_path / "jobs.db")
            ids.extend(
                own.submit_many([JobSpec.model_validate(small(f"r{n}-{i}")) for i in range(3)])
            )

        threads = [threading.Thread(target=submit, args=(n,)) for n in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        wait_for(
            lambda: all(store.get(i).status == JobStatus.COMPLETED for i in ids), 120, "all jobs"
        )
        assert len(ids) == 9
    finally:
        worker.proc.send_signal(signal.SIGTERM)
        worker.proc.wait(30)


def test_the_owner_hears_what_its_clients_do_to_the_queue(tmp_path: Path) -> None:
    """Found by a tester: the desktop app owning the home showed nothing of a `queue pause`,
    `queue add` or `queue cancel` from a shell (only its own events reached its views)."""
    write_config(tmp_path, backend_config())
    owner = Services(service_config(tmp_path, load_config(tmp_path)))
    heard = Waiter(owner.jobs)
    owner.start()
    try:
        assert cli(tmp_path, "queue", "pause", "--reason", "from a shell").returncode == 0
        paused = heard.wait(EventKind.QUEUE_PAUSED)
        assert paused.pid != os.getpid()
        added = cli(tmp_path, "queue", "add", "from a shell", "--json")
        (job_id,) = json.loads(added.stdout)["ids"]
        heard.wait(EventKind.ADD_TO_QUEUE, where=lambda e: e.pid != os.getpid())
        assert cli(tmp_path, "queue", "cancel", job_id).returncode == 0
        heard.wait(EventKind.JOB_CANCELLED, job_id)
        assert owner.jobs.paused() == "from a shell"
    finally:
        owner.close(grace=3)


def test_closing_a_client_while_it_takes_over_leaves_no_runner_or_backend(
    tmp_path: Path, start_sim, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    """Found by a helper: a window closed while taking over a stopped worker's home started its
    runners after close() had closed the store and the backend clients (a runner thread died
    with "the client has been closed"), and could leave the backend it was starting behind."""
    sim = start_sim()
    slow_start = [sys.executable, "-c", "import time; time.sleep(120)", "--port", "1"]
    write_config(
        tmp_path,
        f"[backend]\ncommand = {json.dumps(slow_start)}\nstartup_timeout = 8\ndiscover = false\n",
    )
    crashed: list[BaseException | None] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: crashed.append(args.exc_value))
    worker = start_worker(tmp_path, "--backend", sim.manager.url)
    client = Services(service_config(tmp_path, load_config(tmp_path)))
    try:
        assert client.open() == Role.CLIENT
        heard = Waiter(client.jobs)
        worker.proc.send_signal(signal.SIGTERM)
        assert worker.proc.wait(30) == 0
        heard.wait(EventKind.WARNING, timeout=30, where=lambda e: "owner is gone" in e.message)
    finally:
        client.close()  # while the take-over still waits for its backend to start
    # close() returns once the take-over is over: nothing of this Services runs on after it
    # (the take-over went on, starting runners on a closed store and closed backend clients).
    left_running = [t.name for t in threading.enumerate() if t.name in ("owner-follower",)]
    late = [e for e in heard.events if e.kind == EventKind.WARNING and "closed" in e.message]
    assert left_running == [] and late == [], (left_running, late)
    assert crashed == [], crashed
    assert not any(r.alive for r in client.jobs.runners)
    left = [
        p
        for p in psutil.Process().children(recursive=True)
        if "time.sleep(120)" in " ".join(p.cmdline())
    ]
    assert left == [], "the backend the take-over started is left behind"


def test_a_client_closed_while_taking_over_from_a_killed_owner_requeues_its_job(
    tmp_path: Path, start_sim
) -> None:  # type: ignore[no-untyped-def]
    """A tester closed the window during the take-over of a killed worker: the worker's job
    stayed RUNNING with no owner until the next start."""
    sim = start_sim("--step-ms", "100")
    slow_start = [sys.executable, "-c", "import time; time.sleep(120)", "--port", "1"]
    write_config(
        tmp_path,
        f"[backend]\ncommand = {json.dumps(slow_start)}\nstartup_timeout = 8\ndiscover = false\n",
    )
    worker = start_worker(tmp_path, "--backend", sim.manager.url)
    client = Services(service_config(tmp_path, load_config(tmp_path)))
    try:
        assert client.open() == Role.CLIENT
        heard = Waiter(client.jobs)
        job_id = client.jobs.submit_pipeline_run(
            JobSpec(prompt="outlives its owner", steps=40, width=64, height=64), source="test"
        )
        heard.wait(EventKind.STAGE_STARTED, job_id, timeout=60)
        worker.proc.kill()
        worker.proc.wait(10)
        heard.wait(EventKind.WARNING, timeout=30, where=lambda e: "owner is gone" in e.message)
    finally:
        client.close()
    store = JobStore(tmp_path / "jobs.db")
    try:
        assert store.get(job_id).status == JobStatus.QUEUED
    finally:
        store.close()
