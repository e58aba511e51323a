"""The main window: compose on the left; the running job, queue, history, debug log and backend
on the right. Every click answers at once (the status line and a debug-log row); the work itself
runs off the Tk thread through the dispatcher, and AppState changes and events come back the
same way.

What a click queues is what is composed: the prompt (or the chosen pack), unless the user built
a draft with "Add to Job", in which case the primary action says it queues the draft.
"""

from __future__ import annotations

import gc
import queue
import tkinter as tk
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from tkinter import ttk
from typing import Any

import click

from stablenew.app import discovery
from stablenew.app.events import (
    FINISHED_KINDS,
    EventKind,
    JobFinishedData,
    JobLifecycleLogEvent,
    JobStartedData,
    StageFinishedData,
)
from stablenew.app.intents import Overrides
from stablenew.app.services import Services
from stablenew.app.state import Lifecycle
from stablenew.errors import SpecError
from stablenew.gui import theme as themes
from stablenew.gui.backend_actions import BackendActions
from stablenew.gui.backend_view import BackendFacts, BackendIndicator, BackendPanel
from stablenew.gui.compose import ComposePanel
from stablenew.gui.debug_log import DebugLogPanel
from stablenew.gui.dispatcher import UiDispatcher
from stablenew.gui.failure_view import JobDetails, short_reason
from stablenew.gui.history import HistoryPanel
from stablenew.gui.offer import OfferBar
from stablenew.gui.prefs import Prefs
from stablenew.gui.queue_view import DraftPanel, QueuePanel
from stablenew.gui.running import RunningPanel, thumbnail
from stablenew.gui.widgets import FitLabel
from stablenew.jobs.job import Job
from stablenew.jobs.spec import JobSpec, build_spec
from stablenew.jobs.status import JobStatus

AUTO_RUN_OFF = "auto-run is off"
PRIMARY = "Add to Queue (Ctrl+Enter)"
PRIMARY_DRAFT = "Queue the Draft (Ctrl+Enter)"
NOTHING_ADDED = "Nothing added"
MARGIN = 32  # pixels at 1x the window's least width keeps beyond what its parts ask for
HEARD = 1000  # started jobs remembered, so a late "Queued" never hides their news


@dataclass(frozen=True)
class Composed:
    """What the compose panel holds: one job, or a pack to expand (off the Tk thread)."""

    spec: JobSpec | None = None
    pack: Path | None = None
    overrides: Overrides = field(default_factory=Overrides)

    def specs(self, services: Services) -> list[JobSpec]:
        if self.pack is not None:
            return services.intents.pack(self.pack, self.overrides).specs
        return [self.spec] if self.spec is not None else []

    def describe(self) -> str:
        return self.pack.name if self.pack is not None else "the composed job"


class MainWindow:
    def __init__(
        self,
        services: Services,
        prefs: Prefs,
        root: tk.Tk | None = None,
        *,
        home: Path | None = None,
        discover: bool = True,
    ) -> None:
        self.services = services
        self.jobs = services.jobs
        self.state = services.state
        self.prefs = prefs
        self.home = home or services.config.home
        self.discover = discover  # False when the command line named the backend
        self.root = root or tk.Tk()
        self.root.title("StableNew")
        self.theme = themes.apply(self.root, prefs.get("theme", "light"))
        self.root.geometry(self._geometry(prefs.get("geometry")))
        self.ui = UiDispatcher(self.root)
        self.closing = False
        self.destroyed = False
        self.facts = BackendFacts()
        self.backend_actions = BackendActions(self)
        self._choices_loaded = False
        self._preview_file = ""
        self._inbox: queue.SimpleQueue[JobLifecycleLogEvent] = queue.SimpleQueue()
        self._heard: dict[str, None] = {}  # jobs whose start was shown (insertion-ordered)
        self._build()
        # Never smaller than what the layout needs: below that something would be cut. (The
        # tables' frames take a few pixels more than their columns ask for: the margin.)
        self.root.update_idletasks()
        least = self.theme.min_size()
        width = max(least[0], self.root.winfo_reqwidth() + self.theme.px(MARGIN))
        height = max(least[1], self.root.winfo_reqheight())
        self.root.minsize(*self.theme.fit(width, height))
        self.compose.restore(prefs.get("compose", {}))
        for topic in ("active", "lifecycle"):
            self.state.subscribe(topic, lambda _t: self.ui.post(self._show_running, "running"))
        self.state.subscribe("queue", lambda _t: self.ui.post(self._show_queue, "queue"))
        # Backend states are rare and each matters (a crash must show): never coalesced.
        self.state.subscribe("backend", self._backend_changed)
        self._unsubscribe = self.jobs.subscribe(self._hear)
        for sequence in ("<Control-Return>", "<Control-KP_Enter>"):
            self.root.bind(sequence, lambda _e: self.add_to_queue())
        self.compose.bind_submit(self.add_to_queue)
        self.root.bind("<Escape>", lambda _e: self.cancel_running())
        self.root.protocol("WM_DELETE_WINDOW", self.close)

    def _geometry(self, saved: Any) -> str:
        """The remembered size if it still fits this screen, else the default."""
        try:
            size = str(saved).split("+")[0]
            width, height = (int(n) for n in size.split("x"))
        except (ValueError, AttributeError):
            return self.theme.default_geometry()
        if (width, height) != self.theme.fit(width, height):
            return self.theme.default_geometry()
        return f"{width}x{height}+0+0"

    # -- layout --------------------------------------------------------------------------------

    def _build(self) -> None:
        px = self.theme.px
        self.root.columnconfigure(0, weight=1)
        self.root.rowconfigure(2, weight=1)
        top = ttk.Frame(self.root, padding=(px(8), px(4)))
        top.grid(row=0, column=0, sticky="ew")
        self.indicator = BackendIndicator(top, self.theme)
        self.indicator.grid(row=0, column=0)
        self.backend_text = FitLabel(top, "")
        self.backend_text.grid(row=0, column=1, sticky="ew", padx=(px(6), 0))
        top.columnconfigure(1, minsize=self.theme.body.measure(discovery.REFERENCE_TEXT) + px(8))
        self.lifecycle = ttk.Label(top, text="IDLE", style="Title.TLabel", padding=(px(8), 0))
        self.lifecycle.grid(row=0, column=2)
        self.message = FitLabel(top, "Ready. Write a prompt, then Ctrl+Enter queues it.")
        self.message.grid(row=0, column=3, sticky="ew", padx=px(8))
        top.columnconfigure(3, weight=1)
        ttk.Button(top, text="Settings…", command=self.backend_actions.open_settings).grid(
            row=0, column=4
        )

        self.offer = OfferBar(
            self.root,
            self.theme,
            self.backend_actions.use_found,
            self.backend_actions.never_discover,
        )

        # Two columns, no draggable divider: the compose side keeps the width it needs (a
        # divider let it be dragged narrower than its form), the rest goes to the right side.
        body = ttk.Frame(self.root)
        body.grid(row=2, column=0, sticky="nsew", padx=px(6), pady=(0, px(6)))
        body.rowconfigure(0, weight=1)
        body.columnconfigure(1, weight=1)
        left = ttk.Frame(body)
        left.grid(row=0, column=0, sticky="nsew")
        right = ttk.Frame(body)
        right.grid(row=0, column=1, sticky="nsew", padx=(px(6), 0))

        left.columnconfigure(0, weight=1)
        self.compose = ComposePanel(left, self.theme, self.preview_pack)
        self.compose.grid(row=0, column=0, sticky="ew")
        buttons = ttk.Frame(left, padding=(px(6), px(4)))
        buttons.grid(row=1, column=0, sticky="ew")
        ttk.Button(buttons, text="Add to Job", command=self.add_to_job).pack(side="left")
        self.primary = ttk.Button(
            buttons, text=PRIMARY, command=self.add_to_queue, style="Accent.TButton"
        )
        self.primary.pack(side="left", padx=px(4))
        widest = max(self.theme.body.measure(t) for t in (PRIMARY, PRIMARY_DRAFT))
        self.primary.configure(width=-(widest // self.theme.body.measure("0") + 1))
        ttk.Button(buttons, text="Run Now", command=self.run_now).pack(side="left")

        right.columnconfigure(0, weight=1)
        right.rowconfigure(1, weight=1)
        self.running = RunningPanel(right, self.theme, self.cancel_running, self.show_details)
        self.running.grid(row=0, column=0, sticky="ew")
        self.tabs = ttk.Notebook(right)
        self.tabs.grid(row=1, column=0, sticky="nsew", pady=(px(6), 0))
        self.queue = QueuePanel(self.tabs, self.theme, self.queue_action, self.set_auto_run)
        self.draft = DraftPanel(self.tabs, self.theme, self.remove_from_draft, self.clear_draft)
        self.history = HistoryPanel(
            self.tabs, self.theme, self.refresh_history, self.history_action
        )
        self.debug_log = DebugLogPanel(self.tabs, self.theme, self.state.max_events)
        self.backend = BackendPanel(
            self.tabs,
            self.theme,
            self.backend_actions.start_backend,
            self.backend_actions.restart_backend,
            self.backend_actions.refresh_tail,
            self.backend_actions.open_settings,
        )
        for panel, title in (
            (self.queue, "Queue"),
            (self.draft, "Draft (0)"),
            (self.history, "History"),
            (self.debug_log, "Debug log"),
            (self.backend, "Backend"),
        ):
            self.tabs.add(panel, text=title)

    # -- feedback ------------------------------------------------------------------------------

    def say(self, text: str) -> None:
        self.message.set(text)

    def failed(self, what: str) -> Any:
        def report(error: BaseException) -> None:
            first = (str(error).strip().splitlines() or [type(error).__name__])[0]
            self.say(f"{what} failed: {first}")
            self.ui.run(lambda: self.jobs.report(f"{what} failed: {error}"))

        return report

    # -- compose, draft, queue -----------------------------------------------------------------

    def composed(self, why: str) -> Composed | None:
        """What is composed now; None when it cannot be used, and then the status line and the
        debug log say why (`why` is what did not happen: "Nothing queued")."""
        pack = self.compose.pack_chosen()
        if pack:
            return Composed(pack=Path(pack), overrides=Overrides(stages=self.compose.stages()))
        try:
            return Composed(spec=build_spec(self.compose.spec_data()))
        except SpecError as exc:
            reason = str(exc).removeprefix("invalid job spec: ")
            self.say(f"{why}: {reason}")
            lifecycle, size = self.jobs.lifecycle, len(self.jobs.draft)
            if why == NOTHING_ADDED:
                self.ui.run(lambda: lifecycle.log_add_to_job_noop("gui", size, reason))
            else:
                self.ui.run(lambda: lifecycle.log_add_to_queue_failed("gui", reason))
            return None

    def add_to_job(self) -> None:
        composed = self.composed(NOTHING_ADDED)
        if composed is None:
            return
        self.say(f"Adding {composed.describe()} to the draft…")
        self.ui.run(
            lambda: self._add_specs(composed.specs(self.services)),
            self._draft_changed,
            self.failed("Add to Job"),
        )

    def _add_specs(self, specs: list[JobSpec]) -> list[JobSpec]:
        self.jobs.add_to_job(specs, source="gui")
        return self.jobs.draft

    def _draft_changed(self, draft: list[JobSpec]) -> None:
        self._show_draft(draft)
        if draft:
            self.say(f"The draft has {len(draft)} job(s) (Draft tab). Ctrl+Enter queues them.")
        else:
            self.say("The draft is empty: Ctrl+Enter queues the composed job.")

    def remove_from_draft(self, index: int) -> None:
        self.jobs.remove_from_draft(index)
        self._draft_changed(self.jobs.draft)

    def clear_draft(self) -> None:
        self.jobs.clear_draft()
        self._draft_changed([])

    def add_to_queue(self) -> None:
        """The primary action: the draft if the user built one, else what is composed."""
        if self.jobs.draft:
            self.say(f"Queueing the draft's {len(self.jobs.draft)} job(s)…")
            self.ui.run(
                lambda: self.jobs.submit_draft(source="gui"),
                self._queued,
                self.failed("Add to Queue"),
            )
            return
        composed = self.composed("Nothing queued")
        if composed is None:
            return
        self.say(f"Queueing {composed.describe()}…")
        self.ui.run(
            lambda: self.jobs.submit_many(composed.specs(self.services), source="gui"),
            self._queued,
            self.failed("Add to Queue"),
        )

    def _queued(self, ids: list[str], now: bool = False) -> None:
        self._show_draft(self.jobs.draft)
        if not ids:
            self.say("Nothing was queued.")
            return
        if any(job_id in self._heard for job_id in ids):
            return  # it already started (or ended): "Queued" would be older news than that
        which = f"job {ids[0][:8]}" if len(ids) == 1 else f"{len(ids)} jobs"
        if now:
            running = self.state.lifecycle in (Lifecycle.RUNNING, Lifecycle.STOPPING)
            self.say(f"Queued {which} to run {'next' if running else 'now'}, ahead of the queue.")
        else:
            self.say(f"Queued {which}.")

    def _show_draft(self, draft: list[JobSpec]) -> None:
        self.draft.show(draft)
        self.tabs.tk.call(str(self.tabs), "tab", str(self.draft), "-text", f"Draft ({len(draft)})")
        self.primary.configure(text=PRIMARY_DRAFT if draft else PRIMARY)

    def run_now(self) -> None:
        """Run what is composed ahead of everything queued (the draft if nothing is composed),
        resuming the queue if it is paused."""
        composed: Composed | None = None
        draft = self.jobs.draft
        if self.compose.prompt_text() or self.compose.pack_chosen() or not draft:
            composed = self.composed("Nothing run")
            if composed is None:
                return
        priority = 1 + max(
            (j.priority for j in self.state.queue if j.status == JobStatus.QUEUED), default=0
        )

        def work() -> list[str]:
            if composed is not None:
                ids = self.jobs.submit_many(
                    composed.specs(self.services), priority=priority, source="gui"
                )
            else:
                ids = self.jobs.submit_many(draft, priority=priority, source="gui")
                self.jobs.clear_draft()
            if self.jobs.paused() is not None:
                self.jobs.resume(source="gui")
            return ids

        self.say(f"Running {composed.describe() if composed else 'the draft'} now…")
        self.ui.run(work, lambda ids: self._queued(ids, now=True), self.failed("Run Now"))

    def queue_action(self, op: str, job_id: str) -> None:
        calls = {
            "cancel": lambda: self.jobs.cancel_job(job_id, source="gui"),
            "remove": lambda: self.jobs.remove(job_id),
        }
        work = calls.get(op, lambda: self.jobs.move(job_id, op))  # type: ignore[arg-type]
        self.say(f"{op} {job_id[:8]}…")
        self.ui.run(
            work,
            lambda _r: self.say(f"{op} {job_id[:8]}: done"),
            self.failed(f"{op} {job_id[:8]}"),
        )

    def set_auto_run(self, on: bool) -> None:
        self.say("Auto-run on." if on else "Auto-run off: queued jobs wait.")
        if on:
            self.ui.run(lambda: self.jobs.resume(source="gui"), failed=self.failed("Resume"))
        else:
            self.ui.run(
                lambda: self.jobs.pause(AUTO_RUN_OFF, source="gui"), failed=self.failed("Pause")
            )

    def cancel_running(self) -> None:
        if self.state.lifecycle != Lifecycle.RUNNING:
            self.say("Nothing is running.")
            return
        self.say("Cancelling…")
        self.ui.run(self.services.pipeline_controller.request_stop)

    # -- history and a job's details -----------------------------------------------------------

    def refresh_history(self) -> None:
        status, text = self.history.filters()
        statuses = [JobStatus(status)] if status else None
        self.ui.run(lambda: self.jobs.history(statuses, text), self._show_history)

    def _show_history(self, jobs: list[Job]) -> None:
        self.history.show(jobs)
        size = self.history.thumb_size()
        for job in jobs:
            images = job.result.images
            if images and job.id not in self.history.thumbs:
                self.ui.run(
                    partial(thumbnail, images[0], size),
                    partial(self.history.set_thumbnail, job.id),
                )

    def history_action(self, op: str, job_id: str | None) -> None:
        job = self.history.jobs.get(job_id) if job_id else None
        if job is None:
            self.say("Select a job in the history first.")
            return
        if op == "error":
            self.show_job(job)
        elif op == "open":
            folder = job.result.run_dir or (job.checkpoint.run_dir if job.checkpoint else None)
            if folder:
                self.open_folder(folder)
            else:
                self.say(f"Job {job.short_id} has no run folder.")
        elif op == "requeue":
            work = (
                (lambda: self.jobs.retry(job.id))
                if job.status != JobStatus.COMPLETED
                else (lambda: self.jobs.submit_pipeline_run(job.spec, source="gui"))
            )
            self.ui.run(
                work, lambda new: self.say(f"Re-queued as {new[:8]}."), self.failed("Re-queue")
            )

    def show_details(self, job_id: str) -> None:
        """A job's details from its id (the running panel's "Show error")."""
        self.ui.run(lambda: self.jobs.get_job(job_id), self.show_job, self.failed("Show error"))

    def show_job(self, job: Job) -> None:
        if job.error is None and job.status == JobStatus.COMPLETED:
            self.say(f"Job {job.short_id} completed: no error to show.")
        JobDetails(self.root, self.theme, job, self.open_folder)

    def open_folder(self, folder: str) -> None:
        """In the platform's file manager (Explorer, Finder, or the desktop's own)."""
        self.say(f"Opening {folder}…")

        def opened(code: int) -> None:
            if code:
                self.say(f"No file manager could open {folder}: open it by hand.")

        self.ui.run(lambda: click.launch(folder, locate=False), opened, self.failed("Open"))

    # -- the backend ---------------------------------------------------------------------------

    def start(self) -> None:
        """Own the home (the runner and the backend), or attach to its owner, off the Tk thread."""
        self.backend_actions.start()
        self.refresh_history()

    def preview_pack(self, path: str) -> None:
        self.say(f"Reading {Path(path).name}…")

        def done(preview: dict[str, Any]) -> None:
            self.compose.pack_preview.set(
                f"{preview['pack']}: {preview['rows']} rows, {preview['jobs']} jobs, "
                f"{preview['images']} images"
                + (" (warnings)" if preview["warnings"] else "")
                + ": queued instead of the prompt"
            )
            self.say("Pack read: Ctrl+Enter queues all its jobs.")

        def failed(error: BaseException) -> None:
            self.compose.pack_preview.set(f"error: {error}")
            self.say("The pack has an error; nothing from it can be queued.")

        self.ui.run(lambda: self.services.intents.pack(Path(path)).preview(), done, failed)

    # -- events and AppState -> widgets (on the Tk thread) -------------------------------------

    def _hear(self, event: JobLifecycleLogEvent) -> None:
        """Any thread: keep the event, and have the Tk thread read what came (in one turn)."""
        self._inbox.put(event)
        self.ui.post(self._on_events, "events")

    def _on_events(self) -> None:
        events: list[JobLifecycleLogEvent] = []
        while True:
            try:
                events.append(self._inbox.get_nowait())
            except queue.Empty:
                break
        self.debug_log.add(events)
        finished = False
        for event in events:
            finished |= self._on_event(event)
        if finished:
            self.ui.post(self.refresh_history, "history")

    def _on_event(self, event: JobLifecycleLogEvent) -> bool:
        """One event's effect on the window; True when a job finished."""
        data, job_id = event.data, event.job_id
        if event.kind == EventKind.JOB_STARTED and job_id:
            self._heard[job_id] = None
            while len(self._heard) > HEARD:
                del self._heard[next(iter(self._heard))]
            stages = list(data.stages) if isinstance(data, JobStartedData) else []
            self.running.job_started(job_id, stages)
            self._preview_file = ""
            self.say(f"Running job {job_id[:8]}: {' → '.join(stages)}.")
        elif event.kind == EventKind.STAGE_STARTED and job_id and event.stage:
            self.running.stage_started(job_id, event.stage)
        elif (
            isinstance(data, StageFinishedData)
            and data.file
            and job_id
            and job_id == self.running.current
        ):
            self._show_image(job_id, data.file)
        elif event.kind in FINISHED_KINDS and job_id and isinstance(data, JobFinishedData):
            if job_id == self.running.current or event.source == "runner":
                self.running.job_finished(job_id, data.status, data.reason, data.images)
                self.say(self._ended_text(job_id, data))
                if data.status == JobStatus.FAILED:  # its record says it better: read it
                    self.ui.run(partial(self.jobs.get_job, job_id), self._failure_read)
            else:
                self.say(f"Job {job_id[:8]} cancelled before it ran.")
            return True
        elif event.kind == EventKind.QUEUE_PAUSED:
            self.say(event.message)
        elif event.kind == EventKind.QUEUE_RESUMED:
            self.say("Queue resumed.")
        elif event.kind == EventKind.WARNING and event.source == "app":
            self.ui.run(
                self.backend_actions.read_facts, self.backend_actions.show_facts
            )  # a take-over changes the owner
        return False

    def _failure_read(self, job: Job) -> None:
        if job.error is None:
            return
        reason = short_reason(job.error)
        self.running.failure_reason(job.id, reason)
        if self.message.full_text.startswith(f"Job {job.short_id} failed"):  # nothing newer
            self.say(f"Job {job.short_id} failed: {reason}")

    @staticmethod
    def _ended_text(job_id: str, data: JobFinishedData) -> str:
        short = job_id[:8]
        if data.status == JobStatus.COMPLETED:
            where = f" in {data.run_dir}" if data.run_dir else ""
            return f"Job {short} completed: {data.images} image(s){where}."
        if data.status == JobStatus.FAILED:
            return f"Job {short} failed: {data.reason or 'no reason recorded'}"
        return f"Job {short} cancelled."

    def _show_image(self, job_id: str, path: str) -> None:
        if path == self._preview_file:
            return
        self._preview_file = path
        size = self.running.preview_size()
        self.ui.run(
            lambda: thumbnail(path, size),
            lambda image: self.running.show_preview(job_id, image),
        )

    def _show_running(self) -> None:
        # AppState may be ahead of the events still in the inbox (a short job can start and end
        # between two turns): hear those first, or their job's image and end would be lost.
        self._on_events()
        self.lifecycle.configure(text=self.state.lifecycle.value)
        self.running.show(self.state.active, self.state.lifecycle.value)

    def _show_queue(self) -> None:
        self.queue.show(self.state.queue, self.state.paused, self.state.waiting)

    def _backend_changed(self, _topic: str) -> None:
        state = self.state.backend.value  # read now, on the publishing thread: every state shows
        self.ui.post(lambda: self._show_backend(state))

    def _show_backend(self, state: str) -> None:
        self.indicator.show(state)
        self.backend.indicator.show(state)
        if state == "READY":
            self.ui.run(self.backend_actions.read_facts, self.backend_actions.show_facts)
            if not self._choices_loaded:
                self._choices_loaded = True
                self.ui.run(self.services.backend.choices, self._fill_choices)

    def _fill_choices(self, choices: dict[str, list[str]]) -> None:
        for name, values in choices.items():
            self.compose.set_choices(name, values)

    # -- closing -------------------------------------------------------------------------------

    def close(self) -> None:
        """Stop the runner (a running job is re-queued) and the managed backend, then close;
        no orphan processes. The window's close button and SIGTERM/SIGHUP both end here."""
        if self.closing:
            return
        self.closing = True
        self.say("Closing: stopping the runner and the backend…")
        self.prefs.set("geometry", self.root.geometry())
        self.prefs.set("compose", self.compose.settings())

        def shutdown() -> None:
            self._unsubscribe()
            self.services.close()
            self.prefs.save()

        self.ui.run(shutdown, lambda _r: self._destroy(), lambda _e: self._destroy())
        self.ui.accepting = False  # the shutdown above is the last background work

    def _destroy(self) -> None:
        # Tk objects must die on the Tk thread: a PhotoImage or Variable collected later by
        # another thread calls into Tcl from the wrong thread. Drop them here, join the worker
        # (nothing new can be queued by now), then destroy.
        self.ui.close(wait=True)
        self.running.clear_preview()
        self.history.thumbs.clear()
        self.root.destroy()
        gc.collect()
        self.destroyed = True

    def run(self) -> None:
        self.start()
        self.root.mainloop()
