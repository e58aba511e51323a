"""The seam between the queue and the pipeline: what the JobRunner hands the code that runs a job.

The queue owns durability and the pipeline owns the stage chain; neither imports the other. They
meet here, in two Protocols the app wires together.
"""

from __future__ import annotations

from typing import Protocol

from stablenew.jobs.cancel import CancelToken
from stablenew.jobs.job import Job
from stablenew.jobs.outcome import Checkpoint, ImageRecord, JobOutcome


class CheckpointSaver(Protocol):
    """Where a running job keeps its progress, so a resume redoes at most one image."""

    def save(self, checkpoint: Checkpoint) -> None:
        """The run folder, every image's seed and the stages done."""

    def save_image(self, record: ImageRecord) -> None:
        """One finished image of one stage."""

    def records(self) -> list[ImageRecord]:
        """The images finished before (on a resume); empty on a first run."""


class Execute(Protocol):
    """Runs one job to its outcome; the JobRunner's only view of the pipeline."""

    def __call__(self, job: Job, cancel: CancelToken, saver: CheckpointSaver, /) -> JobOutcome: ...
