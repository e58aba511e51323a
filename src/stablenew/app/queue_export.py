"""`queue export` / `queue import`: the pending queue as a file that moves to another home.

A job names its input images by hash, and their bytes live in the home's input store; an export
carries those bytes, so the home that imports it has every image before anything is queued. A
job's output root was filled in at submit with the exporting home's configured root; the
export records that root, and a job that still has it writes under the importing home's root
instead. A root the user chose (any other) is kept.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from stablenew.errors import InputError
from stablenew.jobs.input_store import InputStore
from stablenew.jobs.job import Job
from stablenew.jobs.spec import JobSpec


class PendingJob(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    spec: JobSpec
    priority: int = 0


class QueueExport(BaseModel):
    """`queue export` / `queue import`: the pending queue as JSON."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    schema_version: Literal[1] = Field(1, alias="schema")
    jobs: list[PendingJob]
    output_root: str | None = None  # the exporting home's: jobs that have it write elsewhere
    inputs: dict[str, str] = Field(default_factory=dict)  # sha256 -> base64 of input images


def export_jobs(jobs: list[Job], inputs: InputStore | None, output_root: str | None) -> QueueExport:
    """The pending jobs, with the bytes of every input image this home has for them."""
    carried: dict[str, str] = {}
    for job in jobs:
        for image in job.spec.inputs:
            data = inputs.get(image.sha256) if inputs is not None else None
            if data is not None:
                carried[image.sha256] = base64.b64encode(data).decode()
    return QueueExport(
        jobs=[PendingJob(spec=j.spec, priority=j.priority) for j in jobs],
        output_root=output_root,
        inputs=carried,
    )


def import_jobs(exported: QueueExport, inputs: InputStore | None) -> list[PendingJob]:
    """The export's jobs, ready to queue here: every input image is in this home's input
    store (kept from the export when it is not), else an InputError names the missing ones
    and nothing is kept."""
    found: dict[str, bytes] = {}
    missing: list[str] = []
    for job in exported.jobs:
        for image in job.spec.inputs:
            if image.sha256 in found or (inputs is not None and inputs.has(image.sha256)):
                continue
            data = _carried(exported, image.sha256)
            if data is None:
                missing.append(f"{image.name} ({image.sha256[:12]})")
            else:
                found[image.sha256] = data
    if missing:
        raise InputError(
            f"{len(missing)} input image(s) of the export are neither in it nor in this home's "
            f"input store: {', '.join(dict.fromkeys(missing))}; nothing queued"
        )
    if found and inputs is None:
        raise InputError("this StableNew has no input store (no home): cannot take images")
    for data in found.values():
        inputs.put(data)  # type: ignore[union-attr]  # checked just above
    return [_rehomed(job, exported.output_root) for job in exported.jobs]


def _carried(exported: QueueExport, sha256: str) -> bytes | None:
    text = exported.inputs.get(sha256)
    if text is None:
        return None
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
    return data if hashlib.sha256(data).hexdigest() == sha256 else None


def _rehomed(job: PendingJob, exporting_root: str | None) -> PendingJob:
    if exporting_root is None or job.spec.output.root != exporting_root:
        return job
    output = job.spec.output.model_copy(update={"root": None})  # this home's, at submit
    return job.model_copy(update={"spec": job.spec.model_copy(update={"output": output})})
