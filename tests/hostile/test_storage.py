"""Storage faults: a damaged, truncated, empty or foreign jobs.db and a full disk under the home
give every command a typed, readable error (no traceback); doctor says what is wrong; `queue
recover` keeps what can be read."""

from __future__ import annotations

import os
import sqlite3
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from stablenew.jobs.spec import JobSpec
from stablenew.jobs.status import JobStatus
from stablenew.queue.store import JobStore
from tests.hostile.conftest import cli, fill, statuses

COMMANDS = [
    ("queue", "list"),
    ("queue", "add", "x"),
    ("history",),
    ("run", "x"),
    ("worker",),
]


def damaged(home: Path, how: str) -> Path:
    home.mkdir(parents=True, exist_ok=True)
    db = home / "jobs.db"
    if how == "empty":
        db.write_bytes(b"")
    elif how == "foreign":
        db.write_text("these are my holiday notes, not a database\n" * 50)
    elif how == "truncated":
        store = JobStore(db)
        store.submit_many([JobSpec(prompt=f"job {i}") for i in range(300)])
        store.close()
        with sqlite3.connect(db) as c:
            c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        data = db.read_bytes()
        db.write_bytes(data[: len(data) // 2])
    return db


@pytest.mark.parametrize("how", ["empty", "foreign", "truncated"])
def test_every_command_says_what_is_wrong_with_the_database(tmp_path: Path, how: str) -> None:
    damaged(tmp_path, how)
    for command in COMMANDS:
        done = cli(tmp_path, *command, timeout=60)
        assert done.returncode == 1, (command, done.stdout, done.stderr)
        assert "Traceback" not in done.stderr, (command, done.stderr)
        assert "jobs.db" in done.stderr and "queue recover" in done.stderr, (command, done.stderr)
    doctor = cli(tmp_path, "doctor")
    assert doctor.returncode == 1 and "FAIL database" in doctor.stdout


def test_queue_recover_keeps_every_readable_job(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "jobs.db")
    ids = store.submit_many([JobSpec(prompt=f"keep me {i}") for i in range(300)])
    store.close()
    db = tmp_path / "jobs.db"
    with sqlite3.connect(db) as c:
        c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        page_size = c.execute("PRAGMA page_size").fetchone()[0]
        leaves = [
            r[0]
            for r in c.execute(
                "SELECT pageno FROM dbstat WHERE name = 'jobs' AND pagetype = 'leaf'"
                " ORDER BY pageno"
            )
        ]
    assert len(leaves) > 3
    data = bytearray(db.read_bytes())
    start = (leaves[1] - 1) * page_size  # one damaged page in the middle of the jobs
    data[start : start + page_size] = b"\xa5" * page_size
    db.write_bytes(bytes(data))
    assert cli(tmp_path, "queue", "list", "--status", "QUEUED").returncode == 1

    done = cli(tmp_path, "queue", "recover")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "kept" in done.stdout and "damaged file is kept as" in done.stdout
    aside = [p for p in tmp_path.glob("jobs.db.damaged-*") if not p.name.endswith(("-wal", "-shm"))]
    assert len(aside) == 1 and aside[0].stat().st_size == len(data)  # nothing deleted
    fresh = JobStore(db)
    kept = [j.id for j in fresh.list_jobs()]
    assert 0 < len(kept) < len(ids) and set(kept) <= set(ids)
    assert f"kept {len(kept)} job(s)" in done.stdout and "could not be read" in done.stdout
    assert all(fresh.get(i).status == JobStatus.QUEUED for i in kept)
    assert fresh.integrity_ok()
    assert cli(tmp_path, "queue", "list").returncode == 0
    again = cli(tmp_path, "queue", "recover")
    assert again.returncode == 0 and "nothing to recover" in again.stdout


def test_an_empty_database_is_set_aside_by_recover(tmp_path: Path) -> None:
    damaged(tmp_path, "empty")
    done = cli(tmp_path, "queue", "recover")
    assert done.returncode == 0 and "kept 0 job(s)" in done.stdout
    assert cli(tmp_path, "queue", "add", "after the rescue").returncode == 0


def test_a_full_disk_under_the_home_is_a_readable_error(tmp_path: Path, mount) -> None:  # type: ignore[no-untyped-def]
    home = mount("home", size="2m")
    assert cli(home, "queue", "add", "fits").returncode == 0
    fill(home)
    done = cli(home, "queue", "add", "a long prompt " * 5_000)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert "full" in done.stderr
    (home / "ballast").unlink()
    listed = cli(home, "queue", "list")
    assert listed.returncode == 0 and "fits" in listed.stdout


def test_a_submit_refused_for_a_full_disk_leaves_no_input_images_behind(
    tmp_path: Path,
    mount,  # type: ignore[no-untyped-def]
) -> None:
    """Found by a tester: the images copied before the disk filled stayed in <home>/inputs."""
    home = mount("home", size="3m")
    folder = tmp_path / "big"
    folder.mkdir()
    for n in range(8):  # ~770 KB each, uncompressible: the fourth does not fit
        noise = Image.frombytes("RGB", (512, 512), os.urandom(512 * 512 * 3))
        noise.save(folder / f"b{n}.png", compress_level=0)
    done = cli(home, "queue", "add", "--init-image", str(folder), "--stages", "upscale")
    assert done.returncode != 0 and "cannot keep an input image" in done.stderr, done.stderr
    assert [p for p in (home / "inputs").rglob("*") if p.is_file()] == []
    assert statuses(home) == []


def test_doctor_reports_free_space(tmp_path: Path, mount) -> None:  # type: ignore[no-untyped-def]
    home = mount("home", size="4m")
    done = cli(home, "doctor")
    assert "FAIL home disk" in done.stdout  # 4 MB is far below what images need


def test_a_new_database_appears_whole_to_a_process_that_looks_meanwhile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two commands started together on a new home: the one that looks while the other is
    creating jobs.db finds no file or a whole database, never an empty one it must refuse,
    and the database it makes meanwhile is not overwritten."""
    home = tmp_path / "home"
    home.mkdir()
    other: list[subprocess.CompletedProcess[str]] = []
    connect = sqlite3.connect

    def looking_meanwhile(*args: object, **kwargs: object) -> sqlite3.Connection:
        if not other:  # the moment between creating the file and SQLite writing to it
            other.append(cli(home, "queue", "add", "queued by the other process"))
        return connect(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(sqlite3, "connect", looking_meanwhile)
    store = JobStore(home / "jobs.db")
    monkeypatch.setattr(sqlite3, "connect", connect)
    try:
        assert other[0].returncode == 0, other[0].stderr
        assert [j.spec.prompt for j in store.list_jobs()] == ["queued by the other process"]
    finally:
        store.close()
    assert not [p for p in home.iterdir() if p.name.endswith(".new")]  # no temporary left
    assert (home / "jobs.db").stat().st_mode & 0o777 == 0o600


def test_a_database_that_could_not_be_made_on_a_full_disk_leaves_nothing(
    tmp_path: Path, mount
) -> None:  # type: ignore[no-untyped-def]
    disk = mount("disk", size="256k")
    home = disk / "fresh"
    home.mkdir()
    (home / "config.toml").write_text(
        '[backend]\nmode = "attached"\nurl = "http://127.0.0.1:22699"\n'
    )
    fill(disk)
    done = cli(home, "queue", "list")
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert "full" in done.stderr and "free" in done.stderr, done.stderr
    assert sorted(p.name for p in home.iterdir() if p.name != "logs") == ["config.toml"]
    (disk / "ballast").unlink()
    listed = cli(home, "queue", "list")
    assert listed.returncode == 0, listed.stderr


def test_doctor_on_a_full_home_disk_says_it_is_full_and_goes_on(
    tmp_path: Path, mount, sim_url: str
) -> None:  # type: ignore[no-untyped-def]
    """SQLite says "disk I/O error" when the home's disk is full: the message names the full
    disk and its free space (not the folder's permissions), and doctor still checks the
    disks and the backend."""
    home = mount("home", size="2m")
    (home / "config.toml").write_text(f'[backend]\nmode = "attached"\nurl = "{sim_url}"\n')
    assert cli(home, "queue", "add", "fits").returncode == 0
    fill(home)
    done = cli(home, "doctor")
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    lines = done.stdout.splitlines()
    database = next(line for line in lines if line.startswith("FAIL database"))
    assert "is full" in database and "free" in database and "writable" not in database
    assert any(line.startswith("FAIL home disk") for line in lines), done.stdout
    assert any(line.startswith("ok   backend") for line in lines), done.stdout
    listed = cli(home, "queue", "list")
    assert listed.returncode == 1 and "is full" in listed.stderr, listed.stderr
    assert "writable" not in listed.stderr


def _damage(db: Path, *names: str, leaf: int = 0) -> None:
    """Overwrite one page of each named table or index (its `leaf`-th, or its only one)."""
    with sqlite3.connect(db) as c:
        c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        page_size = c.execute("PRAGMA page_size").fetchone()[0]
        pages = []
        for name in names:
            found = [
                r[0]
                for r in c.execute(
                    "SELECT pageno FROM dbstat WHERE name = ? AND pagetype = 'leaf'"
                    " ORDER BY pageno",
                    (name,),
                )
            ]
            pages.append(found[min(leaf, len(found) - 1)])
    data = bytearray(db.read_bytes())
    for page in pages:
        start = (page - 1) * page_size
        data[start : start + page_size] = b"\xa5" * page_size
    db.write_bytes(bytes(data))


def _paused_queue(home: Path, reason: str) -> None:
    store = JobStore(home / "jobs.db")
    store.submit_many([JobSpec(prompt=f"held {i}") for i in range(300)])
    store.pause(reason)
    store.close()


def test_queue_recover_keeps_the_queue_paused(tmp_path: Path) -> None:
    _paused_queue(tmp_path, "hold")
    _damage(tmp_path / "jobs.db", "jobs", leaf=1)
    done = cli(tmp_path, "queue", "recover")
    assert done.returncode == 0 and "the queue is paused: hold" in done.stdout, done.stdout
    listed = cli(tmp_path, "queue", "list")
    assert listed.returncode == 0 and listed.stdout.splitlines()[0] == "queue paused: hold"


def test_queue_recover_pauses_when_the_pause_cannot_be_read(tmp_path: Path) -> None:
    _paused_queue(tmp_path, "hold")
    _damage(tmp_path / "jobs.db", "meta", "sqlite_autoindex_meta_1")
    done = cli(tmp_path, "queue", "recover")
    assert done.returncode == 0 and "kept 300 job(s)" in done.stdout, done.stdout
    assert "the queue is paused: paused by `queue recover`" in done.stdout, done.stdout
    first = cli(tmp_path, "queue", "list").stdout.splitlines()[0]
    assert first.startswith("queue paused: paused by `queue recover`") and "resume" in first
