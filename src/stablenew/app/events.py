"""The event vocabulary the doors read: what they subscribe to through the controllers.

Events are made and carried below (`stablenew.observe`); doors import them from here, so the
layers a door may touch stay app, jobs and errors.
"""

from stablenew.observe.events import (
    FINISHED_KINDS,
    BackendData,
    EventKind,
    GuardData,
    JobFinishedData,
    JobLifecycleLogEvent,
    JobStartedData,
    NoteData,
    ProgressData,
    QueuedData,
    RecoveryData,
    StageFinishedData,
    StageStartedData,
    StatusData,
)

__all__ = [
    "FINISHED_KINDS",
    "BackendData",
    "EventKind",
    "GuardData",
    "JobFinishedData",
    "JobLifecycleLogEvent",
    "JobStartedData",
    "NoteData",
    "ProgressData",
    "QueuedData",
    "RecoveryData",
    "StageFinishedData",
    "StageStartedData",
    "StatusData",
]
