"""The menu bar (File, Queue, View, Help), the keyboard shortcuts (one table: bound here and
listed in Help), About, and what happens when the queue finishes (a desktop notification, a
sound, and a one-shot action: nothing, quit StableNew, or run a configured command)."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
import tkinter as tk
from collections.abc import Callable
from functools import partial
from importlib.metadata import PackageNotFoundError, version
from tkinter import simpledialog, ttk
from typing import TYPE_CHECKING

from stablenew.gui.theme import SCALES, THEMES

if TYPE_CHECKING:
    from stablenew.gui.window import MainWindow

# (keys as shown, the Tk sequence or "" when bound elsewhere, what it does)
SHORTCUTS: list[tuple[str, str, str]] = [
    ("Ctrl+Enter", "<Control-Return>", "Add to Queue (or save the job being edited)"),
    ("Ctrl+Shift+Enter", "<Control-Shift-Return>", "Run Now, ahead of the queue"),
    ("Esc", "<Escape>", "Cancel the running job"),
    ("Ctrl+O", "<Control-o>", "Open a prompt pack"),
    ("Ctrl+I", "<Control-i>", "Import the settings of a PNG"),
    ("Ctrl+,", "<Control-comma>", "Settings"),
    ("Ctrl+Q", "<Control-q>", "Quit"),
    ("Ctrl+1 … Ctrl+6", "", "Gallery, Queue, Draft, History, Debug log, Backend"),
    ("Ctrl+L", "<Control-l>", "Use the selected gallery image's settings (same seed)"),
    ("F1", "<F1>", "This list"),
    ("Gallery: arrows, Page Up/Down, Home, End", "", "Move the selection"),
    ("Gallery: Enter or double-click", "", "Open the image in the viewer"),
    ("Viewer: Left, Right", "", "The previous, the next image"),
    ("Viewer: F, 1", "", "Fit to the window, actual pixels"),
    ("Queue: double-click", "", "Edit a queued job"),
]
WHEN_DONE = (
    ("nothing", "Do nothing"),
    ("quit", "Quit StableNew"),
    ("command", "Run the configured command"),
)


def app_version() -> str:
    try:
        return version("stablenew")
    except PackageNotFoundError:
        from stablenew import __version__

        return str(__version__)


class Menus:
    def __init__(self, window: MainWindow) -> None:
        self.w = window
        root = window.root
        prefs = window.prefs
        self.bar = tk.Menu(root, tearoff=False)
        self.theme = tk.StringVar(root, prefs.get("theme", "system"))
        self.scale = tk.StringVar(root, str(prefs.get("scale", "auto")))
        self.notify = tk.BooleanVar(root, bool(prefs.get("notify", False)))
        self.sound = tk.BooleanVar(root, bool(prefs.get("sound", False)))
        self.when_done = tk.StringVar(root, "nothing")  # one-shot: never remembered as set
        self.menus: dict[str, tk.Menu] = {}

        file = self._menu("File")
        file.add_command(label="Open pack…", accelerator="Ctrl+O", command=window.open_pack)
        file.add_command(label="Import PNG…", accelerator="Ctrl+I", command=window.import_png)
        file.add_command(label="Add input images…", command=window.add_input_files)
        file.add_separator()
        file.add_command(label="Apply preset…", command=window.apply_preset)
        file.add_command(label="Save form as preset…", command=window.save_preset)
        file.add_separator()
        file.add_command(
            label="Settings…", accelerator="Ctrl+,", command=window.backend_actions.open_settings
        )
        file.add_separator()
        file.add_command(label="Quit", accelerator="Ctrl+Q", command=window.close)

        queue = self._menu("Queue")
        queue.add_command(
            label="Add to Queue", accelerator="Ctrl+Enter", command=window.primary_action
        )
        queue.add_command(label="Run Now", accelerator="Ctrl+Shift+Enter", command=window.run_now)
        queue.add_command(
            label="Cancel the running job", accelerator="Esc", command=window.cancel_running
        )
        queue.add_command(label="Pause", command=lambda: window.set_auto_run(False))
        queue.add_command(label="Resume", command=lambda: window.set_auto_run(True))
        queue.add_command(label="Edit the selected queued job", command=window.edit_selected)
        queue.add_separator()
        done = tk.Menu(queue, tearoff=False)
        for value, label in WHEN_DONE:
            done.add_radiobutton(label=label, value=value, variable=self.when_done)
        done.add_separator()
        done.add_checkbutton(
            label="Desktop notification", variable=self.notify, command=self._remember
        )
        done.add_checkbutton(label="Sound", variable=self.sound, command=self._remember)
        done.add_command(label="Set the command…", command=self.ask_command)
        queue.add_cascade(label="When the queue finishes", menu=done)

        view = self._menu("View")
        themes = tk.Menu(view, tearoff=False)
        for value in THEMES:
            themes.add_radiobutton(
                label="Follow the system" if value == "system" else value.capitalize(),
                value=value,
                variable=self.theme,
                command=lambda: window.set_theme(self.theme.get()),
            )
        view.add_cascade(label="Theme", menu=themes)
        scales = tk.Menu(view, tearoff=False)
        for value in SCALES:
            scales.add_radiobutton(
                label="The display's" if value == "auto" else f"{value}x",
                value=value,
                variable=self.scale,
                command=self._scale_chosen,
            )
        view.add_cascade(label="Scaling (from the next start)", menu=scales)
        view.add_separator()
        for n, title in enumerate(window.tab_titles, start=1):
            view.add_command(
                label=title, accelerator=f"Ctrl+{n}", command=partial(window.show_tab, title)
            )
        view.add_separator()
        view.add_command(label="Open all form sections", command=lambda: window.open_sections(True))
        view.add_command(
            label="Close all form sections", command=lambda: window.open_sections(False)
        )

        help_ = self._menu("Help")
        help_.add_command(label="Keyboard shortcuts", accelerator="F1", command=self.shortcuts)
        help_.add_command(label="Open the logs folder", command=window.open_logs)
        help_.add_separator()
        help_.add_command(label="About StableNew", command=self.about)
        root.configure(menu=self.bar)
        self._bind(root)

    def _menu(self, label: str) -> tk.Menu:
        menu = tk.Menu(self.bar, tearoff=False)
        self.bar.add_cascade(label=label, menu=menu, underline=0)
        self.menus[label] = menu
        return menu

    def _bind(self, root: tk.Misc) -> None:
        w = self.w
        actions: dict[str, Callable[[], object]] = {
            "<Control-Return>": w.primary_action,
            "<Control-Shift-Return>": w.run_now,
            "<Escape>": w.cancel_running,
            "<Control-o>": w.open_pack,
            "<Control-i>": w.import_png,
            "<Control-comma>": w.backend_actions.open_settings,
            "<Control-q>": w.close,
            "<Control-l>": lambda: w.gallery_action("load"),
            "<F1>": self.shortcuts,
        }
        actions["<Control-KP_Enter>"] = w.primary_action
        actions["<Control-Shift-KP_Enter>"] = w.run_now
        for n, title in enumerate(w.tab_titles, start=1):
            actions[f"<Control-Key-{n}>"] = partial(w.show_tab, title)
        for sequence, action in actions.items():
            root.bind(sequence, partial(_handled, action))

    def _remember(self) -> None:
        self.w.prefs.set("notify", self.notify.get())
        self.w.prefs.set("sound", self.sound.get())

    def _scale_chosen(self) -> None:
        self.w.prefs.set("scale", self.scale.get())
        self.w.say("Scaling saved: it applies the next time StableNew starts.")

    def ask_command(self) -> None:
        command = simpledialog.askstring(
            "When the queue finishes",
            "Command to run when the queue finishes (e.g. shutdown -h +5):",
            initialvalue=str(self.w.prefs.get("when_done_command", "")),
            parent=self.w.root,
        )
        if command is not None:
            self.w.prefs.set("when_done_command", command.strip())
            if command.strip():
                self.when_done.set("command")

    def shortcuts(self) -> None:
        top = tk.Toplevel(self.w.root)
        top.title("Keyboard shortcuts")
        top.transient(self.w.root)
        frame = ttk.Frame(top, padding=self.w.theme.px(12))
        frame.pack(fill="both", expand=True)
        for row, (keys, _sequence, what) in enumerate(SHORTCUTS):
            ttk.Label(frame, text=keys, style="Title.TLabel").grid(
                row=row, column=0, sticky="w", padx=(0, self.w.theme.px(16))
            )
            ttk.Label(frame, text=what).grid(row=row, column=1, sticky="w")
        ttk.Button(frame, text="Close", command=top.destroy).grid(
            row=len(SHORTCUTS), column=1, sticky="e", pady=(self.w.theme.px(8), 0)
        )
        top.bind("<Escape>", lambda _e: top.destroy())

    def about(self) -> None:
        top = tk.Toplevel(self.w.root)
        top.title("About StableNew")
        top.transient(self.w.root)
        frame = ttk.Frame(top, padding=self.w.theme.px(16))
        frame.pack(fill="both", expand=True)
        ttk.Label(frame, text=f"StableNew {app_version()}", style="Title.TLabel").pack(anchor="w")
        for line in (
            "A local orchestrator for Stable Diffusion over the AUTOMATIC1111 WebUI API.",
            f"Home: {self.w.home}",
            f"Logs: {self.w.services.config.log_dir}",
            f"Python {sys.version.split()[0]} · Tk {self.w.root.tk.call('info', 'patchlevel')}",
        ):
            ttk.Label(frame, text=line).pack(anchor="w")
        ttk.Button(frame, text="Close", command=top.destroy).pack(anchor="e", pady=(8, 0))
        top.bind("<Escape>", lambda _e: top.destroy())
        self.about_window = top

    # -- when the queue finishes ---------------------------------------------------------------

    def queue_finished(self, jobs: int) -> None:
        """The queue ran dry after `jobs` job(s) ended: tell, ring, and do the one-shot action
        (then it is back to nothing)."""
        text = f"The queue is finished: {jobs} job(s) ended."
        action = self.when_done.get()
        if self.sound.get() or self.notify.get() or action != "nothing":
            self.w.say(text)  # else the last job's own line stays: it says more
        if self.sound.get():
            self.w.root.bell()
        if self.notify.get():
            self.w.ui.run(lambda: notify("StableNew", text))
        self.when_done.set("nothing")
        if action == "quit":
            self.w.say("The queue is finished: quitting, as asked.")
            self.w.close()
        elif action == "command":
            command = str(self.w.prefs.get("when_done_command", "")).strip()
            if not command:
                self.w.say("The queue is finished; no command is set (Queue ▸ When it finishes).")
                return
            self.w.say(f"The queue is finished: running {command}")
            self.w.ui.run(lambda: run_command(command), failed=self.w.failed("The command"))


def _handled(action: Callable[[], object], _event: object) -> str:
    action()
    return "break"


def notify(title: str, text: str) -> None:
    """A desktop notification where the platform has a way (best effort, off the Tk thread)."""
    try:
        if sys.platform == "darwin":
            script = f"display notification {text!r} with title {title!r}"
            subprocess.run(["osascript", "-e", script], check=False, timeout=5)
        elif sys.platform != "win32" and shutil.which("notify-send"):
            subprocess.run(["notify-send", title, text], check=False, timeout=5)
    except (OSError, subprocess.SubprocessError):
        pass


def run_command(command: str) -> int:
    """The user's command, as a shell would split it; not waited for."""
    args = shlex.split(command, posix=sys.platform != "win32")
    process = subprocess.Popen(args, start_new_session=True)
    return process.pid
