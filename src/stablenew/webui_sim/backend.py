"""The reference backend's live state and its instrumented ProcessingRunner.

`SimBackend` owns everything with a lifecycle (options, queue lock, progress, faults, stats);
`TrackedRunner` attaches progress, interrupt/skip, faults and statistics to the runner hooks.
"""

from __future__ import annotations

import base64
import json
import os
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Any

from PIL import Image
from starlette.responses import Response

from stablenew.webui_sim import catalog
from stablenew.webui_sim.faults import Fate, FaultBoard, FaultSpec
from stablenew.webui_sim.images import encode_image, encode_png
from stablenew.webui_sim.output import err, say
from stablenew.webui_sim.processing import Context, Processed, Speed
from stablenew.webui_sim.runner import (
    ProcessingRequest,
    ProcessingRunner,
    ProcessingState,
    Signal,
)
from stablenew.webui_sim.state import FifoLock, ProgressState, RequestLog, Stats


@dataclass
class SimConfig:
    speed: Speed = field(default_factory=Speed)
    model_load_ms: float = 0.0
    faults: FaultSpec = field(default_factory=FaultSpec)
    api_auth: dict[str, str] = field(default_factory=dict)
    nowebui: bool = False
    # model_names of the only checkpoints this instance has (the first loads at start); () = all.
    models: tuple[str, ...] = ()


class SimulatedBackendError(RuntimeError):
    """Raised by the http_error fault; its class name and text reach the client as A1111's do."""

    def __init__(self, status_code: int, message: str, name: str) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.error_name = name


OOM_MESSAGE = (
    "CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 8.00 GiB total capacity; "
    "6.91 GiB already allocated; 0 bytes free; 7.12 GiB reserved in total by PyTorch)"
)


class SimBackend:
    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.checkpoints = catalog.select_checkpoints(config.models)
        self.options: dict[str, Any] = catalog.default_options(self.checkpoints[0])
        self.options_lock = threading.Lock()
        self.queue_lock = FifoLock()
        self.progress = ProgressState()
        self.stats = Stats()
        self.requests = RequestLog()
        self.faults = FaultBoard(config.faults)
        self.shutdown = threading.Event()
        self.runner = TrackedRunner(self)

    def context(self) -> Context:
        with self.options_lock:
            return Context(dict(self.options), self.config.speed, self.checkpoints)

    def load_checkpoint(self, checkpoint: catalog.Checkpoint) -> None:
        """Switch models under the queue lock, taking as long as a real load would."""
        with self.queue_lock:
            self.load_locked(checkpoint)

    def load_locked(self, checkpoint: catalog.Checkpoint) -> None:
        """The load itself; the caller holds the queue lock, as A1111's reload does."""
        say(f"Loading weights [{checkpoint.shorthash}] from {checkpoint.filename}")
        started = time.monotonic()
        if self.config.model_load_ms > 0:
            time.sleep(self.config.model_load_ms / 1000)
        with self.options_lock:
            self.options["sd_model_checkpoint"] = checkpoint.title
            self.options["sd_checkpoint_hash"] = checkpoint.sha256
        took = time.monotonic() - started
        self.stats.count_model_load()
        say(f"Model loaded in {took:.1f}s (load weights from disk: {took:.1f}s).")

    def set_options(self, values: dict[str, Any]) -> None:
        for key, value in values.items():
            if key == "sd_model_checkpoint":
                checkpoint = catalog.find_checkpoint(str(value), self.checkpoints)
                if checkpoint is None:
                    raise RuntimeError(f"model {value!r} not found")
                if checkpoint.title != self.options["sd_model_checkpoint"]:
                    self.load_checkpoint(checkpoint)
                continue
            if key == "sd_vae" and value not in ("Automatic", "None", *catalog.VAES):
                raise RuntimeError(f"VAE {value!r} not found")
            with self.options_lock:
                if key not in self.options:
                    raise KeyError(key)
                self.options[key] = value


class _Control:
    """The per-step callback: progress, interrupt and skip, and mid-call crash and hang faults."""

    def __init__(self, backend: SimBackend, fate: Fate) -> None:
        self.backend = backend
        self.fate = fate
        self.fault_due = fate.crash or fate.hang is not None

    def step(self, job_no: int, sampling_step: int, sampling_steps: int) -> Signal:
        progress = self.backend.progress
        progress.step(job_no, sampling_step, sampling_steps)
        due_at = sampling_steps if self.fate.hang_at == "end" else max(1, sampling_steps // 2)
        if self.fault_due and sampling_step >= due_at:
            self.fault_due = False
            if self.fate.crash:
                self._crash()
            self._hang()
        if progress.interrupt_event.is_set():
            return Signal.INTERRUPT
        if progress.skip_event.is_set():
            progress.skip_event.clear()
            return Signal.SKIP
        return Signal.CONTINUE

    def preview(self, source: Any) -> None:
        self.backend.progress.set_preview_source(source)

    def _crash(self) -> None:
        err(
            "RuntimeError: CUDA error: an illegal memory access was encountered\n"
            "CUDA kernel errors might be asynchronously reported at some other API call"
        )
        os._exit(1)

    def _hang(self) -> None:
        """Freeze with progress still: until interrupted (honour) or until the process ends."""
        progress, shutdown = self.backend.progress, self.backend.shutdown
        if self.fate.hang == "honour_interrupt":
            while not (progress.interrupt_event.wait(0.05) or shutdown.is_set()):
                pass
        else:
            shutdown.wait()


class TrackedRunner(ProcessingRunner):
    def __init__(self, backend: SimBackend) -> None:
        self.backend = backend

    def run(self, request: ProcessingRequest) -> Any:
        b = self.backend
        with b.stats.request(request.processing.stage), b.queue_lock, b.stats.processing_section():
            try:
                return super().run(request)
            finally:
                b.progress.end()

    def prepare(self, request: ProcessingRequest) -> ProcessingState:
        state = super().prepare(request)
        state.extra["fate"] = self.backend.faults.draw(state.processing.stage)
        return state

    def on_prepare(self, state: ProcessingState) -> None:
        p = state.processing
        self.backend.progress.begin(p.job, p.job_count, p.sampling_steps)
        error = state.extra["fate"].http_error
        if error is not None:
            if error.kind == "oom":
                raise SimulatedBackendError(error.status, OOM_MESSAGE, "OutOfMemoryError")
            raise SimulatedBackendError(
                error.status, f"simulated failure in {p.stage}", "RuntimeError"
            )

    def control(self, state: ProcessingState) -> _Control:
        return _Control(self.backend, state.extra["fate"])

    def on_execute(self, state: ProcessingState, result: Any) -> None:
        self.backend.stats.count_completed(state.processing.stage)

    def finalize(self, state: ProcessingState, result: Processed) -> Any:
        fmt = str(self.backend.context().options.get("samples_format", "png"))
        encoded = [
            encode_image(image, fmt, {result.chunk_key: text} if text else {})
            for image, text in zip(result.images, result.infotexts, strict=True)
        ]
        p = state.processing
        if p.job == "extras":
            body: dict[str, Any] = {"html_info": f"<p>{result.html_info}</p>", "image": encoded[0]}
        else:
            body = self._generation_body(p, result, encoded)
        return self._corrupt(body, state.extra["fate"].garbage)

    def _generation_body(self, p: Any, result: Processed, encoded: list[str]) -> dict[str, Any]:
        req = p.req
        info = dict(result.info)
        if req.save_images and len(encoded) >= 2 and p.ctx.options.get("return_grid"):
            grid = _grid(result.images)
            encoded.insert(0, encode_image(grid, "png", {}))
            info["index_of_first_image"] = 1
            info["infotexts"] = [result.infotexts[0], *result.infotexts]
        parameters = req.model_dump()
        if "init_images" in parameters and not parameters.get("include_init_images"):
            parameters["init_images"] = None
            parameters["mask"] = None
        return {
            "images": encoded if req.send_images else [],
            "parameters": parameters,
            "info": json.dumps(info),
        }

    @staticmethod
    def _corrupt(body: dict[str, Any], garbage: str | None) -> Any:
        if garbage == "not_json":
            return Response(b'{"images": ["iVBORw0KGgo', media_type="application/json")
        if garbage == "missing_images":
            return {k: v for k, v in body.items() if k not in ("images", "image")}
        if garbage == "bad_base64":
            key = "image" if "image" in body else "images"
            return {**body, key: "!!not base64!!" if key == "image" else ["!!not base64!!"]}
        return body


def _grid(images: list[Image.Image]) -> Image.Image:
    cols = int(len(images) ** 0.5 + 0.999)
    rows = (len(images) + cols - 1) // cols
    w, h = images[0].size
    grid = Image.new("RGB", (cols * w, rows * h))
    for i, image in enumerate(images):
        grid.paste(image, ((i % cols) * w, (i // cols) * h))
    return grid


def encode_preview(image: Image.Image) -> str:
    return base64.b64encode(encode_png(image, {})).decode()


def log_api_error(method: str, url: str, exc: BaseException) -> None:
    trace = "".join(traceback.format_exception(exc)).rstrip()
    err(f"API error: {method}: {url} {{'error': {type(exc).__name__!r}}}\n{trace}")
