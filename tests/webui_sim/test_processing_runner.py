"""The ProcessingRunner lifecycle is a contract: order, no-op hooks, per-step control."""

from __future__ import annotations

from typing import Any

from stablenew.webui_sim.runner import ProcessingRequest, ProcessingRunner, Signal, StepControl


class _Work:
    stage, job, job_count, sampling_steps = "txt2img", "scripts_txt2img", 1, 3

    def __init__(self, calls: list[str]) -> None:
        self.calls = calls

    def process(self, control: StepControl) -> str:
        for step in range(1, self.sampling_steps + 1):
            self.calls.append(f"step{step}")
            if control.step(0, step, self.sampling_steps) is Signal.INTERRUPT:
                return "partial"
        return "result"


def test_runner_lifecycle_order_with_hooks() -> None:
    calls: list[str] = []

    class Recording(ProcessingRunner):
        def prepare(self, request: ProcessingRequest) -> Any:
            calls.append("prepare")
            return super().prepare(request)

        def on_prepare(self, state: Any) -> None:
            calls.append("prepare_hook")

        def execute(self, state: Any) -> Any:
            calls.append("execute")
            return super().execute(state)

        def on_execute(self, state: Any, result: Any) -> None:
            calls.append(f"execute_hook:{result}")

        def finalize(self, state: Any, result: Any) -> Any:
            calls.append("finalize")
            return result.upper()

        def on_finalize(self, state: Any, result: Any) -> None:
            calls.append(f"finalize_hook:{result}")

    result = Recording().run(ProcessingRequest(_Work(calls)))

    assert result == "RESULT"
    assert calls == [
        "prepare",
        "prepare_hook",
        "execute",
        "step1",
        "step2",
        "step3",
        "execute_hook:result",
        "finalize",
        "finalize_hook:RESULT",
    ]


def test_runner_hooks_called() -> None:
    """The seed's contract test, as written there: hooks fire around an overridden execute."""
    calls: list[str] = []

    class TestRunner(ProcessingRunner):
        def on_prepare(self, state: Any) -> None:
            calls.append("prepare_hook")

        def on_execute(self, state: Any, result: Any) -> None:
            calls.append("execute_hook")

        def on_finalize(self, state: Any, result: Any) -> None:
            calls.append("finalize_hook")

        def execute(self, state: Any) -> Any:
            return "result"

    assert TestRunner().run(ProcessingRequest(processing="dummy")) == "result"
    assert calls == ["prepare_hook", "execute_hook", "finalize_hook"]


def test_default_hooks_are_no_ops() -> None:
    calls: list[str] = []
    assert ProcessingRunner().run(ProcessingRequest(_Work(calls))) == "result"
    assert calls == ["step1", "step2", "step3"]


def test_per_step_control_can_interrupt() -> None:
    calls: list[str] = []

    class InterruptAtTwo:
        def step(self, job_no: int, sampling_step: int, sampling_steps: int) -> Signal:
            return Signal.INTERRUPT if sampling_step == 2 else Signal.CONTINUE

        def preview(self, image: Any) -> None:
            pass

    class Runner(ProcessingRunner):
        def control(self, state: Any) -> StepControl:
            return InterruptAtTwo()

    assert Runner().run(ProcessingRequest(_Work(calls))) == "partial"
    assert calls == ["step1", "step2"]
