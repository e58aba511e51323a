"""The command line end to end: real subprocesses, a real managed backend, real files."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import psutil
import pytest
from PIL import Image

from stablenew.jobs.status import JobStatus
from stablenew.queue.store import JobStore
from tests.cli.clitools import cli, document

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "examples" / "packs" / "demo.txt"


def test_run_the_demo_pack_end_to_end(tmp_path: Path) -> None:
    done = cli(tmp_path, "run", "--pack", str(DEMO), "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["schema"] == 1 and result["completed"] == 3 and result["failed"] == 0
    assert result["ahead"] == 0
    for job in result["jobs"]:
        assert job["status"] == "COMPLETED" and job["created_at"].endswith("Z")
        images, manifests = job["result"]["images"], job["result"]["manifests"]
        assert len(images) == 2 and len(manifests) == 2
        for image, manifest in zip(images, manifests, strict=True):
            with Image.open(image) as png:
                assert png.size == (1024, 1024) and "parameters" in png.text
            assert json.loads(Path(manifest).read_text())["provenance"]["pack_id"] == "demo"
    assert Path(result["jobs"][0]["result"]["run_dir"]).parent.parent == tmp_path / "outputs"


def test_run_a_prompt_with_stages_and_history(tmp_path: Path) -> None:
    done = cli(
        tmp_path,
        "run",
        "a red kite",
        "--stages",
        "txt2img,upscale",
        "--images",
        "2",
        "--json",
        "--out",
        str(tmp_path / "elsewhere"),
    )
    assert done.returncode == 0, done.stderr
    job = document(done, "jobs")[0]
    assert [Path(p).name for p in job["result"]["images"]] == ["1_upscale.png", "2_upscale.png"]
    assert job["result"]["run_dir"].startswith(str(tmp_path / "elsewhere"))
    history = cli(tmp_path, "history", "--status", "completed", "--search", "kite")
    assert history.returncode == 0 and job["id"][:8] in history.stdout


def test_bad_input_exits_non_zero_and_queues_nothing(tmp_path: Path) -> None:
    pack = tmp_path / "bad.txt"
    pack.write_text("a [[nobody]] here\n")
    for args, needle in [
        (("run", "--pack", str(pack)), "bad.txt: row 1 (line 1): unresolved [[nobody]]"),
        (("run", "x", "--stages", "txt2img,zoom"), "unknown stage 'zoom'"),
        (("run",), "give a PROMPT, --pack FILE, --init-image PATH or --spec FILE"),
        (("pack", "show", str(tmp_path / "missing")), "no such pack"),
    ]:
        done = cli(tmp_path, *args)
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        assert needle in " ".join(done.stderr.split()), done.stderr
    assert JobStore(tmp_path / "jobs.db").list_jobs() == []


def test_config_show_and_bad_config(tmp_path: Path) -> None:
    shown = document(cli(tmp_path, "config", "show", "--json"), "config")
    assert shown["backend"]["mode"] == "managed" and shown["limits"]["tile_max"] == 1024
    assert 'mode = "managed"' in cli(tmp_path, "config", "show").stdout  # TOML for people
    (tmp_path / "config.toml").write_text(
        '[backend]\nusername = "u"\npassword = "p"\n[limits]\ntile_min = "big"\n'
    )
    bad = cli(tmp_path, "config", "show")
    assert bad.returncode == 2 and "limits.tile_min" in bad.stderr
    (tmp_path / "config.toml").write_text('[backend]\nusername = "u"\npassword = "secret"\n')
    assert "secret" not in cli(tmp_path, "config", "show").stdout
    assert "secret" not in cli(tmp_path, "config", "show", "--json").stdout


def test_config_show_prints_a_pool_and_webhooks_as_toml_that_reads_back(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text(
        '[[backends]]\nname = "gpu0"\nlabels = ["sdxl"]\n'
        '[[backends]]\nname = "box2"\nmode = "attached"\nurl = "http://127.0.0.1:9"\n'
        'username = "me"\npassword = "pool-pass-77"\n'
        '[[webhooks]]\nurl = "http://127.0.0.1:9/hook"\nsecret = "hook-secret-0123456789"\n'
    )
    text = cli(tmp_path, "config", "show").stdout
    assert "pool-pass-77" not in text and "hook-secret" not in text
    shown = tomllib.loads(text)
    assert "backend" not in shown  # a pool: pasting this back must not mean both at once
    assert [b["name"] for b in shown["backends"]] == ["gpu0", "box2"]
    assert shown["backends"][0]["labels"] == ["sdxl"]
    assert shown["webhooks"][0]["url"] == "http://127.0.0.1:9/hook"


def test_queue_commands(tmp_path: Path) -> None:
    for prompt in ("first", "second", "third"):
        assert cli(tmp_path, "queue", "add", prompt).returncode == 0
    store = JobStore(tmp_path / "jobs.db")
    ids = [j.id for j in store.list_jobs()]
    assert cli(tmp_path, "queue", "move", ids[2][:8], "front").returncode == 0
    assert [j.spec.prompt for j in store.list_jobs()] == ["third", "first", "second"]
    assert cli(tmp_path, "queue", "cancel", ids[0][:8]).returncode == 0
    assert store.get(ids[0]).status == JobStatus.CANCELLED
    assert cli(tmp_path, "queue", "retry", ids[0][:8]).returncode == 0
    assert cli(tmp_path, "queue", "pause", "--reason", "lunch").returncode == 0
    assert "paused: lunch" in cli(tmp_path, "queue", "list").stdout
    assert cli(tmp_path, "queue", "resume").returncode == 0
    shown = document(cli(tmp_path, "queue", "show", ids[1][:8], "--json"), "job")
    assert shown["spec"]["prompt"] == "second" and shown["status"] == "QUEUED"
    human = cli(tmp_path, "queue", "show", ids[1][:8]).stdout
    assert f"job:         {ids[1]}" in human and "prompt:      second" in human
    cleared = cli(tmp_path, "queue", "clear")
    assert cleared.returncode == 0 and "the history is empty now" in cleared.stdout
    missing = cli(tmp_path, "queue", "cancel", "ffffffff")
    assert missing.returncode == 2 and "no job matches" in missing.stderr


def test_doctor_gives_verdicts(tmp_path: Path) -> None:
    good = cli(tmp_path, "doctor")
    assert good.returncode == 0, good.stdout
    assert (
        "ok   backend: the reference backend (simulated images) answers at http://127.0.0.1:"
        in good.stdout
    )
    bad = cli(tmp_path, "doctor", "--backend", "http://127.0.0.1:9")
    assert bad.returncode == 1 and "FAIL backend" in bad.stdout


def test_ctrl_c_cancels_cleanly_during_a_hang(tmp_path: Path) -> None:
    command = [
        sys.executable,
        "-m",
        "stablenew",
        "webui-sim",
        "--port",
        "0",
        "--fault",
        "hang:txt2img:1:ignore_interrupt",
    ]
    (tmp_path / "config.toml").write_text(
        f"[backend]\ncommand = {json.dumps(command)}\n[recovery]\ncancel_grace = 1.0\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "stablenew", "--home", str(tmp_path), "run", "a hanging prompt"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    log = tmp_path / "logs" / "events.jsonl"
    deadline = time.monotonic() + 60
    while not (log.is_file() and '"stage_started"' in log.read_text()):
        assert time.monotonic() < deadline and proc.poll() is None, "the job never started"
        time.sleep(0.05)
    family = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
    assert len(family) >= 2, "the managed backend runs as a child"
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    code = proc.wait(30)
    assert code == 130, proc.stderr.read() if proc.stderr else ""
    assert time.monotonic() - sent < 20
    job = JobStore(tmp_path / "jobs.db").list_jobs()[0]
    assert job.status == JobStatus.CANCELLED
    _, alive = psutil.wait_procs(family, timeout=5)
    assert not alive, f"orphans: {alive}"
