"""PipelineRunner: one job through txt2img -> img2img -> adetailer -> upscale, strictly serial.

Stage-major: txt2img makes every image of the job, then each later stage takes the previous
stage's images in order, one backend call at a time, every call through the recovery layer.
Before the first call the run folder and every image's seed are checkpointed; after each image
its record is, so a job re-queued after a crash redoes at most the image that was in flight,
with the same seed, and never replaces a finished file. The CancelToken is checked before every
stage and every image, and honoured during a call by the recovery layer.
"""

from __future__ import annotations

import dataclasses
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import orjson

from stablenew import redact
from stablenew.errors import (
    BackendError,
    CallCancelled,
    CallFailed,
    InputError,
    PipelineError,
    StageCancelled,
    StageFailed,
)
from stablenew.jobs.cancel import CancelToken
from stablenew.jobs.execution import CheckpointSaver
from stablenew.jobs.input_store import InputStore
from stablenew.jobs.job import Job, utcnow
from stablenew.jobs.outcome import (
    BackendInfo,
    Cause,
    Checkpoint,
    ErrorEnvelope,
    ImageRecord,
    JobOutcome,
    JobResult,
    reason_of,
)
from stablenew.jobs.references import compact
from stablenew.jobs.spec import InputImage, JobSpec
from stablenew.jobs.status import FailureReason, JobStatus
from stablenew.observe.events import (
    EventBus,
    EventData,
    EventKind,
    GuardData,
    JobLifecycleLogEvent,
    ProgressData,
    RecoveryData,
    StageFinishedData,
)
from stablenew.observe.jsonl import JsonlSink
from stablenew.pipeline import payloads
from stablenew.pipeline.artifacts import (
    add_png_text,
    image_name,
    image_size,
    make_dir,
    png_text_keys,
    run_dir_for,
    sanitized_payload,
    write_image,
    write_json,
)
from stablenew.pipeline.guards import UpscaleGuard
from stablenew.pipeline.names import resolve
from stablenew.pipeline.settings import PipelineSettings
from stablenew.pipeline.stages import Request, Source, Stage, chain
from stablenew.webui.recovery import (
    BackendCall,
    CallReport,
    CallResult,
    Progress,
    RecoveringBackend,
    RecoveryStep,
)

HANDOFF_BYTES = 64 * 2**20  # stage outputs kept in memory for the next stage, at most
RUN_LOG_END = {EventKind.JOB_COMPLETED, EventKind.JOB_FAILED, EventKind.JOB_CANCELLED}


def resolve_seeds(seed: int, count: int) -> list[int]:
    """Every image's seed, fixed before the first call: seed, seed+1, ... (random base for -1)."""
    base = seed if seed >= 0 else random.randrange(4294967294 - count)
    return [(base + k) % 4294967295 for k in range(count)]


def first_checkpoint(spec: JobSpec, run_dir: Path) -> Checkpoint:
    """Seeds fixed before the first call, as A1111 numbers a batch (reference §9, seeds): with
    no variation every image has the next seed; with a variation strength every image keeps
    the seed and has the next variation seed."""
    count = spec.images
    if spec.subseed_strength == 0:
        return Checkpoint(run_dir=str(run_dir), seeds=resolve_seeds(spec.seed, count))
    seed = resolve_seeds(spec.seed, 1)[0]
    return Checkpoint(
        run_dir=str(run_dir), seeds=[seed] * count, subseeds=resolve_seeds(spec.subseed, count)
    )


class PreviewSink(Protocol):
    """Keeps a running job's latest live preview; returns its number (1, 2, ...)."""

    def __call__(self, job_id: str, image: bytes, /) -> int: ...


class PipelineRunner:
    """The JobRunner's execute callable: `runner(job, cancel_token, saver) -> JobOutcome`."""

    def __init__(
        self,
        backend: RecoveringBackend,
        bus: EventBus,
        settings: PipelineSettings,
        previews: PreviewSink | None = None,
        backend_name: str = "default",
        pooled: bool = False,
    ) -> None:
        self.backend = backend
        self.bus = bus
        self.settings = settings
        self.previews = previews
        self.backend_name = backend_name
        # One of several backends: a job resumed on another backend keeps each backend's
        # failure artifacts apart (both have an attempt 1), in failures/<backend>/.
        self.failures = Path("failures", backend_name) if pooled else Path("failures")

    def __call__(self, job: Job, token: CancelToken, saver: CheckpointSaver) -> JobOutcome:
        return _Run(self, job, token, saver).execute()


@dataclass
class _Run:
    """The state of one job's run; lives exactly as long as the run."""

    owner: PipelineRunner
    job: Job
    token: CancelToken
    saver: CheckpointSaver
    records: dict[str, dict[int, ImageRecord]] = field(default_factory=dict)
    guard: UpscaleGuard = field(default_factory=UpscaleGuard)
    handoff: dict[str, bytes] = field(default_factory=dict)  # stage outputs not yet consumed
    handoff_size: int = 0
    preview_number: int = 0
    last_progress: ProgressData = field(default_factory=lambda: ProgressData(0, 0))

    def __post_init__(self) -> None:
        self.spec = self.job.spec
        self.spec_sha256 = self.spec.sha256()
        # What every PNG and manifest carries: the spec with its extension images by reference.
        self.compact_spec, self.extension_images = compact(self.spec)
        self.bus = self.owner.bus
        self.backend = self.owner.backend
        self.settings = self.owner.settings
        self.total = self.spec.images
        self.chain = chain(self.spec)
        cp = self.job.checkpoint
        if cp is None:
            run_dir = run_dir_for(self.job, self.settings.output_root, utcnow())
            cp = first_checkpoint(self.spec, run_dir)
            self.fresh = True
        else:
            self.fresh = False
            for record in self.saver.records():
                self.records.setdefault(record.stage, {})[record.index] = record
        self.checkpoint = cp
        self.run_dir = Path(cp.run_dir)

    # -- the run -------------------------------------------------------------------------------

    def execute(self) -> JobOutcome:
        stage, index = "setup", None
        try:
            make_dir(self.run_dir)
            self._log_to_run_folder()
            self._copy_inputs()
            if self.fresh:  # seeds and folder are fixed before the backend is asked anything
                self.saver.save(self.checkpoint)
            self._check_names()
            self._switch_models()
            for step in self.chain:
                stage, index = step.name, None
                if step.name in self.checkpoint.stages_done:
                    self._emit(
                        EventKind.STAGE_FINISHED,
                        step.name,
                        None,
                        f"{step.name}: done before, resumed",
                        StageFinishedData(resumed=True),
                    )
                    continue
                self._check_cancel(step.name, None)
                self._run_stage(step)
            return JobOutcome(status=JobStatus.COMPLETED, result=self._result(complete=True))
        except StageCancelled:
            return JobOutcome(status=JobStatus.CANCELLED, result=self._result(complete=False))
        except StageFailed as exc:
            # A crash loop is not the job's fault: it goes back to the queue, which pauses.
            crash_loop = exc.envelope.reason == FailureReason.CRASH_LOOP
            status = JobStatus.QUEUED if crash_loop else JobStatus.FAILED
            return JobOutcome(status=status, result=self._result(False), error=exc.envelope)
        except (PipelineError, BackendError, OSError, ValueError) as exc:
            failing = getattr(exc, "stage", None) or stage
            envelope = ErrorEnvelope.from_exception(
                exc,
                stage=failing,
                image_index=getattr(exc, "image_index", index),
                job_id=self.job.id,
            )
            return JobOutcome.failed(envelope, self._result(complete=False))

    def _run_stage(self, stage: Stage) -> None:
        done = self.records.setdefault(stage.name, {})
        last = stage is self.chain[-1]
        for i in range(1, self.total + 1):
            if i in done:
                continue  # finished before this resume: its file stays as it is
            self._check_cancel(stage.name, i)
            record = self._run_image(stage, i, keep=not last)
            done[i] = record
            if not (last and i == self.total):  # after the last image the job's end is the record
                self.saver.save_image(record)
        self.checkpoint = self.checkpoint.model_copy(
            update={"stages_done": [*self.checkpoint.stages_done, stage.name]}
        )
        if not last:
            self.saver.save(self.checkpoint)

    def _run_image(self, stage: Stage, i: int, keep: bool) -> ImageRecord:
        seed = self.checkpoint.seeds[i - 1]
        source = self._source(stage, i)
        spec = self.spec
        if self.checkpoint.subseeds:
            spec = spec.model_copy(update={"subseed": self.checkpoint.subseeds[i - 1]})
        request = stage.prepare(spec, self.settings, seed, f"{i}/{self.total}", source)
        if request.plan is not None:
            for decision in request.plan.decisions:
                self._emit(EventKind.GUARD, stage.name, i, decision, GuardData(decision))
        started = request.started
        if self.token.is_cancelled():
            started = dataclasses.replace(started, cancelled=True)
        self._emit(EventKind.STAGE_STARTED, stage.name, i, request.message, started)
        began = time.monotonic()
        if request.plan is not None:
            with self.guard.active(i):
                result = self._call(stage.name, request, i)
        else:
            result = self._call(stage.name, request, i)
        duration = time.monotonic() - began
        record = self._keep(stage.name, i, seed, request, result, duration, source, keep)
        w, h = record.size
        message = (
            f"exit upscale {i}/{self.total}: {w}x{h} in {duration:.2f}s"
            if request.plan is not None
            else f"{stage.name} {i}/{self.total} done in {duration:.2f}s"
        )
        self._emit(
            EventKind.STAGE_FINISHED,
            stage.name,
            i,
            message,
            StageFinishedData(
                duration_s=round(duration, 3),
                size=record.size,
                attempts=result.attempts,
                file=record.file,
                cancelled=self.token.is_cancelled(),
                backend=self.owner.backend_name,
            ),
        )
        return record

    def _call(self, stage: str, request: Request, i: int) -> CallResult:
        if request.options:
            self.backend.ensure_options(request.options)
        call = BackendCall(
            request.endpoint, request.payload, stage, i, self.run_dir / self.owner.failures
        )
        try:
            return self.backend.call(
                call,
                self.token,
                on_progress=lambda p: self._progress(p, stage, i),
                on_step=lambda s: self._recovery(s, stage, i),
                on_preview=(lambda image: self._preview(image, stage, i))
                if self.owner.previews is not None
                else None,
            )
        except CallCancelled as exc:
            raise StageCancelled(stage, i, exc.abandoned) from exc
        except CallFailed as exc:
            raise StageFailed(self._envelope(stage, i, exc.report)) from exc

    def _keep(
        self,
        stage: str,
        i: int,
        seed: int,
        request: Request,
        result: CallResult,
        duration: float,
        source: Source | None,
        keep: bool,
    ) -> ImageRecord:
        """Write the image with its provenance chunks; return its record."""
        produced = result.image
        infotext = produced.infotext or (source.infotext if source else "")
        chunks = {} if "parameters" in png_text_keys(produced.data) else {"parameters": infotext}
        made_with = produced.seed if produced.seed is not None else seed
        chunks["stablenew"] = orjson.dumps(
            {
                "image_index": i,
                "job_id": self.job.id,
                "seed": made_with,
                "spec": self._image_spec(i, made_with),
                "spec_sha256": self.spec_sha256,
                "stage": stage,
            }
        ).decode()
        out = add_png_text(produced.data, chunks)
        name = image_name(i, self.total, stage, self.spec.provenance.variant_label())
        path = self.run_dir / f"{name}.png"
        write_image(path, out)
        if keep:  # a final image has no next stage to feed
            self._hand_on(str(path), out)
        info = result.info
        return ImageRecord(
            index=i,
            stage=stage,
            file=str(path),
            size=image_size(out),
            seed=made_with,
            infotext=infotext,
            duration_s=round(duration, 3),
            attempts=result.attempts,
            restarts=result.restarts,
            recovered_from=result.causes,
            payload=sanitized_payload(request.payload),
            backend=BackendInfo(
                name=self.owner.backend_name,
                sd_model_name=_text(info.get("sd_model_name")),
                sd_model_hash=_text(info.get("sd_model_hash")),
                version=_text(info.get("version")),
            ),
            guard=list(request.plan.decisions) if request.plan else [],
        )

    def _image_spec(self, i: int, seed: int) -> dict[str, Any]:
        """The job that makes image i again, for its PNG: one image, its seed, its own input.
        The whole job's inputs would make every PNG of a 100-image job carry 100 of them."""
        spec = {**self.compact_spec, "images": 1, "seed": seed}
        if self.checkpoint.subseeds:
            spec["subseed"] = self.checkpoint.subseeds[i - 1]
        if self.spec.inputs:
            spec["inputs"] = [self.compact_spec["inputs"][i - 1]]
        return spec

    def _source(self, stage: Stage, i: int) -> Source | None:
        position = self.chain.index(stage)
        if position == 0:
            if not self.spec.inputs:
                return None
            given = self.spec.inputs[i - 1]
            return Source(self._input_path(given).read_bytes(), given.size, given.infotext)
        previous = self.records[self.chain[position - 1].name][i]
        return Source(self._source_bytes(previous.file), previous.size, previous.infotext)

    def _input_path(self, image: InputImage) -> Path:
        return self.run_dir / "inputs" / f"{image.sha256}{Path(image.name).suffix.lower()}"

    def _copy_inputs(self) -> None:
        """The images the job starts from, and those its extensions use, into its run folder
        (once): from then on the job depends on nothing outside it, and a PNG of it that is
        imported later finds them there. Extension images also go into the input store, as
        init images did at submit, so a PNG that left its run folder finds them too."""
        if not (self.spec.inputs or self.extension_images):
            return
        store = InputStore(self.settings.inputs_dir) if self.settings.inputs_dir else None
        make_dir(self.run_dir / "inputs")
        for sha, data in self.extension_images.items():
            target = self.run_dir / "inputs" / sha
            if not target.exists():
                write_image(target, data)
            if store is not None:
                store.put(data)
        for image in self.spec.inputs:
            target = self._input_path(image)
            if target.exists():
                continue
            kept = store.get(image.sha256) if store is not None else None
            if kept is None:
                raise InputError(
                    f"input image {image.name} ({image.sha256[:12]}) is missing: neither in the "
                    f"run folder nor in the input store"
                )
            write_image(target, kept)

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

    # -- failure -------------------------------------------------------------------------------

    def _envelope(self, stage: str, i: int, report: CallReport) -> ErrorEnvelope:
        last = report.last
        return ErrorEnvelope(
            type="StageFailed",
            message=f"{stage} failed for image {i} after {report.attempts} attempt(s): {last}",
            stage=stage,
            image_index=i,
            job_id=self.job.id,
            reason=reason_of(last),
            causes=[Cause.of(c) for c in report.causes],
            attempts=report.attempts,
            restarts=report.restarts,
            artifacts=report.artifacts,
        )

    # -- helpers -------------------------------------------------------------------------------

    def _check_cancel(self, stage: str, index: int | None) -> None:
        if self.token.is_cancelled():
            where = f" before image {index}" if index else ""
            self._emit(
                EventKind.STAGE_FINISHED,
                stage,
                index,
                f"{stage} cancelled{where}",
                StageFinishedData(cancelled=True),
            )
            raise StageCancelled(stage, index, abandoned=False)

    def _check_names(self) -> None:
        """A1111 would silently generate with something else: fail before the first call. A
        job queued while the backend could not be asked gets its spelling here."""
        resolved = resolve(self.spec, self.backend.lists())
        if resolved.problems:  # the lists may be stale (an attached backend's models changed)
            resolved = resolve(self.spec, self.backend.lists(max_age=1.0))
        if resolved.problems:
            raise InputError("; ".join(resolved.problems))
        if resolved.spec != self.spec:
            self.spec = resolved.spec
            self.compact_spec, self.extension_images = compact(self.spec)

    def _switch_models(self) -> None:
        if self.spec.model:
            title = self.backend.set_model(self.spec.model)
            self._emit(EventKind.STAGE_STARTED, "setup", None, f"model: {title}", None)
        if self.spec.vae:
            self.backend.set_vae(self.spec.vae)
            self._emit(EventKind.STAGE_STARTED, "setup", None, f"VAE: {self.spec.vae}", None)

    def _progress(self, p: Progress, stage: str, i: int) -> None:
        self.last_progress = ProgressData(
            p.step, p.steps, round(p.eta, 2), round(p.fraction, 3), self.preview_number
        )
        self._emit(
            EventKind.PROGRESS,
            stage,
            i,
            f"{stage} {i}/{self.total}: step {p.step}/{p.steps}",
            self.last_progress,
        )

    def _preview(self, image: bytes, stage: str, i: int) -> None:
        """A new live preview: kept by the board (in memory only); a progress event says so."""
        sink = self.owner.previews
        if sink is None:
            return
        self.preview_number = sink(self.job.id, image)
        last = self.last_progress
        self._emit(
            EventKind.PROGRESS,
            stage,
            i,
            f"{stage} {i}/{self.total}: preview {self.preview_number}",
            dataclasses.replace(last, preview=self.preview_number),
        )

    def _recovery(self, step: RecoveryStep, stage: str, i: int) -> None:
        text = {
            "crash_detected": "backend crashed",
            "artifacts_written": "failure artifacts written",
            "restart": "restarting the backend",
            "retry": "retrying",
            "gave_up": "giving up",
        }.get(step.step, step.step)
        detail = f": {step.cause}" if step.cause else ""
        self._emit(
            EventKind.RECOVERY,
            stage,
            i,
            f"{stage} {i}/{self.total}: {text} (attempt {step.attempt}){detail}",
            RecoveryData(step.step, step.attempt, step.cause, step.artifacts),
        )

    def _emit(
        self,
        kind: EventKind,
        stage: str,
        index: int | None,
        message: str,
        data: EventData | None,
    ) -> None:
        self.bus.emit(
            kind,
            message,
            source="pipeline",
            job_id=self.job.id,
            stage=stage,
            image_index=index,
            total=self.total,
            data=data,
        )

    def _log_to_run_folder(self) -> None:
        """The job's own events.jsonl, open until the runner records the job's end."""
        sink = JsonlSink(self.run_dir / "events.jsonl", mode=0o644)

        def write(event: JobLifecycleLogEvent) -> None:
            if event.job_id != self.job.id:
                return
            sink(event)
            if event.kind in RUN_LOG_END or (
                event.kind == EventKind.JOB_RECOVERED and event.source == "runner"
            ):
                unsubscribe()
                sink.close()

        unsubscribe = self.bus.subscribe(write)

    def _furthest(self) -> list[ImageRecord]:
        """The furthest stage's image of every index that has one."""
        furthest: dict[int, ImageRecord] = {}
        for stage in self.chain:
            furthest.update(self.records.get(stage.name, {}))
        return [furthest[i] for i in sorted(furthest)]

    def _write_manifests(self, images: list[ImageRecord]) -> list[str]:
        paths = []
        positive, negative = payloads.prompts(self.spec, self.settings)
        for image in images:
            i = image.index
            history = [
                self.records[s.name][i] for s in self.chain if i in self.records.get(s.name, {})
            ]
            first = history[0]
            manifest = {
                "job_id": self.job.id,
                "spec_sha256": self.spec_sha256,
                "image_index": i,
                "file": image.file,
                "complete": image.stage == self.chain[-1].name,
                "prompt": positive,
                "negative_prompt": negative,
                "seed_requested": self.spec.seed,
                "seed": first.seed,
                "model": self.spec.model or first.backend.sd_model_name,
                "vae": self.spec.vae,
                "backend": {"url": redact.text(self.backend.url), **first.backend.model_dump()},
                "provenance": self.spec.provenance.model_dump(),
                "input": self.spec.inputs[i - 1].model_dump() if self.spec.inputs else None,
                "stages": [h.model_dump(mode="json") for h in history],
                "guard": [d for h in history for d in h.guard],
                "spec": self.compact_spec,
            }
            path = Path(image.file).with_suffix(".json")
            write_json(path, manifest)
            paths.append(str(path))
        return paths

    def _result(self, complete: bool) -> JobResult:
        images = self._furthest()
        try:
            manifests = self._write_manifests(images)
        except OSError as exc:
            if complete:
                raise
            manifests = []  # the job already failed; its reason is the failure, not this
            self.bus.emit(
                EventKind.WARNING,
                f"manifests not written: {exc}",
                source="pipeline",
                job_id=self.job.id,
            )
        return JobResult(
            run_dir=str(self.run_dir),
            seeds=self.checkpoint.seeds,
            images=[image.file for image in images],
            manifests=manifests,
            stages={
                s.name: [r.file for _, r in sorted(self.records[s.name].items())]
                for s in self.chain
                if self.records.get(s.name)
            },
            durations_s={
                s.name: round(sum(r.duration_s for r in self.records[s.name].values()), 3)
                for s in self.chain
                if self.records.get(s.name)
            },
        )


def _text(value: Any) -> str | None:
    return str(value) if value is not None else None
