"""WebUIProcessManager with the reference backend as a real child process."""

from __future__ import annotations

import threading
import time

import psutil
import pytest

from stablenew.errors import BackendStartError
from stablenew.jobs.status import BackendState
from stablenew.webui.client import WebUIClient
from stablenew.webui.process import (
    LaunchConfig,
    WebUIProcessManager,
    reference_backend_command,
)
from tests.webui.test_client import closed_port

pytestmark = pytest.mark.integration


def test_start_tail_log_file_and_clean_stop(start_sim, tmp_path) -> None:  # type: ignore[no-untyped-def]
    sim = start_sim()
    manager = sim.manager
    assert manager.state == BackendState.READY and manager.is_process_alive()
    tails = manager.get_tail_logs(50)
    assert "Running on local URL:" in tails["stdout"]
    assert "Model loaded in" in tails["stdout"]
    log_files = list((tmp_path / "logs").glob("webui_*.log"))
    assert log_files and "[stdout] Startup time:" in log_files[0].read_text()
    pid = manager._proc.pid  # type: ignore[union-attr]
    tree = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    manager.stop(grace=3)
    assert manager.state == BackendState.STOPPED and not manager.is_process_alive()
    assert not [p for p in tree if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]


def test_states_are_published_and_crash_is_seen(tmp_path) -> None:  # type: ignore[no-untyped-def]
    seen: list[BackendState] = []
    manager = WebUIProcessManager(
        LaunchConfig(command=reference_backend_command(0, "--fault", "crash:txt2img:1")),
        probe=lambda url: WebUIClient(url).health(),
        on_state=lambda state, detail: seen.append(state),
    )
    try:
        url = manager.start()
        with pytest.raises(Exception):  # noqa: B017 - the connection drops mid-request
            WebUIClient(url).txt2img({"steps": 4, "width": 64, "height": 64})
        deadline = time.monotonic() + 10
        while manager.state != BackendState.CRASHED:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert manager.restart_and_wait_ready(30) == url  # same port after restart
        assert seen == [
            BackendState.STARTING,
            BackendState.READY,
            BackendState.CRASHED,
            BackendState.RESTARTING,
            BackendState.STARTING,
            BackendState.READY,
        ]
    finally:
        manager.stop()


def test_concurrent_restart_requests_restart_once(start_sim) -> None:  # type: ignore[no-untyped-def]
    manager = start_sim().manager
    barrier = threading.Barrier(3)
    urls: list[str] = []

    def ask() -> None:
        barrier.wait()
        urls.append(manager.restart_and_wait_ready(30))

    threads = [threading.Thread(target=ask) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(urls) == 3 and len(set(urls)) == 1
    assert manager.restarts == 1


def test_crash_loop_ends_in_failed(start_sim) -> None:  # type: ignore[no-untyped-def]
    sim = start_sim(max_restarts=2, restart_window=600)
    manager = sim.manager
    manager.restart_and_wait_ready(30)
    manager.restart_and_wait_ready(30)
    with pytest.raises(BackendStartError, match="crash loop"):
        manager.restart_and_wait_ready(30)
    assert manager.state == BackendState.FAILED and not manager.is_process_alive()
    assert manager.restarts == 2


def test_start_failure_reports_the_tail() -> None:
    manager = WebUIProcessManager(
        LaunchConfig(command=reference_backend_command(0, "--fail-start"), startup_timeout=30),
        probe=lambda url: WebUIClient(url).health(),
    )
    with pytest.raises(BackendStartError, match=r"exited during start-up(.|\n)*fail_start"):
        manager.start()
    assert manager.state == BackendState.FAILED


def test_attached_backend_down_fails_in_bounded_time() -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    manager = WebUIProcessManager(LaunchConfig(url=url), probe=lambda u: WebUIClient(u).health())
    started = time.monotonic()
    with pytest.raises(BackendStartError, match="cannot start it"):
        manager.restart_and_wait_ready(1.0)
    assert time.monotonic() - started < 10
    assert manager.state == BackendState.FAILED
