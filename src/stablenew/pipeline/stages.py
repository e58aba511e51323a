"""One small class per stage: what it asks the backend for, at which endpoint, at what size.

The PipelineRunner does the same for every stage (events, the call through the recovery layer,
the file, the record); only `prepare` differs, and it is pure: a JobSpec, a seed and the previous
stage's image in, a request out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from stablenew.jobs.spec import JobSpec
from stablenew.observe.events import StageStartedData
from stablenew.pipeline import payloads
from stablenew.pipeline.guards import UpscalePlan, plan_upscale
from stablenew.pipeline.settings import PipelineSettings
from stablenew.webui.recovery import Endpoint


@dataclass(frozen=True)
class Source:
    """The previous stage's image of the same index, fed into this stage."""

    data: bytes
    size: tuple[int, int]
    infotext: str


@dataclass(frozen=True)
class Request:
    """What one stage asks of the backend for one image."""

    endpoint: Endpoint
    payload: dict[str, Any]
    message: str  # "img2img 2/5", "enter upscale 1/3: R-ESRGAN 4x+ 512x512 -> 1024x1024, ..."
    started: StageStartedData = field(default_factory=StageStartedData)
    plan: UpscalePlan | None = None
    options: dict[str, Any] = field(default_factory=dict)  # server options it depends on


class Stage(Protocol):
    name: ClassVar[str]

    def prepare(
        self,
        spec: JobSpec,
        settings: PipelineSettings,
        seed: int,
        where: str,
        source: Source | None,
    ) -> Request: ...


def _source(source: Source | None, stage: str) -> Source:
    if source is None:  # the chain always starts with txt2img; a later stage has an input
        raise ValueError(f"{stage} needs the previous stage's image")
    return source


class Txt2Img:
    name: ClassVar[str] = "txt2img"

    def prepare(
        self,
        spec: JobSpec,
        settings: PipelineSettings,
        seed: int,
        where: str,
        source: Source | None,
    ) -> Request:
        return Request(
            Endpoint.TXT2IMG, payloads.txt2img(spec, settings, seed), f"{self.name} {where}"
        )


class Img2Img:
    name: ClassVar[str] = "img2img"

    def prepare(
        self,
        spec: JobSpec,
        settings: PipelineSettings,
        seed: int,
        where: str,
        source: Source | None,
    ) -> Request:
        src = _source(source, self.name)
        payload = payloads.img2img(spec, settings, seed, src.data, src.size)
        return Request(Endpoint.IMG2IMG, payload, f"{self.name} {where}")


class ADetailer:
    name: ClassVar[str] = "adetailer"

    def prepare(
        self,
        spec: JobSpec,
        settings: PipelineSettings,
        seed: int,
        where: str,
        source: Source | None,
    ) -> Request:
        src = _source(source, self.name)
        payload = payloads.adetailer(spec, settings, seed, src.data, src.size)
        return Request(Endpoint.IMG2IMG, payload, f"{self.name} {where}")


class Upscale:
    """Upscales one image at a time (the guard enforces it), inside the configured size limit."""

    name: ClassVar[str] = "upscale"

    def prepare(
        self,
        spec: JobSpec,
        settings: PipelineSettings,
        seed: int,
        where: str,
        source: Source | None,
    ) -> Request:
        src = _source(source, self.name)
        up = spec.upscale
        plan = plan_upscale(src.size, up.factor, up.tile_size, settings.limits)
        (w, h), (tw, th) = plan.source, plan.target
        message = f"enter upscale {where}: {up.upscaler} {w}x{h} -> {tw}x{th}, tile {plan.tile}"
        started = StageStartedData(
            upscaler=up.upscaler, tile_size=plan.tile, source=plan.source, target=plan.target
        )
        if up.mode == "extra":
            payload = payloads.upscale_extra(src.data, up.upscaler, plan.target)
            return Request(
                Endpoint.EXTRAS, payload, message, started, plan, {"ESRGAN_tile": plan.tile}
            )
        payload = payloads.upscale_img2img(spec, settings, seed, src.data, plan.target)
        return Request(Endpoint.IMG2IMG, payload, message, started, plan)


STAGES: dict[str, Stage] = {s.name: s for s in (Txt2Img(), Img2Img(), ADetailer(), Upscale())}


def chain(spec: JobSpec) -> list[Stage]:
    """The job's enabled stages, in order."""
    return [STAGES[name] for name in spec.stages()]
