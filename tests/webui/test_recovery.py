"""The recovery layer against real faults in a real reference backend process."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from stablenew.jobs.cancel import CancelToken
from stablenew.webui.client import WebUIClient
from stablenew.webui.process import LaunchConfig, WebUIProcessManager
from stablenew.webui.recovery import (
    Progress,
    RecoveringBackend,
    RecoveryPolicy,
    StageCancelled,
    StageFailed,
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


def run(backend: RecoveringBackend, run_dir: Path, stage: str = "txt2img", **kw: object):  # type: ignore[no-untyped-def]
    return backend.generate_with_recovery(
        stage,
        PAYLOAD,
        run_dir,
        "job-1",
        kw.pop("token", CancelToken()),
        **kw,  # type: ignore[arg-type]
    )


def files(run_dir: Path) -> list[Path]:
    return sorted(p for p in run_dir.rglob("*") if p.is_file())


def test_500_once_writes_sanitized_artifacts_restarts_once_and_succeeds(start_sim, run_dir) -> None:  # type: ignore[no-untyped-def]
    sim = start_sim()
    sim.faults({"http_error": {"stage": "txt2img"}})  # runtime faults die with the process
    result = run(recovering(sim), run_dir, image_index=2)
    assert len(result.images) == 1
    assert sim.manager.restarts == 1
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
    init = __import__("base64").b64encode(first.images[0].data).decode()
    backend = recovering(sim)
    result = backend.generate_with_recovery(
        "img2img", {**PAYLOAD, "init_images": [init]}, run_dir, "job-1", CancelToken()
    )
    assert len(result.images) == 1 and sim.manager.restarts == 1


@pytest.mark.parametrize("fault", ["http_error:txt2img:1", "crash:txt2img:1"])
def test_second_failure_gives_an_envelope_naming_both_artifacts(start_sim, run_dir, fault) -> None:  # type: ignore[no-untyped-def]
    sim = start_sim("--fault", fault)  # a start flag re-arms in the restarted process: twice
    with pytest.raises(StageFailed) as failed:
        run(recovering(sim), run_dir, image_index=3)
    envelope = failed.value.envelope
    assert envelope["stage"] == "txt2img" and envelope["image_index"] == 3
    assert envelope["attempts"] == 2 and envelope["restarts"] == 1
    assert len(envelope["cause_chain"]) == 2
    assert len(envelope["artifacts"]) == 4
    assert all(Path(p).is_file() for p in envelope["artifacts"])
    assert {Path(p).name for p in envelope["artifacts"]} == {
        "stage_failure_payload.json",
        "webui_tail.log",
    }
    assert "txt2img failed for image 3 after 2 attempt(s)" in envelope["message"]


@pytest.mark.parametrize("mode", ["honour_interrupt", "ignore_interrupt"])
def test_stall_is_detected_and_recovered(start_sim, run_dir, mode) -> None:  # type: ignore[no-untyped-def]
    sim = start_sim("--step-ms", "20")
    sim.faults({"hang": {"stage": "txt2img", "nth": 1, "mode": mode}})
    result = run(recovering(sim), run_dir)
    assert len(result.images) == 1
    assert sim.manager.restarts == (0 if mode == "honour_interrupt" else 1)
    cause = json.loads(next(run_dir.rglob("stage_failure_payload.json")).read_text())["error"]
    assert cause["type"] == "StallDetected"


@pytest.mark.parametrize("mode", ["honour_interrupt", "ignore_interrupt"])
def test_a_call_frozen_at_100_percent_is_a_stall(start_sim, run_dir, mode) -> None:  # type: ignore[no-untyped-def]
    sim = start_sim("--step-ms", "20")
    sim.faults({"hang": {"stage": "txt2img", "nth": 1, "mode": mode, "at": "end"}})
    # Only the 100% rule can fire: the general no-progress rule would wait ten minutes.
    policy = RecoveryPolicy(
        stall_timeout=600, finished_stall=1.0, stall_grace=1.0, poll_interval=0.1
    )
    result = run(recovering(sim, policy), run_dir)
    assert len(result.images) == 1
    assert sim.manager.restarts == (0 if mode == "honour_interrupt" else 1)
    cause = json.loads(next(run_dir.rglob("stage_failure_payload.json")).read_text())["error"]
    assert cause["type"] == "StallDetected" and "at 100% with no response" in cause["message"]


def test_a_slow_call_that_progresses_is_left_alone(start_sim, run_dir) -> None:  # type: ignore[no-untyped-def]
    sim = start_sim("--step-ms", "150")
    seen: list[Progress] = []
    backend = RecoveringBackend(sim.client, sim.manager, FAST, on_progress=seen.append)
    result = backend.generate_with_recovery(
        "txt2img", {**PAYLOAD, "steps": 20}, run_dir, "job-1", CancelToken(), image_index=1
    )
    assert len(result.images) == 1 and sim.manager.restarts == 0
    assert not files(run_dir)
    assert sim.stats()["interrupts"] == 0
    steps = [p.step for p in seen]
    assert steps == sorted(steps) and steps[-1] > steps[0]
    assert {p.steps for p in seen} == {20} and {p.image_index for p in seen} == {1}


def test_out_of_memory_fails_at_once_without_restart(start_sim, run_dir) -> None:  # type: ignore[no-untyped-def]
    sim = start_sim("--fault", "http_error:txt2img:1:oom")
    with pytest.raises(StageFailed) as failed:
        run(recovering(sim), run_dir)
    envelope = failed.value.envelope
    assert envelope["attempts"] == 1 and envelope["restarts"] == 0
    assert envelope["cause_chain"][0]["type"] == "BackendApplicationError"
    assert "CUDA out of memory" in envelope["message"]
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
        except StageCancelled as exc:
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
    assert len(run(backend, run_dir).images) == 1
    assert sim.manager.restarts == (1 if mode == "ignore_interrupt" else 0)


def test_attached_backend_down_fails_clearly_in_bounded_time(run_dir) -> None:  # type: ignore[no-untyped-def]
    url = f"http://127.0.0.1:{closed_port()}"
    manager = WebUIProcessManager(
        LaunchConfig(url=url), probe=lambda u: WebUIClient(u).is_healthy()
    )
    policy = RecoveryPolicy(restart_timeout=1.0)
    backend = RecoveringBackend(WebUIClient(url), manager, policy)
    started = time.monotonic()
    with pytest.raises(StageFailed) as failed:
        run(backend, run_dir)
    assert time.monotonic() - started < 10
    causes = [c["type"] for c in failed.value.envelope["cause_chain"]]
    assert causes == ["BackendUnavailable", "BackendStartError"]
    assert "cannot restart" in failed.value.envelope["cause_chain"][1]["message"]
