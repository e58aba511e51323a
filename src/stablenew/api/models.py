"""The API's bodies and answers: typed models, which are also the OpenAPI schemas.

A job is `JobView` (app/views.py), the same object `stablenew queue show ID --json` prints; a
JobSpec is the JobSpec. What is defined here is only what the HTTP API adds around them.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from stablenew.app.intents import Overrides
from stablenew.app.views import JobView
from stablenew.jobs.spec import JobSpec

PRIORITY_LIMIT = 1_000_000  # as the CLI: a typo cannot overflow SQLite's integers


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PackUpload(_Body):
    """A prompt pack as files: NAME.txt and/or NAME.json, and the wildcard files it uses."""

    name: str = Field("pack", pattern=r"^[\w][\w.-]{0,99}$", description="NAME, for messages")
    text: str | None = Field(None, description="The .txt file: rows of prompts")
    sidecar: dict[str, Any] | None = Field(None, description="The .json file: slots, presets")
    wildcards: dict[str, str] = Field(
        default_factory=dict,
        description="__name__ files: name -> text (used unless [packs] wildcards_dir is set)",
    )


class SubmitBody(_Body):
    """One of `spec`, `specs`, `prompt` (with the CLI's overrides by name) or `pack`."""

    spec: JobSpec | None = None
    specs: list[JobSpec] | None = Field(None, max_length=10_000)
    prompt: str | None = None
    pack: PackUpload | None = None
    priority: int = Field(0, ge=-PRIORITY_LIMIT, le=PRIORITY_LIMIT, description="Higher first")
    # the CLI's overrides, for a prompt or a pack (names as in `stablenew run`'s options)
    stages: list[str] | str | None = Field(None, description="e.g. txt2img,img2img,upscale")
    images: int | None = None
    seed: int | None = None
    negative: str | None = None
    model: str | None = None
    vae: str | None = None
    sampler: str | None = None
    scheduler: str | None = None
    steps: int | None = None
    cfg: float | None = None
    size: str | tuple[int, int] | None = Field(None, description='"768x512" or [768, 512]')
    clip_skip: int | None = None
    hires: float | None = None
    hires_upscaler: str | None = None
    hires_steps: int | None = None
    hires_denoise: float | None = None
    denoise: float | None = None
    upscaler: str | None = None
    on: str | None = Field(None, description="Run only on this backend (a name or a label)")
    backend: str | None = Field(None, description="The same as `on` (JobSpec's name for it)")


# Every Overrides field but `backend`, which the body takes as `on` or `backend` (checked equal).
OVERRIDE_NAMES = tuple(f.name for f in dataclasses.fields(Overrides) if f.name != "backend")


class Submitted(BaseModel):
    ids: list[str]
    warnings: list[str] = []


class JobsPage(BaseModel):
    jobs: list[JobView]
    next_cursor: str | None
    total: int


class Empty(_Body):
    """`{}`: what a request that needs no data sends."""


class RetryBody(_Body):
    spec: JobSpec | None = Field(None, description="Retry with this spec instead (a change)")


class EditBody(_Body):
    spec: JobSpec


class MoveBody(_Body):
    to: Literal["up", "down", "front", "back"] | None = None
    position: int | None = Field(None, ge=0, description="0: next to run")


class RemoveBody(_Body):
    statuses: list[Literal["QUEUED", "COMPLETED", "FAILED", "CANCELLED"]] = Field(min_length=1)


class Count(BaseModel):
    count: int


class PauseBody(_Body):
    reason: str = Field("paused by the user", max_length=500)


class QueueState(BaseModel):
    paused: bool
    reason: str | None
    running: JobView | None
    depth: int  # QUEUED jobs
    finished: dict[str, int]  # COMPLETED, FAILED, CANCELLED


class BackendView(BaseModel):
    state: str
    url: str | None
    managed: bool
    restarts: int
    breaker: str
    kind: str | None  # "reference backend (simulated images)" or "A1111-compatible API"


class LoginBody(_Body):
    token: str = Field(max_length=1000)


class FileUpload(_Body):
    """A file sent inside the JSON: its name (for people and messages) and its bytes."""

    name: str = Field(max_length=255, description="The file's name where the user had it")
    data: str = Field(description="The bytes as base64, or a data: URI")


class PresetUpload(_Body):
    """A preset file (NAME.json: settings without prompts)."""

    name: str = Field("preset", pattern=r"^[\w][\w. -]{0,99}$", description="NAME, for messages")
    sidecar: dict[str, Any] = Field(description="The .json file's content")


class ImportedPng(BaseModel):
    """The job that made a PNG: exactly (its `stablenew` chunk) or from its A1111 infotext."""

    spec: JobSpec
    source: Literal["stablenew", "infotext"]
    warnings: list[str] = []
    unparsed: dict[str, str] = {}  # infotext keys with no JobSpec field
    origin: dict[str, Any] = {}  # job_id, stage, image_index ... when StableNew made it


class PresetFields(BaseModel):
    """A preset as JobSpec fields (nested as a spec is), to apply to what is composed."""

    name: str
    fields: dict[str, Any]
    warnings: list[str] = []


class Checked(BaseModel):
    """What a submit with this body would queue (nothing was queued)."""

    jobs: int
    images: int
    warnings: list[str] = []


class BackendPoolMember(BaseModel):
    """One backend of the pool: `BackendController.status()`."""

    name: str
    labels: list[str]
    state: str
    url: str | None
    managed: bool
    loaded_model: str | None
    current_job: str | None
    held: str | None
    restarts: int


class RecentEvents(BaseModel):
    """The end of the lifecycle log, oldest first, and the seq to follow the stream after."""

    events: list[dict[str, Any]]
    last_seq: int
