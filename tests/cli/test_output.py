"""What the commands print: plain lines in a pipe, prompts as typed, one JSON shape per kind of
data (`--json`), and help that describes everything."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import typer.main

from stablenew.cli import app
from tests.cli.clitools import ROOT, cli, document

DEMO = ROOT / "examples" / "packs" / "demo.txt"
TRICKY = "a cat :smile: :x: [bold]not bold[/bold] [red]"  # rich would read all of these
DECORATION = re.compile(r"\x1b\[|[│┃━─┏┓┗┛╭╮╰╯]")  # colour codes, box drawing


def _plain(text: str) -> None:
    assert not DECORATION.search(text), text


# -- a pipe gets plain lines -------------------------------------------------------------------


def test_prompts_are_printed_literally(tmp_path: Path) -> None:
    assert cli(tmp_path, "queue", "add", TRICKY).returncode == 0
    listed = cli(tmp_path, "queue", "list")
    _plain(listed.stdout)
    assert TRICKY in listed.stdout and "😄" not in listed.stdout
    pack = tmp_path / "tricky.txt"
    pack.write_text(TRICKY + "\nneg: :x: [dim]ugly[/dim]\n", encoding="utf-8")
    shown = cli(tmp_path, "pack", "show", str(pack))
    _plain(shown.stdout)
    assert f"  positive: {TRICKY}" in shown.stdout.splitlines()
    assert "  negative: :x: [dim]ugly[/dim]" in shown.stdout.splitlines()
    job_id = document(cli(tmp_path, "queue", "list", "--json"), "jobs")[0]["id"]
    show = cli(tmp_path, "queue", "show", job_id)
    _plain(show.stdout)
    assert f"prompt:      {TRICKY}" in show.stdout.splitlines()


def test_long_paths_and_errors_stay_on_one_line(tmp_path: Path) -> None:
    deep = tmp_path / ("a-rather-long-folder-name-" * 6) / "and-deeper-still" / "outputs"
    done = cli(tmp_path, "run", "a red kite", "--out", str(deep))
    assert done.returncode == 0, done.stderr
    _plain(done.stdout)
    summary = done.stdout.splitlines()[-2]
    assert summary.startswith("job ") and f"COMPLETED 1 image(s): {deep}/" in summary
    assert len(summary) > 200  # far past 80 columns, and still one line
    missing = tmp_path / ("no-such-pack-" * 12) / "pack.txt"
    error = cli(tmp_path, "run", "--pack", str(missing))
    assert error.returncode == 2
    lines = error.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and str(missing) in lines[0]


def test_run_in_a_pipe_has_no_progress_bars(tmp_path: Path) -> None:
    done = cli(tmp_path, "run", "--pack", str(DEMO))
    assert done.returncode == 0, done.stderr
    _plain(done.stdout + done.stderr)
    assert "\r" not in done.stdout
    lines = done.stdout.splitlines()
    assert lines[0] == "queued 3 job(s)"
    assert sum(" started: txt2img,img2img,upscale, 2 image(s)" in x for x in lines) == 3
    assert lines[-1] == "3 completed, 0 failed, 0 cancelled"
    assert "backend: reference backend (simulated images) at http://127.0.0.1:" in done.stderr


# -- --json: one document, one job object -------------------------------------------------------


def test_every_data_command_has_one_json_document(tmp_path: Path) -> None:
    ids = document(cli(tmp_path, "queue", "add", "--pack", str(DEMO), "--json"), "ids")
    assert len(ids) == 3
    listed = document(cli(tmp_path, "queue", "list", "--json"), "jobs")
    shown = document(cli(tmp_path, "queue", "show", ids[0][:6], "--json"), "job")
    ran = document(cli(tmp_path, "run", "a kite", "--json"), "jobs")
    history = document(cli(tmp_path, "history", "--json"), "jobs")
    # One job object everywhere: the same fields, ISO 8601 UTC times.
    keys = set(shown)
    assert {"id", "status", "priority", "attempts", "created_at", "spec", "result", "error"} <= keys
    for job in [*listed, *ran, *history]:
        assert set(job) == keys
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", job["created_at"])
    assert listed[0]["id"] == shown["id"] == ids[0]
    assert len(history) == 4  # the run ran the three queued ahead of its own

    pack = document(cli(tmp_path, "pack", "show", str(DEMO), "--json"), "pack")
    assert pack["name"] == "demo" and len(pack["jobs"]) == 3 and pack["images"] == 6
    assert pack["jobs"][0]["positive"].startswith("(watercolor, soft light)")
    config = document(cli(tmp_path, "config", "show", "--json"), "config")
    assert config["backend"]["mode"] == "managed"
    checks = document(cli(tmp_path, "doctor", "--json"), "checks")
    assert {"config", "database", "backend", "models"} <= {c["name"] for c in checks}
    backend = next(c for c in checks if c["name"] == "backend")
    assert backend["ok"] and "reference backend (simulated images)" in backend["detail"]


def test_errors_under_json_are_a_json_document_on_stderr(tmp_path: Path) -> None:
    for args, kind, code in [
        (("queue", "show", "ffffffff", "--json"), "QueueError", 2),
        (("run", "--json"), "InputError", 2),
        (("queue", "list", "--limit", "zero", "--json"), "BadParameter", 2),
        (("pack", "show", str(tmp_path / "nope"), "--json"), "PackError", 2),
    ]:
        done = cli(tmp_path, *args)
        assert done.returncode == code and done.stdout == "", (args, done.stdout)
        error = json.loads(done.stderr)
        assert error["schema"] == 1 and set(error["error"]) == {"type", "message", "exit_code"}
        assert error["error"]["type"] == kind and error["error"]["exit_code"] == code, error


# -- --help ----------------------------------------------------------------------------------


def _commands() -> list[tuple[str, ...]]:
    found: list[tuple[str, ...]] = []

    def walk(command: object, path: tuple[str, ...]) -> None:
        found.append(path)
        for name, sub in getattr(command, "commands", {}).items():
            walk(sub, (*path, name))

    walk(typer.main.get_command(app), ())
    return found


@pytest.mark.parametrize("path", _commands(), ids=lambda p: " ".join(p) or "stablenew")
def test_help_describes_every_option_and_argument(tmp_path: Path, path: tuple[str, ...]) -> None:
    done = cli(tmp_path, *path, "-h")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Usage: "), done.stdout
    assert "<bool>" not in done.stdout
    _plain(done.stdout)
    command = typer.main.get_command(app)
    for name in path:
        command = command.commands[name]  # type: ignore[attr-defined]
    assert command.help, f"{path} has no description"
    for param in command.params:
        assert getattr(param, "help", None), f"{' '.join(path)}: {param.name} has no help"


def test_version_and_completion(tmp_path: Path) -> None:
    version = cli(tmp_path, "--version")
    assert version.returncode == 0
    assert re.fullmatch(r"stablenew \d+\.\d+\.\d+\S*\n", version.stdout)
    assert "--install-completion" in cli(tmp_path, "--help").stdout


def test_a_stop_signal_never_waits_for_a_lock_the_main_thread_holds() -> None:
    """Found in a full run: a worker ignored SIGTERM for good. Its handler called Event.set()
    while the interrupted main thread held that event's lock inside its own wait(): a
    deadlock. The handler now hands the set to a thread."""
    import threading

    from stablenew.cli.common import set_from_signal

    wake = threading.Event()
    with wake._cond:  # type: ignore[attr-defined]  # where the main thread was interrupted
        set_from_signal(wake)  # returns at once: before the fix this line never returned
        assert not wake.is_set()
    assert wake.wait(10)
