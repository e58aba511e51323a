"""The recovery layer against real faults in a real reference backend process."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from stablenew.errors import CallCancelled, CallFailed
from stablenew.jobs.cancel import CancelToken
from stablenew.webui.client import WebUIClient
from stablenew.webui.process import LaunchConfig, WebUIProcessManager
from stablenew.webui.recovery import (
    BackendCall,
    CallReport,
    CallResult,
    Endpoint,
    Progress,
    RecoveringBackend,
    RecoveryPolicy,
    RecoveryStep,
)
from tests.webui.test_client import closed_port

pytestmark = pytest.mark.integration

PROMPT = "a secret lighthouse prompt that must not leak"
PAYLOAD = {"prompt": PROMPT, "negative_prompt": "blurry", "steps": 6, "width": 64, "height": 64}
FAST = RecoveryPolicy(stall_timeout=1.0, stall_grace=1.0, cancel_grace=1.0, poll_interval=0.1)


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    return tmp_path / "run"


def recovering(sim, policy: RecoveryPolicy = FAST) -> RecoveringBackend:  # type: ignore[no-untyped-def]
    return RecoveringBackend(sim.client, sim.manager, policy)


def run(
    backend: RecoveringBackend,
    run_dir: Path,
    stage: str = "txt2img",
    image_index: int | None = None,
    token: CancelToken | None = None,
    payload: dict | None = None,
    on_progress=None,  # type: ignore[no-untyped-def]
    on_step=None,  # type: ignore[no-untyped-def]
) -> CallResult:
    endpoint = Endpoint.TXT2IMG if stage == "txt2img" else Endpoint.IMG2IMG
    call = BackendCall(endpoint, payload or PAYLOAD, stage, image_index, run_dir / "failures")
    return backend.call(call, token or CancelToken(), on_progress=on_progress, on_step=on_step)


def report(failed: pytest.ExceptionInfo[CallFailed]) -> CallReport:
    assert isinstance(failed.value.report, CallReport)
    return failed.value.report


def files(run_dir: Path) -> list[Path]:
    return sorted(p for p in run_dir.rglob("*") if p.is_file())


def test_500_once_writes_sanitized_artifacts_restarts_once_and_succeeds(start_sim, run_dir) -> None:  # type: ignore[no-untyped-def]
    sim = start_sim()
    sim.faults({"http_error": {"stage": "txt2img"}})  # runtime faults die with the process
    steps: list[RecoveryStep] = []
    result = run(recovering(sim), run_dir, image_index=2, on_step=steps.append)
    assert result.image.data and (result.attempts, result.restarts) == (2, 1)
    assert "simulated failure" in result.causes[0]
    assert sim.manager.restarts == 1
    assert [s.step for s in steps] == ["artifacts_written", "restart", "retry"]
    assert len(steps[0].artifacts) == 2
    names = [p.name for p in files(run_dir)]
    assert names == ["stage_failure_payload.json", "webui_tail.log"]
    record = json.loads(
        (run_dir / "failures/txt2img_image2_attempt1/stage_failure_payload.json").read_text()
    )
    assert record["payload"]["prompt"] == {
        "length": len(PROMPT),
        "sha256": record["payload"]["prompt"]["sha256"],
    }
    assert record["payload"]["steps"] == 6
    assert record["error"]["type"] == "BackendServerError" and record["error"]["status"] == 500
    for path in files(run_dir):
        assert PROMPT not in path.read_text()
    assert "Traceback" in (run_dir / "failures/txt2img_image2_attempt1/webui_tail.log").read_text()


def test_crash_mid_request_once_restarts_and_succeeds(start_sim, run_dir) -> None:  # type: ignore[no-untyped-def]
    sim = start_sim()
    sim.faults({"crash": {"stage": "img2img"}})
    first = run(recovering(sim), run_dir)
    init = __import__("base64").b64encode(first.image.data).decode()
    steps: list[RecoveryStep] = []
    result = run(
        recovering(sim),
        run_dir,
        "img2img",
        payload={**PAYLOAD, "init_images": [init]},
        on_step=steps.append,
    )
    assert result.image.data and sim.manager.restarts == 1
    assert [s.step for s in steps][:2] == ["crash_detected", "artifacts_written"]


@pytest.mark.parametrize("fault", ["http_error:txt2img:1", "crash:txt2img:1"])
def test_second_failure_gives_an_envelope_naming_both_artifacts(start_sim, run_dir, fault) -> None:  # type: ignore[no-untyped-def]
    sim = start_sim("--fault", fault)  # a start flag re-arms in the restarted process: twice
    with pytest.raises(CallFailed) as failed:
        run(recovering(sim), run_dir, image_index=3)
    got = report(failed)
    assert failed.value.stage == "txt2img"
    assert got.attempts == 2 and got.restarts == 1
    assert len(got.causes) == 2
    assert len(got.artifacts) == 4
    assert all(Path(p).is_file() for p in got.artifacts)
    assert {Path(p).name for p in got.artifacts} == {
        "stage_failure_payload.json",
        "webui_tail.log",
    }
    assert {p.parent.name for p in map(Path, got.artifacts)} == {
        "txt2img_image3_attempt1",
        "txt2img_image3_attempt2",
    }


@pytest.mark.parametrize("mode", ["honour_interrupt", "ignore_interrupt"])
def test_stall_is_detected_and_recovered(start_sim, run_dir, mode) -> None:  # type: ignore[no-untyped-def]
    sim = start_sim("--step-ms", "20")
    sim.faults({"hang": {"stage": "txt2img", "nth": 1, "mode": mode}})
    result = run(recovering(sim), run_dir)
    assert result.image.data
    assert sim.manager.restarts == (0 if mode == "honour_interrupt" else 1)
    cause = json.loads(next(run_dir.rglob("stage_failure_payload.json")).read_text())["error"]
    assert cause["type"] == "BackendStall"


@pytest.mark.parametrize("mode", ["honour_interrupt", "ignore_interrupt"])
def test_a_call_frozen_at_100_percent_is_a_stall(start_sim, run_dir, mode) -> None:  # type: ignore[no-untyped-def]
    sim = start_sim("--step-ms", "20")
    sim.faults({"hang": {"stage": "txt2img", "nth": 1, "mode": mode, "at": "end"}})
    # Only the 100% rule can fire: the general no-progress rule would wait ten minutes.
    policy = RecoveryPolicy(
        stall_timeout=600, finished_stall=1.0, stall_grace=1.0, poll_interval=0.1
    )
    result = run(recovering(sim, policy), run_dir)
    assert result.image.data
    assert sim.manager.restarts == (0 if mode == "honour_interrupt" else 1)
    cause = json.loads(next(run_dir.rglob("stage_failure_payload.json")).read_text())["error"]
    assert cause["type"] == "BackendStall" and "at 100% with no response" in cause["message"]


def test_a_slow_call_that_progresses_is_left_alone(start_sim, run_dir) -> None:  # type: ignore[no-untyped-def]
    sim = start_sim("--step-ms", "150")
    seen: list[Progress] = []
    result = run(
        recovering(sim),
        run_dir,
        image_index=1,
        payload={**PAYLOAD, "steps": 20},
        on_progress=seen.append,
    )
    assert result.image.data and sim.manager.restarts == 0 and result.attempts == 1
    assert not files(run_dir)
    assert sim.stats()["interrupts"] == 0
    steps = [p.step for p in seen]
    assert steps == sorted(steps) and steps[-1] > steps[0]
    assert {p.steps for p in seen} == {20}


def test_out_of_memory_fails_at_once_without_restart(start_sim, run_dir) -> None:  # type: ignore[no-untyped-def]
    sim = start_sim("--fault", "http_error:txt2img:1:oom")
    with pytest.raises(CallFailed) as failed:
        run(recovering(sim), run_dir)
    got = report(failed)
    assert got.attempts == 1 and got.restarts == 0
    assert type(got.last).__name__ == "BackendOutOfMemory"
    assert "CUDA out of memory" in str(failed.value)
    assert sim.manager.restarts == 0 and sim.stats()["stages"]["txt2img"] == 1


@pytest.mark.parametrize("mode", ["honour_interrupt", "ignore_interrupt"])
def test_cancel_during_a_hang_returns_within_grace(start_sim, run_dir, mode) -> None:  # type: ignore[no-untyped-def]
    sim = start_sim()
    sim.faults({"hang": {"stage": "txt2img", "nth": 1, "mode": mode}})
    policy = RecoveryPolicy(stall_timeout=600, cancel_grace=1.0, poll_interval=0.5)
    backend = recovering(sim, policy)
    token = CancelToken()
    outcome: dict[str, object] = {}

    def worker() -> None:
        try:
            run(backend, run_dir, token=token)
        except CallCancelled as exc:
            outcome["cancelled"] = exc
            outcome["at"] = time.monotonic()

    thread = threading.Thread(target=worker)
    thread.start()
    deadline = time.monotonic() + 10
    while sim.client.progress()["state"]["sampling_step"] < 2:
        assert time.monotonic() < deadline
    cancelled_at = time.monotonic()
    token.cancel()
    thread.join(15)
    assert not thread.is_alive()
    exc = outcome["cancelled"]
    assert outcome["at"] - cancelled_at < 1.0 + 4.0  # grace plus a generous margin
    assert exc.abandoned is (mode == "ignore_interrupt")  # type: ignore[attr-defined]
    # The next call is not stuck behind the abandoned one: the backend is restarted first.
    assert run(backend, run_dir).image.data
    assert sim.manager.restarts == (1 if mode == "ignore_interrupt" else 0)


def test_attached_backend_down_fails_clearly_in_bounded_time(run_dir) -> None:  # type: ignore[no-untyped-def]
    url = f"http://127.0.0.1:{closed_port()}"
    manager = WebUIProcessManager(LaunchConfig(url=url), probe=lambda u: WebUIClient(u).health())
    policy = RecoveryPolicy(restart_timeout=1.0)
    backend = RecoveringBackend(WebUIClient(url), manager, policy)
    started = time.monotonic()
    with pytest.raises(CallFailed) as failed:
        run(backend, run_dir)
    assert time.monotonic() - started < 10
    got = report(failed)
    assert [type(c).__name__ for c in got.causes] == ["BackendUnavailable", "BackendStartError"]
    assert "connection refused" in str(got.causes[1]) and "cannot start it" in str(got.causes[1])
    assert got.backend_down
