"""The main window: compose on the left; the running job (with its live preview), the gallery,
queue, draft, history, debug log and backend on the right, in panes the user can size; a menu
bar above. Every click answers at once (the status line and a debug-log row); the work itself
runs off the Tk thread through the dispatcher, and AppState changes and events come back the
same way.

What a click queues is what is composed: the prompt (or the chosen pack), unless the user built
a draft with "Add to Job", in which case the primary action says it queues the draft. A job
loaded into the form for editing (a QUEUED one) or retrying (a FAILED or CANCELLED one) makes
the primary action save to it, or retry it with the changes, until "Stop editing".
"""

from __future__ import annotations

import contextlib
import gc
import io
import queue
import threading
import tkinter as tk
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from tkinter import filedialog, ttk
from typing import Any, Literal

from PIL import Image

from stablenew import private_files
from stablenew.app import discovery, studio
from stablenew.app.controllers import Page
from stablenew.app.events import (
    FINISHED_KINDS,
    EventKind,
    JobFinishedData,
    JobLifecycleLogEvent,
    JobStartedData,
    ProgressData,
    StageFinishedData,
)
from stablenew.app.intents import Overrides
from stablenew.app.services import Role, Services
from stablenew.app.state import Lifecycle
from stablenew.errors import FolderNotOpened, QueueError, SpecError, StableNewError
from stablenew.gui import opener
from stablenew.gui import theme as themes
from stablenew.gui.backend_actions import BackendActions
from stablenew.gui.backend_view import BackendFacts, BackendIndicator, BackendPanel
from stablenew.gui.compose import ComposePanel
from stablenew.gui.debug_log import DebugLogPanel
from stablenew.gui.dispatcher import UiDispatcher
from stablenew.gui.failure_view import JobDetails
from stablenew.gui.gallery import GalleryPanel, Item
from stablenew.gui.history import PAGE as HISTORY_PAGE
from stablenew.gui.history import HistoryPanel
from stablenew.gui.menus import Menus
from stablenew.gui.offer import OfferBar
from stablenew.gui.prefs import Prefs
from stablenew.gui.queue_view import DraftPanel, QueuePanel
from stablenew.gui.running import RunningPanel, thumbnail
from stablenew.gui.viewer import Viewer
from stablenew.gui.widgets import FitLabel, tip
from stablenew.jobs.job import Job
from stablenew.jobs.spec import JobSpec, build_spec
from stablenew.jobs.status import BackendState, JobStatus

AUTO_RUN_OFF = "auto-run is off"
PRIMARY = "Add to Queue (Ctrl+Enter)"
PRIMARY_DRAFT = "Queue the Draft (Ctrl+Enter)"
PRIMARY_EDIT = "Save to {} (Ctrl+Enter)"
PRIMARY_RETRY = "Retry {} (Ctrl+Enter)"
TABS = ("Gallery", "Queue", "Draft", "History", "Debug log", "Backend")
IMAGE_FILES = (".png", ".jpg", ".jpeg", ".webp")
VALIDATE_MS = 200  # the form is checked this long after the last keystroke
NOTHING_ADDED = "Nothing added"
MARGIN = 32  # pixels at 1x the window's least width keeps beyond what its parts ask for
PANE_UNITS = "1x"  # gui.json's marker: divider positions independent of the scaling
HEARD = 1000  # started jobs remembered, so a late "Queued" never hides their news


@dataclass(frozen=True)
class Composed:
    """What the compose panel holds: one job, or a pack to expand (off the Tk thread)."""

    spec: JobSpec | None = None
    pack: Path | None = None
    overrides: Overrides = field(default_factory=Overrides)

    more: list[JobSpec] = field(default_factory=list)  # one job per input image: the rest

    def specs(self, services: Services) -> list[JobSpec]:
        if self.pack is not None:
            return services.intents.pack(self.pack, self.overrides).specs
        return ([self.spec] if self.spec is not None else []) + self.more

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
        self.theme = themes.apply(
            self.root, prefs.get("theme", "system"), str(prefs.get("scale", "auto"))
        )
        self.ui = UiDispatcher(self.root)
        self.closing = False
        self.close_begun = threading.Event()  # set when the Tk thread begins to close
        self.destroyed = False
        self.facts = BackendFacts()
        self.backend_actions = BackendActions(self)
        self.tab_titles = TABS
        self.mode: tuple[Literal["edit", "retry"], str] | None = None  # the job being changed
        self._choices_loaded = False
        self._preview_file = ""
        self._preview_number = 0  # the running job's latest live preview shown
        self._validate_job: str | None = None
        self._checked = 0  # a counter: a name check answered late is dropped
        self._finished_since_idle = 0
        self._panes_wanted: dict[str, int] = {}
        self.live_shown = 0  # live previews shown (for benchmarks)
        self.viewers: list[Viewer] = []
        self._inbox: queue.SimpleQueue[JobLifecycleLogEvent] = queue.SimpleQueue()
        self._heard: dict[str, None] = {}  # jobs whose start was shown (insertion-ordered)
        self._stages_of: dict[str, list[str]] = {}  # started jobs' stage chains (as _heard)
        self.menus = Menus(self)
        self._build()
        self.root.update_idletasks()
        self.root.geometry(self._geometry(prefs.get("geometry")))
        # Never smaller than what the layout needs: below that something would be cut. (The
        # tables' frames take a few pixels more than their columns ask for: the margin.)
        least = self.theme.min_size()
        width = max(least[0], self.root.winfo_reqwidth() + self.theme.px(MARGIN))
        height = max(least[1] - self._menu_height(), self.root.winfo_reqheight())
        self.root.minsize(*self.theme.fit(width, height))
        self.compose.restore(prefs.get("compose", {}))
        self._restore_panes(prefs.get("panes", {}))
        for topic in ("active", "lifecycle"):
            self.state.subscribe(topic, lambda _t: self.ui.post(self._show_running, "running"))
        self.state.subscribe("queue", lambda _t: self.ui.post(self._show_queue, "queue"))
        # Backend states are rare and each matters (a crash must show): never coalesced.
        self.state.subscribe("backend", self._backend_changed)
        self._unsubscribe = self.jobs.subscribe(self._hear)
        self.compose.bind_submit(self.primary_action, self.run_now)
        self.compose.stop_editing.configure(command=self.stop_editing)
        self.compose.lora_button.configure(command=lambda: self.pick_token("lora"))
        self.compose.embedding_button.configure(command=lambda: self.pick_token("embedding"))
        self.compose.actions.update(
            add_input_files=self.add_input_files,
            add_input_folder=self.add_input_folder,
            apply_preset=self.apply_preset,
            save_preset=self.save_preset,
            settings=self.backend_actions.open_settings,
        )
        settings = services.intents.settings
        self.compose.show_global(settings.global_positive, settings.global_negative)
        self.root.protocol("WM_DELETE_WINDOW", self.close)
        self.dnd = enable_drop(self.root, self.drop)

    def _menu_height(self) -> int:
        """What the menu bar takes above the window's own area (X11 draws it inside)."""
        if self.root._windowingsystem != "x11":
            return 0
        clone = "." + "#" + str(self.menus.bar).lstrip(".").replace(".", "#")  # Tk's menubar
        try:
            return int(self.root.tk.call("winfo", "reqheight", clone))
        except tk.TclError:
            return 0

    def _geometry(self, saved: Any) -> str:
        """The remembered size if it still fits this screen, else the default: the window and
        its menu bar together the default size, no larger than the screen."""
        menu = self._menu_height()
        try:
            size = str(saved).split("+")[0]
            width, height = (int(n) for n in size.split("x"))
            if (width, height + menu) == self.theme.fit(width, height + menu):
                return f"{width}x{height}+0+0"
        except (ValueError, AttributeError):
            pass
        default = self.theme.px(themes.DEFAULT_SIZE[0]), self.theme.px(themes.DEFAULT_SIZE[1])
        width, height = self.theme.fit(*default)
        return f"{width}x{height - menu}+0+0"

    # -- layout --------------------------------------------------------------------------------

    def _build(self) -> None:
        px = self.theme.px
        self.root.columnconfigure(0, weight=1)
        self.root.rowconfigure(2, weight=1)
        top = self.top_bar = ttk.Frame(self.root, padding=(px(8), px(4)))
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

        # Two panes: the compose side never narrower than its form asks (its pane's minimum),
        # the rest to the right side, itself split between the running job and the tabs.
        self.panes = tk.PanedWindow(
            self.root, orient="horizontal", sashwidth=px(6), borderwidth=0, sashrelief="flat"
        )
        self.panes.grid(row=2, column=0, sticky="nsew", padx=px(6), pady=(0, px(6)))
        left = ttk.Frame(self.panes)
        self.right_panes = tk.PanedWindow(
            self.panes, orient="vertical", sashwidth=px(6), borderwidth=0, sashrelief="flat"
        )

        left.columnconfigure(0, weight=1)
        left.rowconfigure(0, weight=1)
        self.compose = ComposePanel(left, self.theme, self.preview_pack, self._form_changed)
        self.compose.grid(row=0, column=0, sticky="nsew")
        buttons = ttk.Frame(left, padding=(px(6), px(4)))
        buttons.grid(row=1, column=0, sticky="ew")
        self.add_button = ttk.Button(buttons, text="Add to Job", command=self.add_to_job)
        self.add_button.pack(side="left")
        tip(self.add_button, "Collect jobs in the Draft tab, then queue them together")
        self.primary = ttk.Button(
            buttons, text=PRIMARY, command=self.primary_action, style="Accent.TButton"
        )
        self.primary.pack(side="left", padx=px(4))
        texts = [
            PRIMARY,
            PRIMARY_DRAFT,
            PRIMARY_EDIT.format("d" * 8),
            PRIMARY_RETRY.format("d" * 8),
        ]
        widest = max(self.theme.body.measure(t) for t in texts)
        self.primary.configure(width=-(widest // self.theme.body.measure("0") + 1))
        self.run_now_button = ttk.Button(buttons, text="Run Now", command=self.run_now)
        self.run_now_button.pack(side="left")
        tip(self.run_now_button, "Queue it ahead of everything waiting (Ctrl+Shift+Enter)")

        right = ttk.Frame(self.right_panes)
        right.columnconfigure(0, weight=1)
        right.rowconfigure(0, weight=1)
        self.running = RunningPanel(
            self.right_panes, self.theme, self.cancel_running, self.show_details
        )
        self.tabs = ttk.Notebook(right)
        self.tabs.grid(row=0, column=0, sticky="nsew")
        self.gallery = GalleryPanel(
            self.tabs, self.theme, self.ui, self.load_gallery_page, self.gallery_act
        )
        self.queue = QueuePanel(self.tabs, self.theme, self.queue_action, self.set_auto_run)
        self.draft = DraftPanel(self.tabs, self.theme, self.remove_from_draft, self.clear_draft)
        self.history = HistoryPanel(
            self.tabs,
            self.theme,
            lambda: self.refresh_history(0),
            self.history_action,
            self.refresh_history,
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
        for panel, title in zip(
            (self.gallery, self.queue, self.draft, self.history, self.debug_log, self.backend),
            TABS,
            strict=True,
        ):
            self.tabs.add(panel, text=title if title != "Draft" else "Draft (0)")
        self.tabs.bind("<<NotebookTabChanged>>", lambda _e: self._tab_changed())

        self.root.update_idletasks()
        self.panes.add(left, minsize=left.winfo_reqwidth(), stretch="never")
        self.panes.add(self.right_panes, minsize=right.winfo_reqwidth(), stretch="always")
        self.right_panes.add(self.running, minsize=self.running.winfo_reqheight(), stretch="never")
        self.right_panes.add(right, minsize=px(160), stretch="always")
        self.left = left

    def _restore_panes(self, saved: Any) -> None:
        """The dividers where the user left them, once the window has its size, as far as the
        panes' minimums allow (a position saved at another scaling may be below them).
        Positions are saved in 1x units; a gui.json without that marker (written before it)
        holds device pixels, taken as this display's."""
        if not isinstance(saved, dict):
            return
        scale = self.theme.scale if saved.get("units") == PANE_UNITS else 1
        wanted = {
            k: round(v * scale) for k, v in saved.items() if k in ("h", "v") and isinstance(v, int)
        }
        self._panes_wanted = wanted
        tried: set[tuple[int, int]] = set()

        def place(_event: object = None) -> None:
            if not self._panes_wanted:
                return
            size = (self.panes.winfo_width(), self.right_panes.winfo_height())
            if size in tried or min(size) <= 1:
                return  # once per size: placing a sash makes the panes lay out again
            tried.add(size)
            # A divider saved at 1x lies below the 2x minimum: placed there it never sticks,
            # and placing it again at each <Configure> it caused kept the layout from settling.
            target = {k: self._sash_range(k, v) for k, v in wanted.items()}
            with contextlib.suppress(tk.TclError):
                if "h" in target:
                    self.panes.sash_place(0, target["h"], 1)
                if "v" in target:
                    self.right_panes.sash_place(0, 1, target["v"])
                placed = self.pane_positions() == {**self.pane_positions(), **target}
                # Held back by the other side's minimum: the window may not have its size yet.
                if placed and all(target[k] >= v for k, v in wanted.items()):
                    self._panes_wanted = {}  # placed: the user moves them from now on

        self.panes.bind("<Configure>", place, add="+")
        self.right_panes.bind("<Configure>", place, add="+")
        self.root.after_idle(place)

    def _sash_range(self, which: str, wanted: int) -> int:
        """`wanted` moved into where the divider may be: each side keeps its pane's minimum."""
        panes = self.panes if which == "h" else self.right_panes
        first, second = (
            int(panes.tk.call(str(panes), "panecget", name, "-minsize"))
            for name in panes.tk.splitlist(panes.tk.call(str(panes), "panes"))
        )
        room = panes.winfo_width() if which == "h" else panes.winfo_height()
        high = room - int(panes.cget("sashwidth")) - second
        return max(first, min(wanted, high))

    def pane_positions(self) -> dict[str, int]:
        return {
            "h": int(self.panes.sash_coord(0)[0]),
            "v": int(self.right_panes.sash_coord(0)[1]),
        }

    def show_tab(self, title: str) -> None:
        panels = {
            "Gallery": self.gallery,
            "Queue": self.queue,
            "Draft": self.draft,
            "History": self.history,
            "Debug log": self.debug_log,
            "Backend": self.backend,
        }
        self.tabs.select(panels[title])  # type: ignore[no-untyped-call]

    def current_tab(self) -> str:
        return str(self.tabs.select())  # type: ignore[no-untyped-call]

    def _tab_changed(self) -> None:
        if self.current_tab() == str(self.backend):
            self.refresh_pool()
            self.backend_actions.refresh_tail()

    def open_sections(self, opened: bool) -> None:
        for section in self.compose.sections.values():
            section.set_open(opened)
        self.compose._summaries()

    def set_theme(self, choice: str) -> None:
        """Light, dark or the system's, now; remembered."""
        self.prefs.set("theme", choice)
        self.theme = themes.apply(self.root, choice, str(self.prefs.get("scale", "auto")))
        self.menus.theme.set(choice)
        self.gallery.redraw_soon()
        self.say(f"Theme: {self.theme.name}" + (" (the system's)" if choice == "system" else ""))

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
            specs = [build_spec(data) for data in self.compose.specs_data()]
        except SpecError as exc:
            reason = str(exc).removeprefix("invalid job spec: ")
            self.compose.show_problems(reason)
            self.say(f"{why}: {reason}")
            lifecycle, size = self.jobs.lifecycle, len(self.jobs.draft)
            if why == NOTHING_ADDED:
                self.ui.run(lambda: lifecycle.log_add_to_job_noop("gui", size, reason))
            else:
                self.ui.run(lambda: lifecycle.log_add_to_queue_failed("gui", reason))
            return None
        return Composed(spec=specs[0], more=specs[1:])

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

    def primary_action(self) -> None:
        """Ctrl+Enter: save to the job being edited, retry the one being retried, else queue."""
        if self.mode is not None:
            self.save_changes()
        else:
            self.add_to_queue()

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
            blocked = self.blocked()
            self.say(f"Queued {which}" + (f"; it waits: {blocked}." if blocked else "."))

    def _show_draft(self, draft: list[JobSpec]) -> None:
        self.draft.show(draft)
        self.tabs.tk.call(str(self.tabs), "tab", str(self.draft), "-text", f"Draft ({len(draft)})")
        self._primary_text()

    def _primary_text(self) -> None:
        if self.mode is not None:
            kind, job_id = self.mode
            text = (PRIMARY_EDIT if kind == "edit" else PRIMARY_RETRY).format(job_id[:8])
        else:
            text = PRIMARY_DRAFT if self.jobs.draft else PRIMARY
        self.primary.configure(text=text)

    def run_now(self) -> None:
        """Run what is composed ahead of everything queued (the draft if nothing is composed),
        resuming the queue if it is paused."""
        composed: Composed | None = None
        draft = self.jobs.draft
        if (
            self.compose.prompt_text()
            or self.compose.pack_chosen()
            or self.compose.inputs
            or not draft
        ):
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
        if op == "edit":
            self.edit_queued(job_id)
            return
        calls = {
            "cancel": lambda: self.jobs.cancel_job(job_id, source="gui"),
            "remove": lambda: self.jobs.remove(job_id, source="gui"),
        }
        work = calls.get(op, lambda: self.jobs.move(job_id, op, source="gui"))  # type: ignore[arg-type]
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
        job_id = self.running.current  # the job this window shows, not another of the pool's
        self.say(f"Cancelling job {job_id[:8]}…" if job_id else "Cancelling…")
        self.ui.run(lambda: self.services.pipeline_controller.request_stop(job_id))

    # -- validation as the user types ----------------------------------------------------------

    def _form_changed(self) -> None:
        if self._validate_job is not None:
            self.root.after_cancel(self._validate_job)
        self._validate_job = self.root.after(VALIDATE_MS, self.validate_form)

    def validate_form(self) -> None:
        """The form checked with submit's own rules now; then the names against the backend's
        lists (off the Tk thread), in the words submit would refuse them with."""
        self._validate_job = None
        self._checked += 1
        if self.compose.pack_chosen():
            self.compose.show_problems("")
            return
        if not self.compose.prompt_text() and not self.compose.inputs:
            self.compose.show_problems("")  # nothing typed yet: no red line; submit says it
            return
        spec = self.compose.check()
        if spec is None:
            return
        number = self._checked

        def shown(problems: list[str]) -> None:
            if number == self._checked and problems:
                self.compose.show_problems("; ".join(problems))

        self.ui.run(lambda: studio.name_problems(self.services.catalog, spec), shown)

    # -- the reuse loop ------------------------------------------------------------------------

    def load_spec(self, spec: JobSpec, what: str, warnings: list[str] | None = None) -> None:
        """A job's every setting into the form (any edit or retry mode ends)."""
        self.mode = None
        self.compose.show_mode(None)
        self.compose.load_spec(spec)
        self._primary_text()
        note = f" ({len(warnings)} warning(s): {warnings[0]})" if warnings else ""
        self.say(f"Loaded {what} into the form: Ctrl+Enter queues it.{note}")

    def _set_mode(self, kind: Literal["edit", "retry"], job: Job) -> None:
        """Ctrl+Enter saves the form to a queued job, or retries a failed or cancelled one with
        it, until Stop editing. The banner names the job; the status line says the rest."""
        self.mode = (kind, job.id)
        if kind == "edit":
            self.compose.show_mode(f"Editing queued job {job.short_id}")
            self.say(
                f"Editing queued job {job.short_id}: Save (Ctrl+Enter) writes the changes to it; "
                "it keeps its place in the queue."
            )
        else:
            self.compose.show_mode(f"Retrying {job.status.value.lower()} job {job.short_id}")
            self.say(
                f"Retrying job {job.short_id}: change what you need, then Retry (Ctrl+Enter) "
                "sends it back to the queue with the changes."
            )
        self._primary_text()

    def stop_editing(self) -> None:
        if self.mode is not None:
            self.say(f"Stopped changing job {self.mode[1][:8]}: Ctrl+Enter queues a new job.")
        self.mode = None
        self.compose.show_mode(None)
        self._primary_text()

    def load_job(self, job: Job, keep_seed: bool = True) -> None:
        """A history job into the form; a failed or cancelled one is retried with the changes."""
        reused = studio.reuse_job(job, keep_seed)
        seed = f"seed {reused.spec.seed}" if keep_seed else "a new seed"
        self.load_spec(reused.spec, f"job {job.short_id} ({seed})")
        if job.status in (JobStatus.FAILED, JobStatus.CANCELLED):
            self._set_mode("retry", job)

    def load_png(self, path: Path, keep_seed: bool = True) -> None:
        """A PNG's settings into the form (ours exactly, else its A1111 infotext)."""
        self.say(f"Reading {path.name}…")

        def done(reused: studio.Reused) -> None:
            self.load_spec(reused.spec, f"{path.name} ({reused.describe()})", reused.warnings)
            self.compose.last_seed = reused.seed
            if reused.unparsed:
                keys = ", ".join(sorted(reused.unparsed))
                self.say(f"Loaded {path.name}; not used (no such setting): {keys}")

        def failed(error: BaseException) -> None:
            self.say(f"{path.name}: {error}")

        self.ui.run(lambda: studio.reuse_png(path, keep_seed, self.jobs.inputs), done, failed)

    def import_png(self) -> None:
        path = filedialog.askopenfilename(
            parent=self.root,
            title="Import the settings of a PNG (StableNew, A1111, Forge, SD.Next)",
            filetypes=[("PNG images", "*.png")],
        )
        if path:
            self.load_png(Path(path))

    def drop(self, paths: list[str], target: str = "window") -> None:
        """Files dropped onto the window: onto the input images, or images that are not PNGs,
        become input images; a PNG anywhere else loads its settings."""
        files = [p for p in paths if p]
        if not files:
            return
        pngs = [p for p in files if Path(p).suffix.lower() == ".png"]
        if target == "inputs" or not pngs:
            self.add_inputs(files)
            return
        if len(pngs) > 1:
            self.say(f"{len(pngs)} PNGs dropped: loading the first, {Path(pngs[0]).name}.")
        self.load_png(Path(pngs[0]))

    def edit_queued(self, job_id: str) -> None:
        """A QUEUED job into the form, to change it in place (Ctrl+Enter saves)."""

        def loaded(job: Job) -> None:
            if job.status != JobStatus.QUEUED:
                self.say(f"Job {job.short_id} is {job.status.value}: only a queued job changes.")
                return
            self.load_spec(job.spec, f"queued job {job.short_id}")
            self._set_mode("edit", job)

        self.ui.run(lambda: self.jobs.get_job(job_id), loaded, self.failed("Edit"))

    def edit_selected(self) -> None:
        selected = self.queue.tree.selection()
        if selected:
            self.edit_queued(str(selected[0]))
        else:
            self.say("Select a queued job in the Queue tab first.")

    def save_changes(self) -> None:
        if self.mode is None:
            return
        kind, job_id = self.mode
        try:
            specs = [build_spec(data) for data in self.compose.specs_data()]
        except SpecError as exc:
            reason = str(exc).removeprefix("invalid job spec: ")
            self.compose.show_problems(reason)
            self.say(f"Not saved: {reason}")
            return
        spec = specs[0]
        if kind == "edit":
            self.say(f"Saving the changes to job {job_id[:8]}…")

            def edited(_event: object) -> None:
                self.stop_editing()
                self.say(f"Job {job_id[:8]} changed; it keeps its place in the queue.")

            def refused(error: BaseException) -> None:
                if isinstance(error, QueueError):
                    self.say(
                        f"Job {job_id[:8]} can no longer be changed ({error}); "
                        "Stop editing to queue the form as a new job."
                    )
                else:
                    self.failed("Save")(error)

            self.ui.run(lambda: self.jobs.edit(job_id, spec, source="gui"), edited, refused)
        else:
            self.say(f"Retrying job {job_id[:8]} with the changes…")

            def retried(new_id: str) -> None:
                self.stop_editing()
                self.say(f"Job {job_id[:8]} retried with the changes as {new_id[:8]}.")

            self.ui.run(
                lambda: self.jobs.retry_with(job_id, spec, source="gui"),
                retried,
                self.failed("Retry"),
            )

    # -- input images, presets, tokens ---------------------------------------------------------

    def add_input_files(self) -> None:
        paths = filedialog.askopenfilenames(
            parent=self.root,
            title="Images the jobs start from",
            filetypes=[("Images", " ".join(f"*{s}" for s in IMAGE_FILES))],
        )
        if paths:
            self.add_inputs(list(paths))

    def add_input_folder(self) -> None:
        folder = filedialog.askdirectory(parent=self.root, title="A folder of images")
        if folder:
            self.add_inputs([folder])

    def add_inputs(self, paths: list[str]) -> None:
        """Image files, folders or globs kept by content in the home, then listed in the form."""
        self.say(f"Reading {len(paths)} image path(s)…")

        def done(images: list[Any]) -> None:
            self.compose.add_inputs(images)
            self.say(
                f"{len(self.compose.inputs)} input image(s): the jobs start from them "
                "(turn on img2img, ADetailer or upscale)."
            )

        self.ui.run(
            lambda: studio.store_inputs(self.services.intents, paths),
            done,
            self.failed("Input images"),
        )

    def open_pack(self) -> None:
        self.compose.browse_pack()

    def apply_preset(self) -> None:
        path = filedialog.askopenfilename(
            parent=self.root,
            title="Apply a preset (a pack's JSON or a preset file)",
            filetypes=[("Presets", "*.json")],
        )
        if path:
            self.apply_preset_file(Path(path))

    def apply_preset_file(self, path: Path) -> None:
        from stablenew.jobs.presets import load_preset

        data = self.compose.spec_data()
        banner = self.compose.banner_text.full_text

        def done(result: tuple[dict[str, Any], list[str], str]) -> None:
            merged, warnings, name = result
            try:
                spec = build_spec(merged)
            except SpecError as exc:
                self.say(f"Preset {name} not applied: {exc}")
                return
            mode = self.mode
            self.load_spec(spec, f"preset {name}", warnings)
            if mode is not None:  # a preset applied while editing keeps editing
                self.mode = mode
                self.compose.show_mode(banner)
                self._primary_text()

        def work() -> tuple[dict[str, Any], list[str], str]:
            preset = load_preset(path)
            return studio.apply_preset(preset.fields, data), preset.warnings, preset.name

        self.ui.run(work, done, self.failed("Apply preset"))

    def save_preset(self) -> None:
        path = filedialog.asksaveasfilename(
            parent=self.root,
            title="Save the form's settings as a preset",
            defaultextension=".json",
            filetypes=[("Presets", "*.json")],
        )
        if path:
            self.save_preset_file(Path(path))

    def save_preset_file(self, path: Path) -> None:
        spec = self.compose.check()
        if spec is None:
            self.say("Not saved: the form has a problem (below the form).")
            return
        self.ui.run(
            lambda: studio.save_preset(path, spec),
            lambda saved: self.say(f"Preset saved to {saved}."),
            self.failed("Save preset"),
        )

    def pick_token(self, kind: str) -> None:
        from stablenew.gui.pickers import TokenPicker

        names = self.compose.lists.loras if kind == "lora" else self.compose.lists.embeddings
        if not names:
            self.say(f"The backend lists no {'LoRAs' if kind == 'lora' else 'embeddings'}.")
            return
        TokenPicker(self.root, self.theme, kind, names, self.compose.insert_token)

    # -- history, gallery and a job's details --------------------------------------------------

    def refresh_history(self, offset: int | None = None) -> None:
        status, text = self.history.filters()
        statuses = [JobStatus(status)] if status else None
        at = self.history.offset if offset is None else offset
        self.ui.run(
            lambda: self.jobs.page(statuses, text, HISTORY_PAGE, at, history=True),
            self._show_history,
        )

    def _show_history(self, page: Page) -> None:
        self.history.show_page(page.jobs, page.offset, page.total)
        size = self.history.thumb_size()
        for job in page.jobs:
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
        elif op == "load":
            self.load_job(job)
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

    def load_gallery_page(self, offset: int, limit: int) -> None:
        def shown(page: Page) -> None:
            self.gallery.add_page(page.jobs, page.total, page.more, page.offset)

        def failed(error: BaseException) -> None:
            self.gallery.loading = False
            self.failed("The gallery")(error)

        self.ui.run(lambda: self.jobs.page(None, None, limit, offset, history=True), shown, failed)

    def gallery_action(self, op: str) -> None:
        item = self.gallery.selected_item()
        if item is None:
            self.say("The gallery has no image selected.")
            return
        self.gallery_act(op, item)

    def gallery_act(self, op: str, item: Item) -> None:
        """What the gallery, its menu and the viewer ask for one image."""
        if op == "view" and item.file is None and item.reason:
            self.show_details(item.job_id)  # nothing to view: why it made nothing
        elif op == "view":
            self.open_viewer(self.gallery.all_items.index(item))
        elif op in ("load", "reroll"):
            keep = op == "load"
            if item.file and item.status != "RUNNING":
                self.load_png(Path(item.file), keep)
            else:
                self.ui.run(
                    lambda: self.jobs.get_job(item.job_id),
                    lambda job: self.load_job(job, keep),
                    self.failed("Load"),
                )
        elif op == "open" and item.file:
            self.open_folder(str(Path(item.file).parent))
        elif op in ("open", "error"):
            self.show_details(item.job_id)

    def open_viewer(self, index: int) -> Viewer:
        viewer = Viewer(
            self.root,
            self.theme,
            self.ui,
            self.jobs,
            lambda: self.gallery.all_items,
            index,
            self.gallery_act,
        )
        self.viewers = [v for v in self.viewers if v.winfo_exists()] + [viewer]
        return viewer

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

        def not_opened(error: BaseException) -> None:
            if not isinstance(error, FolderNotOpened):
                self.failed("Open folder")(error)
                return
            self.say(str(error))
            self.ui.run(lambda: self.jobs.report(str(error)))

        self.ui.run(
            lambda: opener.open_folder(folder), lambda _r: self.say(f"Opened {folder}"), not_opened
        )

    def open_logs(self) -> None:
        folder = self.services.config.log_dir
        private_files.make_folder(folder)
        self.open_folder(str(folder))

    # -- the backend ---------------------------------------------------------------------------

    def start(self) -> None:
        """Own the home (the runner and the backend), or attach to its owner, off the Tk thread."""
        self.backend_actions.start()
        self.refresh_history(0)
        self.gallery.reset()

    def refresh_pool(self) -> None:
        self.ui.run(self.services.backend_statuses, self.backend.show_pool)

    def preview_pack(self, path: str, chosen: bool = True) -> None:
        """What the pack in the entry would queue, under it; `chosen` (Return, Browse…) also
        says so in the status line, what is being typed only updates the hint."""
        if chosen:
            self.say(f"Reading {Path(path).name}…")

        def current() -> bool:  # the entry may name another pack by the time this is read
            return self.compose.pack_chosen() == path.strip()

        def done(preview: dict[str, Any]) -> None:
            if not current():
                return
            self.compose.pack_preview.set(
                f"{preview['pack']}: {preview['rows']} rows, {preview['jobs']} jobs, "
                f"{preview['images']} images"
                + (" (warnings)" if preview["warnings"] else "")
                + ": queued instead of the prompt"
            )
            if chosen:
                self.say("Pack read: Ctrl+Enter queues all its jobs.")

        def failed(error: BaseException) -> None:
            if not current():
                return
            reason = short_paths(str(error), Path(path))
            self.compose.pack_preview.set(f"error: {reason}")
            if chosen:
                self.say(f"The pack has an error; nothing from it can be queued: {reason}")

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
            self.ui.post(lambda: self.refresh_history(), "history")
            self.ui.post(self._maybe_queue_finished, "queue-finished")

    def _on_event(self, event: JobLifecycleLogEvent) -> bool:
        """One event's effect on the window; True when a job finished."""
        data, job_id = event.data, event.job_id
        if isinstance(data, ProgressData):
            if data.preview > self._preview_number and job_id and job_id == self.running.current:
                self._show_live_preview(job_id, data.preview)
            return False
        if event.kind == EventKind.JOB_STARTED and job_id:
            self._heard[job_id] = None
            while len(self._heard) > HEARD:
                gone = next(iter(self._heard))
                del self._heard[gone]
                self._stages_of.pop(gone, None)
            stages = list(data.stages) if isinstance(data, JobStartedData) else []
            self._stages_of[job_id] = stages
            shown = self.running.current
            if shown is None or shown not in self.services.pipeline_controller.running_jobs:
                # In a pool, another backend's job starting does not take the panel over.
                self.running.job_started(job_id, stages)
                self._preview_file = ""
                self._preview_number = 0
            self.say(f"Running job {job_id[:8]}: {' → '.join(stages)}.")
            if self.mode == ("edit", job_id):
                # It can no longer be changed: the banner would promise a save that will not
                # happen. The changes stay in the form, to queue as a new job.
                self.mode = None
                self.compose.show_mode(None)
                self._primary_text()
                self.say(
                    f"Job {job_id[:8]} started before your changes were saved: they stay in "
                    "the form, and Ctrl+Enter queues them as a new job."
                )
            if self.current_tab() == str(self.backend):
                self.refresh_pool()
        elif event.kind == EventKind.STAGE_STARTED and job_id and event.stage:
            self.running.stage_started(job_id, event.stage)
        elif (
            isinstance(data, StageFinishedData)
            and data.file
            and job_id
            and job_id == self.running.current
        ):
            self._show_image(job_id, data.file)
            if self.running.stages and event.stage == self.running.stages[-1]:
                self.gallery.add_live(job_id, data.file)
        elif event.kind in FINISHED_KINDS and job_id and isinstance(data, JobFinishedData):
            shown = self.running.current
            running = self.services.pipeline_controller.running_jobs
            if job_id == shown or (event.source == "runner" and shown not in running):
                self.running.job_finished(job_id, data.status, data.reason, data.images)
                self.say(self._ended_text(job_id, data))
                self._finished_since_idle += 1
                self.ui.run(partial(self.jobs.get_job, job_id), self._job_read)
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

    def _job_read(self, job: Job) -> None:
        """A job that ended, as recorded: into the gallery, its seed for reuse, its reason."""
        self.gallery.job_finished(job)
        if job.result.seeds:
            self.compose.last_seed = job.result.seeds[-1]
        if self.current_tab() == str(self.backend):
            self.refresh_pool()
        if job.error is None:
            return
        reason = job.error.reason_line()
        self.running.failure_reason(job.id, reason)
        if self.message.full_text.startswith(f"Job {job.short_id} failed"):  # nothing newer
            self.say(f"Job {job.short_id} failed: {reason}")

    def _maybe_queue_finished(self) -> None:
        """After a job ended: if nothing is queued or running any more, the queue finished."""
        ended = self._finished_since_idle
        if not ended:
            return

        def check() -> int:
            return self.jobs.count([JobStatus.QUEUED, JobStatus.RUNNING])

        def counted(left: int) -> None:
            if left == 0 and self._finished_since_idle and not self.closing:
                self._finished_since_idle = 0
                self.menus.queue_finished(ended)

        self.ui.run(check, counted)

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

    def _show_live_preview(self, job_id: str, number: int) -> None:
        """The engine's latest live preview of the running job, newer than what is shown."""
        self._preview_number = number
        size = self.running.preview_size()

        def fetch() -> Image.Image | None:
            preview = self.services.previews.latest(job_id)
            if preview is None:
                return None
            with Image.open(io.BytesIO(preview.image)) as image:
                image.thumbnail((size, size))
                return image.convert("RGB")

        def show(image: Image.Image | None) -> None:
            if image is not None and self._preview_number == number:
                self.running.show_preview(job_id, image, live=number)
                self.live_shown += 1

        self.ui.run(fetch, show)

    def show_backend_text(self, text: str) -> None:
        """What the backend is, in the top bar: whole, unless it would take more than half the
        bar (the status message needs the rest); the Backend tab always has all of it."""
        px = self.theme.px
        wanted = self.theme.body.measure(text) + px(8)
        room = max(self.root.winfo_width(), self.theme.px(themes.MIN_SIZE[0])) // 2
        self.top_bar.columnconfigure(1, minsize=min(wanted, room))
        self.backend_text.set(text)

    def _show_running(self) -> None:
        # AppState may be ahead of the events still in the inbox (a short job can start and end
        # between two turns): hear those first, or their job's image and end would be lost.
        self._on_events()
        self._show_lifecycle()
        active = self.state.active
        running = self.state.lifecycle in (Lifecycle.RUNNING, Lifecycle.STOPPING)
        if running and active is not None and active.job_id != self.running.current:
            # The panel moves to another running job (a pool's, once the shown one ended).
            self.running.job_started(active.job_id, self._stages_of.get(active.job_id, []))
            self._preview_file = ""
            self._preview_number = 0
        self.running.show(active, self.state.lifecycle.value)

    def _show_queue(self) -> None:
        self.queue.show(self.state.queue, self.state.paused, self.state.waiting, self.blocked())
        self._show_lifecycle()

    def blocked(self) -> str:
        """Why queued jobs cannot run now though the queue is not paused: this window's backend
        failed to start (its reason, and the way out), else ""."""
        if self.services.role == Role.CLIENT or self.state.backend != BackendState.FAILED:
            return ""
        detail = self.state.backend_detail
        return (
            "the backend did not start"
            + (f" ({detail})" if detail else "")
            + "; Start it in the Backend tab, or change it in Settings…"
        )

    def _show_lifecycle(self) -> None:
        self.lifecycle.configure(text=lifecycle_text(self.state.lifecycle, self.state.paused))

    def _backend_changed(self, _topic: str) -> None:
        state = self.state.backend.value  # read now, on the publishing thread: every state shows
        self.ui.post(lambda: self._show_backend(state))

    def _show_backend(self, state: str) -> None:
        self.indicator.show(state)
        self.backend.indicator.show(state)
        self.refresh_pool()
        self._show_queue()  # whether the queue waits for the backend
        if state == "READY":
            self.ui.run(self.backend_actions.read_facts, self.backend_actions.show_facts)
            if not self._choices_loaded:
                self._choices_loaded = True
                self.ui.run(
                    lambda: studio.picker_lists(self.services.backend),
                    self._fill_choices,
                    self._no_choices,
                )

    def _no_choices(self, error: BaseException) -> None:
        self._choices_loaded = False  # asked again at the next READY
        if not isinstance(error, StableNewError):
            self.failed("Reading the backend's lists")(error)

    def _fill_choices(self, lists: studio.PickerLists) -> None:
        names = sorted(
            {b.name for b in self.services.backends}
            | {label for b in self.services.backends for label in b.labels}
        )
        self.compose.set_lists(lists, names)

    # -- closing -------------------------------------------------------------------------------

    def close(self) -> None:
        """Stop the runner (a running job is re-queued) and the managed backend, then close;
        no orphan processes. The window's close button and SIGTERM/SIGHUP both end here."""
        if self.closing:
            return
        self.closing = True
        self.close_begun.set()
        self.say("Closing: stopping the runner and the backend…")
        self.prefs.set("geometry", self.root.geometry())
        self.prefs.set("compose", self.compose.settings())
        with contextlib.suppress(tk.TclError):
            # In 1x units: device pixels saved at 2x put a 1x window's dividers twice as far.
            at_1x = {k: int(v / self.theme.scale) for k, v in self.pane_positions().items()}
            self.prefs.set("panes", {**at_1x, "units": PANE_UNITS})

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
        self.gallery.cache.clear()
        for viewer in self.viewers:
            if viewer.winfo_exists():
                viewer.destroy()
        self.running.clear_preview()
        self.history.thumbs.clear()
        for pending in self.root.tk.splitlist(self.root.tk.call("after", "info")):
            # A timer of a destroyed widget must not fire (Tcl's cancel: tkinter's own
            # after_cancel also deletes the command its widget deletes again when destroyed).
            self.root.tk.call("after", "cancel", pending)
        self.root.destroy()
        gc.collect()
        self.destroyed = True

    def run(self) -> None:
        self.start()
        self.root.mainloop()


def short_paths(message: str, path: Path) -> str:
    """`message` with the pack's full path shortened to its name: in a one-line hint the
    path came first and pushed the reason out of sight."""
    for spelled in {str(path), str(path.expanduser()), str(path.expanduser().resolve())}:
        if len(spelled) > len(path.name):
            message = message.replace(spelled, path.name)
    return message


def lifecycle_text(lifecycle: Lifecycle, paused: str | None) -> str:
    """The top bar's word for what the app does now. ERROR is the engine's state until the next
    job starts; shown bare next to later, unrelated messages it read as a current fault."""
    if lifecycle in (Lifecycle.RUNNING, Lifecycle.STOPPING):
        return lifecycle.value
    if paused is not None:
        return "PAUSED"
    return "IDLE · last job failed" if lifecycle == Lifecycle.ERROR else "IDLE"


def enable_drop(root: tk.Tk, drop: Any) -> bool:
    """Real drag-and-drop of files where Tk has the tkdnd extension (`drop(paths)` otherwise
    stays reachable from File > Import PNG and the input images' buttons). True when on."""
    try:
        root.tk.call("package", "require", "tkdnd")
    except tk.TclError:
        return False

    def dropped(data: str) -> str:
        drop([str(p) for p in root.tk.splitlist(data)])
        return "copy"

    command = root.register(dropped)
    root.tk.call("tkdnd::drop_target", "register", root, "DND_Files")
    root.tk.call("bind", root, "<<Drop:DND_Files>>", f"{command} %D")
    return True
