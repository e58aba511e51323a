"""The ProcessingRunner lifecycle: prepare -> execute -> finalize, with no-op hooks between.

This is the instrumentation surface of the reference backend: progress tracking, interrupt and
skip, fault injection and statistics all attach by overriding the hooks or through the per-step
`control` object handed to `execute`, never by special cases in the HTTP endpoints. The order
`prepare, on_prepare, execute, on_execute, finalize, on_finalize` is a contract (tested).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Protocol


class Signal(Enum):
    """What the runner tells a processing loop after each step."""

    CONTINUE = "continue"
    SKIP = "skip"  # abandon the current batch, go on with the next
    INTERRUPT = "interrupt"  # stop now, return what there is


class StepControl(Protocol):
    def step(self, job_no: int, sampling_step: int, sampling_steps: int) -> Signal: ...

    def preview(self, source: Any) -> None:
        """What the live preview shows from now on (an `images.Preview`), rendered on demand."""
        ...


class Processing(Protocol):
    """A unit of work: a txt2img, img2img or extras job with its parameters."""

    stage: str
    job: str
    job_count: int
    sampling_steps: int

    def process(self, control: StepControl) -> Any: ...


@dataclass
class ProcessingRequest:
    processing: Any


@dataclass
class ProcessingState:
    request: ProcessingRequest
    processing: Any
    extra: dict[str, Any] = field(default_factory=dict)


class _NoControl:
    def step(self, job_no: int, sampling_step: int, sampling_steps: int) -> Signal:
        return Signal.CONTINUE

    def preview(self, source: Any) -> None:
        return None


class ProcessingRunner:
    def run(self, request: ProcessingRequest) -> Any:
        state = self.prepare(request)
        self.on_prepare(state)
        result = self.execute(state)
        self.on_execute(state, result)
        result = self.finalize(state, result)
        self.on_finalize(state, result)
        return result

    def prepare(self, request: ProcessingRequest) -> ProcessingState:
        return ProcessingState(request=request, processing=request.processing)

    def execute(self, state: ProcessingState) -> Any:
        return state.processing.process(self.control(state))

    def finalize(self, state: ProcessingState, result: Any) -> Any:
        return result

    def control(self, state: ProcessingState) -> StepControl:
        """The per-step callback object handed to the processing loop; a no-op by default."""
        return _NoControl()

    def on_prepare(self, state: ProcessingState) -> None:
        pass

    def on_execute(self, state: ProcessingState, result: Any) -> None:
        pass

    def on_finalize(self, state: ProcessingState, result: Any) -> None:
        pass
