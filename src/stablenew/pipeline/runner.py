"""PipelineRunner: one job through txt2img -> img2img -> adetailer -> upscale, strictly serial.

Stage-major: txt2img makes every image of the job (seed, seed+1, ...), then each later stage
takes the previous stage's images in order, one backend call at a time, every call through the
recovery layer. After each completed stage a checkpoint is saved, so a job re-queued after a
crash resumes from the images already on disk. The CancelToken is checked before every stage
and every image, and honoured during a call by the recovery layer.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stablenew.jobs.cancel import CancelToken
from stablenew.jobs.job import Job, JobOutcome, JobStatus, error_envelope, utcnow
from stablenew.observe.events import EventBus, EventKind
from stablenew.observe.jsonl import JsonlSink
from stablenew.pipeline import payloads
from stablenew.pipeline.artifacts import (
    add_png_text,
    image_name,
    image_size,
    png_text_keys,
    run_dir_for,
    sanitized_payload,
    write_image,
    write_json,
)
from stablenew.pipeline.guards import (
    GuardViolation,
    UpscaleGuard,
    UpscalePlan,
    UpscaleRefused,
    plan_upscale,
)
from stablenew.pipeline.settings import PipelineSettings
from stablenew.queue.runner import Checkpoint
from stablenew.webui.client import ExtrasResult
from stablenew.webui.errors import BackendError
from stablenew.webui.process import BackendState
from stablenew.webui.recovery import Progress, RecoveringBackend, StageCancelled, StageFailed

FINAL_KINDS = {
    EventKind.JOB_COMPLETED,
    EventKind.JOB_FAILED,
    EventKind.JOB_CANCELLED,
    EventKind.JOB_RECOVERED,
}


HANDOFF_BYTES = 64 * 2**20  # stage outputs kept in memory for the next stage, at most


def resolve_seed(seed: int) -> int:
    return seed if seed >= 0 else random.randrange(4294967294)


class PipelineRunner:
    """The JobRunner's execute callable: `runner(job, cancel_token, checkpoint) -> JobOutcome`."""

    def __init__(
        self, backend: RecoveringBackend, bus: EventBus, settings: PipelineSettings
    ) -> None:
        self.backend = backend
        self.bus = bus
        self.settings = settings
        self.tile_option: tuple[int, int] | None = None  # (backend restarts, tile) last sent

    def __call__(self, job: Job, token: CancelToken, checkpoint: Checkpoint) -> JobOutcome:
        return _Run(self, job, token, checkpoint).execute()


@dataclass
class _Run:
    """The state of one job's run; lives exactly as long as the run."""

    owner: PipelineRunner
    job: Job
    token: CancelToken
    save_checkpoint: Checkpoint
    stages_done: list[dict[str, Any]] = field(default_factory=list)
    partial: list[dict[str, Any]] = field(default_factory=list)
    guard: UpscaleGuard = field(default_factory=UpscaleGuard)
    handoff: dict[str, bytes] = field(default_factory=dict)  # stage outputs not yet consumed
    handoff_size: int = 0

    def __post_init__(self) -> None:
        cp = self.job.checkpoint
        self.spec = self.job.spec
        self.spec_sha256 = self.spec.sha256()
        self.bus = self.owner.bus
        self.backend = self.owner.backend
        self.settings = self.owner.settings
        self.run_dir = Path(
            cp.get("run_dir") or run_dir_for(self.job, self.settings.output_root, utcnow())
        )
        self.seed = int(cp["seed"]) if "seed" in cp else resolve_seed(self.spec.seed)
        self.stages_done = list(cp.get("stages", []))
        self.total = self.spec.images

    # -- the run -------------------------------------------------------------------------------

    def execute(self) -> JobOutcome:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._log_to_run_folder()
        stage, index = "setup", None
        try:
            self._switch_models()
            done = {s["stage"] for s in self.stages_done}
            stages = self.spec.stages()
            for stage in stages:
                if stage in done:
                    self._emit(
                        EventKind.STAGE_FINISHED, stage, None, f"{stage}: done before, resumed"
                    )
                    continue
                index = None
                self._check_cancel(stage, None)
                self._run_stage(stage)
                if stage != stages[-1]:  # after the last one, the job's result is the record
                    self.save_checkpoint(self._checkpoint())
            manifests = self._write_manifests()
            return JobOutcome(JobStatus.COMPLETED, self._result(manifests))
        except StageCancelled:
            return JobOutcome(JobStatus.CANCELLED, self._result([]))
        except StageFailed as exc:
            causes = {c.get("type") for c in exc.envelope.get("cause_chain", [])}
            down = "BackendStartError" in causes or self.backend.manager.state in (
                BackendState.FAILED,
                BackendState.CRASHED,
            )
            return JobOutcome.failed(exc.envelope, self._result([]), backend_down=down)
        except (UpscaleRefused, GuardViolation, BackendError, OSError, ValueError) as exc:
            failing = getattr(exc, "stage", None) or stage
            envelope = error_envelope(exc, stage=failing, image_index=index)
            return JobOutcome.failed(envelope, self._result([]))

    def _run_stage(self, stage: str) -> None:
        sources = self.stages_done[-1]["images"] if self.stages_done else []
        self.partial = []
        for i in range(1, self.total + 1):
            self._check_cancel(stage, i)
            source = sources[i - 1] if sources else None
            self.partial.append(self._run_image(stage, i, source))
        self.stages_done.append({"stage": stage, "images": self.partial})
        self.partial = []

    def _run_image(self, stage: str, i: int, source: dict[str, Any] | None) -> dict[str, Any]:
        seed = self.seed + i - 1
        data = self._source_bytes(source["file"]) if source else b""
        size: tuple[int, int] = (
            (int(source["size"][0]), int(source["size"][1]))
            if source
            else (self.spec.width, self.spec.height)
        )
        plan: UpscalePlan | None = None
        endpoint = None
        if stage == "txt2img":
            payload = payloads.txt2img(self.spec, self.settings, seed)
        elif stage == "img2img":
            payload = payloads.img2img(self.spec, self.settings, seed, data, size)
        elif stage == "adetailer":
            payload = payloads.adetailer(self.spec, self.settings, seed, data, size)
        else:
            up = self.spec.upscale
            plan = plan_upscale(size, up.factor, up.tile_size, self.settings.limits)
            for decision in plan.decisions:
                self._emit(EventKind.GUARD, stage, i, decision, decision=decision)
            if up.mode == "extra":
                self._set_tile(plan.tile)
                payload = payloads.upscale_extra(data, up.upscaler, plan.target)
            else:
                payload = payloads.upscale_img2img(
                    self.spec, self.settings, seed, data, plan.target
                )
                endpoint = "img2img"

        started = time.monotonic()
        if plan is not None:
            self._emit(
                EventKind.STAGE_STARTED,
                stage,
                i,
                f"enter upscale {i}/{self.total}: {self.spec.upscale.upscaler} "
                f"{plan.source[0]}x{plan.source[1]} -> {plan.target[0]}x{plan.target[1]}, "
                f"tile {plan.tile}",
                upscaler=self.spec.upscale.upscaler,
                tile_size=plan.tile,
                source=list(plan.source),
                target=list(plan.target),
                cancelled=self.token.is_cancelled(),
            )
        else:
            self._emit(
                EventKind.STAGE_STARTED,
                stage,
                i,
                f"{stage} {i}/{self.total}",
                cancelled=self.token.is_cancelled(),
            )
        self.backend.on_progress = lambda p: self._progress(p, i)
        try:
            if plan is not None:
                with self.guard.active(i):
                    result = self._call(stage, payload, i, endpoint)
            else:
                result = self._call(stage, payload, i, endpoint)
        finally:
            self.backend.on_progress = None
        duration = time.monotonic() - started

        produced = result.image if isinstance(result, ExtrasResult) else result.images[0]
        infotext = produced.infotext or (source or {}).get("infotext", "")
        chunks = {} if "parameters" in png_text_keys(produced.data) else {"parameters": infotext}
        chunks["stablenew"] = json.dumps(
            {
                "job_id": self.job.id,
                "spec_sha256": self.spec_sha256,
                "stage": stage,
                "image_index": i,
            },
            sort_keys=True,
        )
        out = add_png_text(produced.data, chunks)
        name = image_name(i, self.total, stage, self.spec.provenance.variant_label())
        path = self.run_dir / f"{name}.png"
        write_image(path, out)
        if stage != self.spec.stages()[-1]:  # a final image has no next stage to feed
            self._hand_on(str(path), out)
        out_size = image_size(out)
        info = getattr(result, "info", {}) or {}
        calls = self.backend.last_call
        record = {
            "index": i,
            "stage": stage,
            "file": str(path),
            "size": list(out_size),
            "seed": produced.seed if produced.seed is not None else seed,
            "infotext": infotext,
            "duration_s": round(duration, 3),
            "attempts": calls.attempts,
            "restarts": calls.restarts,
            "recovered_from": calls.causes,
            "payload": sanitized_payload(payload),
            "backend": {k: info.get(k) for k in ("sd_model_name", "sd_model_hash", "version")},
            "guard": plan.decisions if plan else [],
        }
        message = (
            f"exit upscale {i}/{self.total}: {out_size[0]}x{out_size[1]} in {duration:.2f}s"
            if plan is not None
            else f"{stage} {i}/{self.total} done in {duration:.2f}s"
        )
        self._emit(
            EventKind.STAGE_FINISHED,
            stage,
            i,
            message,
            duration_s=round(duration, 3),
            size=list(out_size),
            cancelled=self.token.is_cancelled(),
            attempts=calls.attempts,
            file=str(path),
        )
        return record

    def _hand_on(self, file: str, data: bytes) -> None:
        """Keep what was just written for the next stage, so it is not read back from disk;
        bounded, because a stage-major run of 100 large images must not live in memory."""
        if self.handoff_size + len(data) <= HANDOFF_BYTES:
            self.handoff[file] = data
            self.handoff_size += len(data)

    def _source_bytes(self, file: str) -> bytes:
        data = self.handoff.pop(file, None)
        if data is None:
            return Path(file).read_bytes()  # resumed from a checkpoint, or over the bound
        self.handoff_size -= len(data)
        return data

    def _call(self, stage: str, payload: dict[str, Any], i: int, endpoint: str | None) -> Any:
        return self.backend.generate_with_recovery(
            stage, payload, self.run_dir, self.job.id, self.token, image_index=i, endpoint=endpoint
        )

    # -- helpers -------------------------------------------------------------------------------

    def _check_cancel(self, stage: str, index: int | None) -> None:
        if self.token.is_cancelled():
            where = f" before image {index}" if index else ""
            self._emit(
                EventKind.STAGE_FINISHED, stage, index, f"{stage} cancelled{where}", cancelled=True
            )
            raise StageCancelled(stage, index, abandoned=False)

    def _switch_models(self) -> None:
        client = self.backend.client
        if self.spec.model:
            title = client.set_model(self.spec.model)
            self._emit(EventKind.STAGE_STARTED, "setup", None, f"model: {title}")
        if self.spec.vae:
            client.set_vae(self.spec.vae)
            self._emit(EventKind.STAGE_STARTED, "setup", None, f"VAE: {self.spec.vae}")

    def _set_tile(self, tile: int) -> None:
        """ESRGAN_tile is a server option: sent when it changes, and again after a restart
        (a new backend process may not have it)."""
        wanted = (self.backend.manager.restarts, tile)
        if self.owner.tile_option != wanted:
            self.backend.client.set_options({"ESRGAN_tile": tile})
            self.owner.tile_option = wanted

    def _progress(self, p: Progress, i: int) -> None:
        self._emit(
            EventKind.PROGRESS,
            p.stage,
            i,
            f"{p.stage} {i}/{self.total}: step {p.step}/{p.steps}",
            step=p.step,
            steps=p.steps,
            eta=round(p.eta, 2),
            fraction=round(p.fraction, 3),
        )

    def _emit(
        self, kind: EventKind, stage: str, index: int | None, message: str, **fields: Any
    ) -> None:
        self.bus.emit(
            kind,
            message,
            source="pipeline",
            job_id=self.job.id,
            stage=stage,
            image_index=index,
            total=self.total,
            fields=fields,
        )

    def _log_to_run_folder(self) -> None:
        """The job's own events.jsonl, open until the runner records the job's end."""
        sink = JsonlSink(self.run_dir / "events.jsonl")

        def write(event: Any) -> None:
            if event.job_id != self.job.id:
                return
            sink(event)
            if event.kind in FINAL_KINDS and event.source == "runner":
                unsubscribe()
                sink.close()

        unsubscribe = self.bus.subscribe(write)

    def _checkpoint(self) -> dict[str, Any]:
        return {"run_dir": str(self.run_dir), "seed": self.seed, "stages": self.stages_done}

    def _write_manifests(self) -> list[str]:
        final = self.stages_done[-1]["images"]
        paths = []
        positive, negative = payloads.prompts(self.spec, self.settings)
        for image in final:
            i = image["index"]
            history = [s["images"][i - 1] for s in self.stages_done]
            first = history[0]
            manifest = {
                "job_id": self.job.id,
                "spec_sha256": self.spec_sha256,
                "image_index": i,
                "file": image["file"],
                "prompt": positive,
                "negative_prompt": negative,
                "seed_requested": self.spec.seed,
                "seed": first["seed"],
                "model": self.spec.model or first["backend"].get("sd_model_name"),
                "vae": self.spec.vae,
                "backend": {"url": self.backend.client.base_url, **first["backend"]},
                "provenance": self.spec.provenance.model_dump(),
                "stages": history,
                "guard": [d for h in history for d in h["guard"]],
                "spec": self.spec.model_dump(mode="json"),
            }
            path = Path(image["file"]).with_suffix(".json")
            write_json(path, manifest)
            paths.append(str(path))
        return paths

    def _result(self, manifests: list[str]) -> dict[str, Any]:
        final = self.stages_done[-1]["images"] if self.stages_done else []
        complete = manifests and len(self.stages_done) == len(self.spec.stages())
        return {
            "run_dir": str(self.run_dir),
            "seed": self.seed,
            "images": [img["file"] for img in final] if complete else [],
            "manifests": manifests,
            "stages": {s["stage"]: [img["file"] for img in s["images"]] for s in self.stages_done},
            "partial": [img["file"] for img in self.partial],
            "durations_s": {
                s["stage"]: round(sum(img["duration_s"] for img in s["images"]), 3)
                for s in self.stages_done
            },
        }
