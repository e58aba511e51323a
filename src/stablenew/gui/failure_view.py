"""One job's details in a window of their own: for a failed job its error envelope (where, why,
what was tried) with every failure artifact's path, each a click from its folder; for any other
job its run folder and images. Opened from "Show error" and by double-clicking a history row."""

from __future__ import annotations

import json
import tkinter as tk
from collections.abc import Callable
from functools import partial
from pathlib import Path
from tkinter import ttk

from stablenew.gui.theme import Theme
from stablenew.jobs.job import Job
from stablenew.jobs.status import REASON_TEXT

SIZE = (860, 560)  # pixels at 1x


def envelope_text(job: Job) -> str:
    """Everything recorded about the failure, as text to read or copy."""
    error = job.error
    if error is None:
        return "no error recorded"
    causes = "\n".join(f"  - {c.type}: {c}" for c in error.causes) or "  (none)"
    return (
        f"{error.message}\n\ncauses:\n{causes}\n\nartifacts:\n"
        + ("\n".join(error.artifacts) or "(none)")
        + "\n\nenvelope:\n"
        + json.dumps(error.model_dump(mode="json"), indent=2)
    )


def shown_path(path: str, run_dir: str | None) -> str:
    """A path inside the run folder as the rest of it (the run folder has its own row)."""
    if run_dir and path != run_dir:
        try:
            return str(Path(path).relative_to(run_dir))
        except ValueError:
            pass
    return path


class JobDetails(tk.Toplevel):
    def __init__(
        self, master: tk.Misc, theme: Theme, job: Job, open_path: Callable[[str], None]
    ) -> None:
        super().__init__(master)
        px = theme.px
        self.job = job
        self.title(f"Job {job.short_id}: {job.status.value}")
        width, height = theme.fit(px(SIZE[0]), px(SIZE[1]))
        self.geometry(f"{width}x{height}+{px(40)}+{px(40)}")
        self.transient(master.winfo_toplevel())
        self.bind("<Escape>", lambda _e: self.destroy())
        body = ttk.Frame(self, padding=px(10))
        body.pack(fill="both", expand=True)
        body.columnconfigure(1, weight=1)
        error = job.error
        headline = (
            f"Failed: {error.reason_line()}"
            if error is not None
            else f"{job.status.value.capitalize()}: {len(job.result.images)} image(s)"
        )
        self.headline = ttk.Label(
            body, text=headline, style="Title.TLabel", wraplength=width - px(40), justify="left"
        )
        self.headline.grid(row=0, column=0, columnspan=3, sticky="w", pady=(0, px(6)))
        facts: list[tuple[str, str]] = []
        if error is not None:
            where = error.stage or "—"
            if error.image_index is not None:
                where += f", image {error.image_index}"
            facts.append(("Where", where))
            if error.reason is not None:
                facts.append(("Cause", REASON_TEXT.get(error.reason, str(error.reason))))
            facts.append(("Tried", f"{error.attempts} attempt(s), {error.restarts} restart(s)"))
        run_dir = job.result.run_dir or (job.checkpoint.run_dir if job.checkpoint else None)
        row = 1
        for name, value in facts:
            ttk.Label(body, text=name).grid(row=row, column=0, sticky="w", padx=(0, px(8)))
            ttk.Label(body, text=value).grid(row=row, column=1, columnspan=2, sticky="w")
            row += 1
        paths = list(error.artifacts) if error is not None else list(job.result.images)
        title = "Failure artifacts" if error is not None else "Images"
        ttk.Label(body, text=title, style="Title.TLabel").grid(
            row=row, column=0, columnspan=3, sticky="w", pady=(px(8), px(2))
        )
        row += 1
        self.paths: list[ttk.Entry] = []
        if run_dir:
            paths = [run_dir, *paths]
        for path in paths or ["(none)"]:
            label = "Run folder" if path == run_dir else ""
            ttk.Label(body, text=label).grid(row=row, column=0, sticky="w")
            entry = ttk.Entry(body)
            entry.insert(0, shown_path(path, run_dir))
            entry.configure(state="readonly")  # selectable and copyable, not editable
            entry.xview_moveto(1.0)  # a long path shows its end: the file's name
            entry.grid(row=row, column=1, sticky="ew", pady=px(1))
            self.paths.append(entry)
            if path != "(none)":
                folder = path if Path(path).is_dir() else str(Path(path).parent)
                ttk.Button(body, text="Open folder", command=partial(open_path, folder)).grid(
                    row=row, column=2, padx=(px(4), 0)
                )
            row += 1
        if error is not None:
            ttk.Label(body, text="The whole envelope", style="Title.TLabel").grid(
                row=row, column=0, columnspan=3, sticky="w", pady=(px(8), px(2))
            )
            row += 1
            frame = ttk.Frame(body)
            frame.grid(row=row, column=0, columnspan=3, sticky="nsew")
            frame.columnconfigure(0, weight=1)
            frame.rowconfigure(0, weight=1)
            body.rowconfigure(row, weight=1)
            self.text = tk.Text(frame, height=6, wrap="word", font="TkFixedFont")
            scroll = ttk.Scrollbar(frame, orient="vertical", command=self.text.yview)
            self.text.configure(yscrollcommand=scroll.set)
            self.text.grid(row=0, column=0, sticky="nsew")
            scroll.grid(row=0, column=1, sticky="ns")
            self.text.insert("1.0", envelope_text(job))
            self.text.configure(state="disabled")
            row += 1
        buttons = ttk.Frame(body)
        buttons.grid(row=row, column=0, columnspan=3, sticky="e", pady=(px(8), 0))
        if error is not None:
            ttk.Button(buttons, text="Copy error", command=self.copy).pack(side="left")
        ttk.Button(buttons, text="Close", command=self.destroy).pack(side="left", padx=(px(4), 0))

    def all_text(self) -> str:
        """Everything the window shows, as text (what a reader sees, for tests and copying)."""
        parts = [str(self.headline.cget("text"))]
        parts += [entry.get() for entry in self.paths]
        if self.job.error is not None:
            parts.append(self.text.get("1.0", "end"))
        return "\n".join(parts)

    def copy(self) -> None:
        self.clipboard_clear()
        self.clipboard_append(envelope_text(self.job))
