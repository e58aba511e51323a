"""The main window: compose on the left; the running job, queue, history, debug log and backend
on the right. Every click answers at once (a status line and a debug-log row); the work itself
runs off the Tk thread through the dispatcher, and AppState changes come back the same way."""

from __future__ import annotations

import gc
import subprocess
import sys
import tkinter as tk
from pathlib import Path
from tkinter import ttk
from typing import Any

import sv_ttk

from stablenew.app.events import EventKind, StageFinishedData
from stablenew.app.intents import Overrides
from stablenew.app.services import Services
from stablenew.app.state import Lifecycle
from stablenew.gui.backend_view import BackendIndicator, BackendPanel
from stablenew.gui.compose import ComposePanel
from stablenew.gui.debug_log import DebugLogPanel
from stablenew.gui.dispatcher import UiDispatcher
from stablenew.gui.history import HistoryPanel, show_envelope
from stablenew.gui.prefs import Prefs
from stablenew.gui.queue_view import DraftPanel, QueuePanel
from stablenew.gui.running import RunningPanel, thumbnail
from stablenew.jobs.job import Job, JobStatus
from stablenew.jobs.spec import JobSpec, SpecError, build_spec

AUTO_RUN_OFF = "auto-run is off"


class MainWindow:
    def __init__(self, services: Services, prefs: Prefs, root: tk.Tk | None = None) -> None:
        self.services = services
        self.jobs = services.jobs
        self.state = services.state
        self.prefs = prefs
        self.root = root or tk.Tk()
        self.root.title("StableNew")
        self.root.geometry(prefs.get("geometry", "1366x768"))
        self.root.minsize(1100, 680)
        sv_ttk.set_theme(prefs.get("theme", "light"))
        style = ttk.Style(self.root)
        style.configure("Active.TLabel", foreground="#0b57d0", font=("TkDefaultFont", 10, "bold"))
        style.configure("Done.TLabel", foreground="#2e7d32")
        style.configure("Disabled.TLabel", foreground="#9e9e9e")
        self.ui = UiDispatcher(self.root)
        self.closing = False
        self.destroyed = False
        self._choices_loaded = False
        self._preview_file = ""
        self._build()
        self.compose.restore(prefs.get("compose", {}))
        for topic, key in (
            ("events", "events"),
            ("active", "running"),
            ("lifecycle", "running"),
            ("queue", "queue"),
        ):
            self.state.subscribe(
                topic, lambda _t, key=key: self.ui.post(self._refreshers[key], key)
            )
        # Backend states are rare and each matters (a crash must show): never coalesced.
        self.state.subscribe(
            "backend", lambda _t: self.ui.post(lambda s=self.state.backend: self._show_backend(s))
        )
        self.root.bind("<Control-Return>", lambda _e: self.add_to_queue())
        self.root.bind("<Escape>", lambda _e: self.cancel_running())
        self.root.protocol("WM_DELETE_WINDOW", self.close)

    # -- layout --------------------------------------------------------------------------------

    def _build(self) -> None:
        top = ttk.Frame(self.root, padding=(8, 4))
        top.pack(fill="x")
        self.indicator = BackendIndicator(top)
        self.indicator.pack(side="left")
        self.lifecycle = ttk.Label(top, text="IDLE", padding=(8, 0))
        self.lifecycle.pack(side="left")
        self.message = ttk.Label(top, text="Ready. Compose a job, Add to Job, then Add to Queue.")
        self.message.pack(side="left", padx=8)

        panes = ttk.PanedWindow(self.root, orient="horizontal")
        panes.pack(fill="both", expand=True, padx=6, pady=(0, 6))
        left = ttk.Frame(panes)
        right = ttk.Frame(panes)
        panes.add(left, weight=0)
        panes.add(right, weight=1)

        self.compose = ComposePanel(left, self.preview_pack)
        self.compose.pack(fill="x")
        buttons = ttk.Frame(left, padding=(6, 4))
        buttons.pack(fill="x")
        ttk.Button(buttons, text="Add to Job", command=self.add_to_job).pack(side="left")
        ttk.Button(
            buttons,
            text="Add to Queue (Ctrl+Enter)",
            command=self.add_to_queue,
            style="Accent.TButton",
        ).pack(side="left", padx=4)
        ttk.Button(buttons, text="Run Now", command=self.run_now).pack(side="left")
        self.draft = DraftPanel(left, self.remove_from_draft, self.clear_draft)
        self.draft.pack(fill="both", expand=True, padx=6)

        self.running = RunningPanel(right, self.cancel_running)
        self.running.pack(fill="x")
        self.tabs = ttk.Notebook(right)
        self.tabs.pack(fill="both", expand=True, pady=(6, 0))
        self.queue = QueuePanel(self.tabs, self.queue_action, self.set_auto_run)
        self.history = HistoryPanel(self.tabs, self.refresh_history, self.history_action)
        self.debug_log = DebugLogPanel(self.tabs, self.state.max_events)
        self.backend = BackendPanel(
            self.tabs, self.start_backend, self.restart_backend, self.refresh_tail
        )
        for panel, title in (
            (self.queue, "Queue"),
            (self.history, "History"),
            (self.debug_log, "Debug log"),
            (self.backend, "Backend"),
        ):
            self.tabs.add(panel, text=title)
        self._refreshers = {
            "events": self._on_events,
            "running": self._show_running,
            "queue": self._show_queue,
        }

    # -- feedback ------------------------------------------------------------------------------

    def say(self, text: str) -> None:
        self.message.configure(text=text)

    def _failed(self, what: str) -> Any:
        def report(error: BaseException) -> None:
            self.say(f"{what} failed: {error}")
            self.ui.run(
                lambda: self.jobs.bus.emit(
                    EventKind.WARNING, f"{what} failed: {error}", source="gui"
                )
            )

        return report

    # -- compose, draft, queue -----------------------------------------------------------------

    def composed_spec(self) -> JobSpec | None:
        try:
            return build_spec(self.compose.spec_data())
        except SpecError as exc:
            reason = str(exc).removeprefix("invalid job spec: ")
            self.say(f"Nothing added: {reason}")
            size = len(self.jobs.draft)
            self.ui.run(lambda: self.jobs.lifecycle.log_add_to_job_noop("gui", size, reason))
            return None

    def add_to_job(self) -> None:
        pack = self.compose.pack_path.get().strip()
        if pack:
            self.say(f"Expanding {Path(pack).name}…")
            overrides = self._stage_overrides()
            self.ui.run(
                lambda: self._add_specs(self.services.intents.pack(Path(pack), overrides).specs),
                self._draft_changed,
                self._failed("Add to Job"),
            )
            return
        spec = self.composed_spec()
        if spec is not None:
            self.say("Adding to the draft…")
            self.ui.run(
                lambda: self._add_specs([spec]), self._draft_changed, self._failed("Add to Job")
            )

    def _stage_overrides(self) -> Overrides:
        data = self.compose.spec_data()
        stages = ["txt2img"] + [
            stage for stage in ("img2img", "adetailer", "upscale") if data[stage]["enabled"]
        ]
        return Overrides(stages=stages)

    def _add_specs(self, specs: list[JobSpec]) -> list[JobSpec]:
        self.jobs.add_to_job(specs, source="gui")
        return self.jobs.draft

    def _draft_changed(self, draft: list[JobSpec]) -> None:
        self.draft.show(draft)
        self.say(f"Draft now has {len(draft)} job(s). Add to Queue to run them.")

    def remove_from_draft(self, index: int) -> None:
        self.jobs.remove_from_draft(index)
        self._draft_changed(self.jobs.draft)

    def clear_draft(self) -> None:
        self.jobs.clear_draft()
        self._draft_changed([])

    def add_to_queue(self) -> None:
        if not self.jobs.draft:
            self.say("The draft is empty: Add to Job first.")
        else:
            self.say(f"Submitting {len(self.jobs.draft)} job(s)…")
        self.ui.run(
            lambda: self.jobs.submit_draft(source="gui"), self._queued, self._failed("Add to Queue")
        )

    def _queued(self, ids: list[str]) -> None:
        self.draft.show(self.jobs.draft)
        if ids:
            self.say(f"Queued {len(ids)} job(s).")

    def run_now(self) -> None:
        """Queue the draft (or the composed job when the draft is empty) and make sure it runs."""
        spec = None
        if not self.jobs.draft:
            spec = self.composed_spec()
            if spec is None:
                return

        def work() -> list[str]:
            if spec is not None:
                self.jobs.add_to_job([spec], source="gui")
            ids = self.jobs.submit_draft(source="gui")
            if self.state.paused:
                self.jobs.resume()
            return ids

        self.say("Submitting and starting…")
        self.ui.run(work, self._queued, self._failed("Run Now"))

    def queue_action(self, op: str, job_id: str) -> None:
        calls = {
            "cancel": lambda: self.jobs.cancel_job(job_id),
            "remove": lambda: self.jobs.remove(job_id),
        }
        work = calls.get(op, lambda: self.jobs.move(job_id, op))  # type: ignore[arg-type]
        self.say(f"{op} {job_id[:8]}…")
        self.ui.run(
            work,
            lambda _r: self.say(f"{op} {job_id[:8]}: done"),
            self._failed(f"{op} {job_id[:8]}"),
        )

    def set_auto_run(self, on: bool) -> None:
        self.say("Auto-run on." if on else "Auto-run off: queued jobs wait.")
        self.ui.run(self.jobs.resume if on else lambda: self.jobs.pause(AUTO_RUN_OFF))

    def cancel_running(self) -> None:
        if self.state.lifecycle != Lifecycle.RUNNING:
            self.say("Nothing is running.")
            return
        self.say("Cancelling…")
        self.ui.run(self.services.pipeline_controller.request_stop)

    # -- history -------------------------------------------------------------------------------

    def refresh_history(self) -> None:
        status, text = self.history.filters()
        statuses = [JobStatus(status)] if status else None
        self.ui.run(lambda: self.jobs.history(statuses, text), self._show_history)

    def _show_history(self, jobs: list[Job]) -> None:
        self.history.show(jobs)
        for job in jobs:
            images = job.result.images
            if images and job.id not in self.history.thumbs:
                self.ui.run(
                    lambda p=images[0]: thumbnail(p, 64),
                    lambda image, job_id=job.id: self.history.set_thumbnail(job_id, image),
                )

    def history_action(self, op: str, job_id: str) -> None:
        job = self.history.jobs.get(job_id)
        if job is None:
            return
        if op == "error":
            show_envelope(self.root, job)
        elif op == "open":
            folder = job.result.run_dir
            if folder:
                opener = "open" if sys.platform == "darwin" else "xdg-open"
                self.ui.run(
                    lambda: subprocess.Popen([opener, folder]), failed=self._failed("Open folder")
                )
        elif op == "requeue":
            work = (
                (lambda: self.jobs.retry(job_id))
                if job.status != JobStatus.COMPLETED
                else (lambda: self.jobs.submit_pipeline_run(job.spec, source="gui"))
            )
            self.ui.run(
                work, lambda new: self.say(f"Re-queued as {new[:8]}."), self._failed("Re-queue")
            )

    # -- backend -------------------------------------------------------------------------------

    def start(self) -> None:
        """Bring the backend up and start the runner, off the Tk thread."""
        self.say("Starting the backend…")
        self.ui.run(
            self.services.open,
            lambda _r: self.say("Backend ready."),
            self._failed("Backend start"),
        )
        self.refresh_history()

    def start_backend(self) -> None:
        self.ui.run(self.services.backend.start, failed=self._failed("Backend start"))

    def restart_backend(self) -> None:
        self.say("Restarting the backend…")
        self.ui.run(self.services.backend.restart, failed=self._failed("Backend restart"))

    def refresh_tail(self) -> None:
        self.ui.run(self.services.backend.tail, self.backend.show_tail)

    def preview_pack(self, path: str) -> None:
        self.say(f"Reading {Path(path).name}…")

        def done(preview: dict[str, Any]) -> None:
            self.compose.pack_preview.configure(
                text=f"{preview['pack']}: {preview['rows']} rows, {preview['jobs']} jobs, "
                f"{preview['images']} images" + (" (warnings)" if preview["warnings"] else "")
            )
            self.say("Pack read: Add to Job adds all its jobs.")

        def failed(error: BaseException) -> None:
            self.compose.pack_preview.configure(text=f"error: {error}")
            self.say("The pack has an error; nothing from it can be queued.")

        self.ui.run(lambda: self.services.intents.pack(Path(path)).preview(), done, failed)

    # -- AppState -> widgets (on the Tk thread) ------------------------------------------------

    def _on_events(self) -> None:
        events = self.state.recent_events()
        self.debug_log.add(events)
        active = self.state.active
        for event in reversed(events):
            if isinstance(event.data, StageFinishedData) and event.data.file:
                if active is None or event.job_id == active.job_id:
                    path = event.data.file
                    if path != self._preview_file:
                        self._preview_file = path
                        self.ui.run(lambda p=path: thumbnail(p), self.running.show_preview)
                break
        if any(
            e.kind in (EventKind.JOB_COMPLETED, EventKind.JOB_FAILED, EventKind.JOB_CANCELLED)
            for e in events[-20:]
        ):
            self.ui.post(self.refresh_history, key="history")

    def _show_running(self) -> None:
        active = self.state.active
        lifecycle = self.state.lifecycle.value
        self.lifecycle.configure(text=lifecycle)
        stages: list[str] = []
        if active is not None:
            for job in self.state.queue:
                if job.id == active.job_id:
                    stages = job.spec.stages()
        self.running.show(active, lifecycle, stages)

    def _show_queue(self) -> None:
        self.queue.show(self.state.queue, self.state.paused, self.state.waiting)
        self._show_running()

    def _show_backend(self, state: str) -> None:
        self.indicator.show(state)
        self.backend.indicator.show(state)
        if state == "READY":
            self.backend.url.configure(text=self.services.backend.url or "")
            if not self._choices_loaded:
                self._choices_loaded = True
                self.ui.run(self.services.backend.choices, self._fill_choices)

    def _fill_choices(self, choices: dict[str, list[str]]) -> None:
        for name, values in choices.items():
            self.compose.set_choices(name, values)

    # -- closing -------------------------------------------------------------------------------

    def close(self) -> None:
        """Stop the runner and the managed backend, then close; no orphan processes."""
        if self.closing:
            return
        self.closing = True
        self.say("Closing: stopping the runner and the backend…")
        self.prefs.set("geometry", self.root.geometry())
        self.prefs.set("compose", self.compose.settings())

        def shutdown() -> None:
            self.services.close()
            self.prefs.save()

        self.ui.run(shutdown, lambda _r: self._destroy(), lambda _e: self._destroy())
        self.ui.accepting = False  # the shutdown above is the last background work

    def _destroy(self) -> None:
        # Tk objects must die on the Tk thread: a PhotoImage or Variable collected later by
        # another thread calls into Tcl from the wrong thread. Drop them here, join the worker
        # (nothing new can be queued by now), then destroy.
        self.ui.close(wait=True)
        self.running._photo = None
        self.history.thumbs.clear()
        self.root.destroy()
        gc.collect()
        self.destroyed = True

    def run(self) -> None:
        self.start()
        self.root.mainloop()
