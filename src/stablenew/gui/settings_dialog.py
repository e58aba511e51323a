"""Settings: the backend (managed command or attached URL, credentials), the output folder,
the upscale limits and the global prompts, written to `<home>/config.toml`.

The form is checked by the same models that load the file, so what Save accepts is what the
next start reads, and a refusal names the key. "Test connection" asks the URL (or checks the
launch command) off the Tk thread. A running StableNew keeps the settings it started with: the
dialog says so, and so does the status line after saving.
"""

from __future__ import annotations

import shlex
import sys
import tkinter as tk
from collections.abc import Callable
from pathlib import Path
from tkinter import filedialog, ttk
from typing import Any

from stablenew.app import discovery, settings_file
from stablenew.app.config import Config
from stablenew.app.discovery import Probe
from stablenew.gui.dispatcher import UiDispatcher
from stablenew.gui.theme import Theme
from stablenew.gui.widgets import ScrollFrame

WIDTH = 720  # pixels at 1x; the height is what the form needs
APPLIES = "Changes apply the next time StableNew starts."


def split_command(text: str) -> list[str] | None:
    """A launch command as typed (quoted like a shell would) -> its arguments; empty: None."""
    text = text.strip()
    if not text:
        return None
    return shlex.split(text, posix=sys.platform != "win32")


class SettingsDialog(tk.Toplevel):
    def __init__(
        self,
        master: tk.Misc,
        theme: Theme,
        ui: UiDispatcher,
        home: Path,
        config: Config,
        on_saved: Callable[[Path], None],
    ) -> None:
        super().__init__(master)
        px = theme.px
        self.theme = theme
        self.ui = ui
        self.home = home
        self.loaded = config
        self.on_saved = on_saved
        self.title("StableNew settings")
        width = theme.fit(px(WIDTH), 0)[0]
        self.transient(master.winfo_toplevel())
        self.bind("<Escape>", lambda _e: self.destroy())
        self.vars: dict[str, tk.StringVar] = {}
        self.entries: dict[str, ttk.Entry] = {}
        self._wrap = width - px(40)
        b = config.backend
        # The footer (errors, Cancel, Save) is packed first: when the screen is short it is the
        # form that gives way, never the buttons; and it scrolls then, so no field is cut.
        footer = ttk.Frame(self, padding=(px(10), 0, px(10), px(10)))
        footer.pack(side="bottom", fill="x")
        self.form_view = ScrollFrame(self)
        self.form_view.pack(fill="both", expand=True)
        body = ttk.Frame(self.form_view.interior, padding=px(10))
        body.pack(fill="both", expand=True)
        body.columnconfigure(0, weight=1)

        backend = ttk.LabelFrame(body, text="Backend", padding=px(8))
        backend.grid(row=0, column=0, sticky="ew")
        backend.columnconfigure(1, weight=1)
        self.mode = tk.StringVar(value=b.mode)
        self.vars["backend.mode"] = self.mode
        self.modes: dict[str, ttk.Radiobutton] = {}
        for row, (mode, text) in enumerate(
            (
                ("managed", "Managed: StableNew starts, watches and restarts it"),
                ("attached", "Attached: already running; StableNew only uses it"),
            )
        ):
            self.modes[mode] = ttk.Radiobutton(
                backend, text=text, variable=self.mode, value=mode, command=self._mode_changed
            )
            self.modes[mode].grid(row=row, column=0, columnspan=3, sticky="w")
        command = shlex.join(b.command) if b.command else ""
        self.command_entry = self._entry(backend, 2, "Command", "backend.command", command)
        ttk.Label(
            backend,
            text="Empty: the built-in reference backend (simulated images).",
            style="Note.TLabel",
        ).grid(row=3, column=1, columnspan=2, sticky="w")
        self.cwd = self._entry(backend, 4, "Working folder", "backend.cwd", b.cwd or "")
        ttk.Button(backend, text="Browse…", command=lambda: self._folder("backend.cwd")).grid(
            row=4, column=2, padx=(px(4), 0)
        )
        self._entry(backend, 5, "URL", "backend.url", b.url or "")
        ttk.Label(
            backend,
            text="Attached: required. Managed: only when the command sets a fixed port.",
            style="Note.TLabel",
        ).grid(row=6, column=1, columnspan=2, sticky="w")
        self._entry(backend, 7, "Username", "backend.username", b.username or "")
        self._entry(backend, 8, "Password", "backend.password", b.password or "", show="•")
        self._entry(
            backend, 9, "Start-up timeout (s)", "backend.startup_timeout", f"{b.startup_timeout:g}"
        )
        self.discover = tk.BooleanVar(value=b.discover)
        ttk.Checkbutton(
            backend,
            text="At start, look for an A1111 on 127.0.0.1:7860 and 7861",
            variable=self.discover,
        ).grid(row=10, column=0, columnspan=3, sticky="w", pady=(px(4), 0))
        test = ttk.Frame(backend)
        test.grid(row=11, column=0, columnspan=3, sticky="ew", pady=(px(4), 0))
        test.columnconfigure(1, weight=1)
        # Room for a two-line result from the start: a result that wrapped used to grow the
        # dialog and move the fields under the user's pointer.
        test.rowconfigure(0, minsize=2 * theme.body.metrics("linespace"))
        self.test_button = ttk.Button(test, text="Test connection", command=self.test_connection)
        self.test_button.grid(row=0, column=0, sticky="nw")
        self.test_result = ttk.Label(test, text="", wraplength=self._wrap - px(160))
        self.test_result.grid(row=0, column=1, sticky="nw", padx=(px(8), 0))

        output = ttk.LabelFrame(body, text="Output", padding=px(8))
        output.grid(row=1, column=0, sticky="ew", pady=(px(6), 0))
        output.columnconfigure(1, weight=1)
        self._entry(output, 0, "Folder", "output.root", config.output.root or "")
        ttk.Button(output, text="Browse…", command=lambda: self._folder("output.root")).grid(
            row=0, column=2, padx=(px(4), 0)
        )
        ttk.Label(output, text=f"Empty: {home / 'outputs'}", style="Note.TLabel").grid(
            row=1, column=1, columnspan=2, sticky="w"
        )

        limits = ttk.LabelFrame(body, text="Upscale limits", padding=px(8))
        limits.grid(row=2, column=0, sticky="ew", pady=(px(6), 0))
        lim = config.limits
        self._entry(
            limits, 0, "Largest result (MP)", "limits.max_upscale_megapixels",
            f"{lim.max_upscale_megapixels:g}", width=8,
        )  # fmt: skip
        ttk.Label(limits, text="When larger").grid(row=0, column=2, sticky="w", padx=(px(12), 0))
        self.vars["limits.on_oversize"] = tk.StringVar(value=lim.on_oversize)
        ttk.Combobox(
            limits,
            textvariable=self.vars["limits.on_oversize"],
            values=["scale_down", "refuse"],
            state="readonly",
            width=11,
        ).grid(row=0, column=3, sticky="w", padx=(px(4), 0))
        self._entry(limits, 1, "Tile size from", "limits.tile_min", str(lim.tile_min), width=8)
        ttk.Label(limits, text="to").grid(row=1, column=2, sticky="w", padx=(px(12), 0))
        self.vars["limits.tile_max"] = tk.StringVar(value=str(lim.tile_max))
        self.entries["limits.tile_max"] = ttk.Entry(
            limits, textvariable=self.vars["limits.tile_max"], width=8
        )
        self.entries["limits.tile_max"].grid(
            row=1, column=3, sticky="w", padx=(px(4), 0), pady=px(1)
        )

        # Global prompts: added to every job's prompts by the engine.
        self._entry(
            output, 2, "Global positive", "prompts.global_positive", config.prompts.global_positive
        )
        self._entry(
            output, 3, "Global negative", "prompts.global_negative", config.prompts.global_negative
        )

        footer.columnconfigure(0, weight=1)
        path = settings_file.config_path(home)
        self.note = ttk.Label(
            footer,
            text=f"Save writes {path} (readable only by you). {APPLIES}",
            style="Note.TLabel",
            wraplength=self._wrap,
        )
        self.note.grid(row=0, column=0, columnspan=3, sticky="w")
        self.error = ttk.Label(footer, text="", style="Failed.TLabel", wraplength=self._wrap)
        self.error.grid(row=1, column=0, columnspan=3, sticky="w")
        ttk.Button(footer, text="Cancel", command=self.destroy).grid(row=2, column=1, sticky="e")
        self.save_button = ttk.Button(
            footer, text="Save", command=self.save, style="Accent.TButton"
        )
        self.save_button.grid(row=2, column=2, sticky="e", padx=(px(4), 0))
        self._mode_changed()
        self.update_idletasks()
        # The dialog asks for the whole form; a screen too short for it gets a scrolling form.
        self.form_view.canvas.configure(height=self.form_view.interior.winfo_reqheight())
        self.update_idletasks()
        width, height = theme.fit(max(width, self.winfo_reqwidth()), self.winfo_reqheight())
        top = max(0, min(px(44), self.winfo_screenheight() - height))  # below the top bar
        self.geometry(f"{width}x{height}+{px(60)}+{top}")

    def _show(self, label: ttk.Label, text: str, style: str = "Failed.TLabel") -> None:
        """A message in the dialog; it grows downwards to show it, as far as the screen allows
        (then the form scrolls). Never upwards: the fields must stay under the user's pointer."""
        label.configure(text=text, style=style)
        self.update_idletasks()
        width, height, top = self.winfo_width(), self.winfo_height(), self.winfo_y()
        room = self.winfo_screenheight() - top
        wanted = max(height, min(self.winfo_reqheight(), room))
        if wanted != height:
            self.geometry(f"{width}x{wanted}+{self.winfo_x()}+{top}")

    # -- the form ------------------------------------------------------------------------------

    def _entry(
        self,
        box: ttk.LabelFrame,
        row: int,
        label: str,
        key: str,
        value: str,
        width: int = 30,
        **options: Any,
    ) -> ttk.Entry:
        px = self.theme.px
        ttk.Label(box, text=label).grid(row=row, column=0, sticky="w", padx=(0, px(8)))
        var = tk.StringVar(value=value)
        self.vars[key] = var
        entry = ttk.Entry(box, textvariable=var, width=width, **options)
        entry.grid(row=row, column=1, sticky="ew" if width >= 30 else "w", pady=px(1))
        self.entries[key] = entry
        return entry

    def _folder(self, key: str) -> None:
        folder = filedialog.askdirectory(parent=self, mustexist=False)
        if folder:
            self.vars[key].set(folder)

    def _mode_changed(self) -> None:
        state = "normal" if self.mode.get() == "managed" else "disabled"
        self.command_entry.configure(state=state)
        self.cwd.configure(state=state)

    def value(self, key: str) -> str:
        return str(self.vars[key].get()).strip()

    def form(self) -> dict[str, Any]:
        """The configuration as the form has it: the loaded one, with the edited keys."""
        data = self.loaded.model_dump()
        backend, output, limits = data["backend"], data["output"], data["limits"]
        backend["mode"] = self.value("backend.mode")
        try:
            backend["command"] = split_command(self.value("backend.command"))
        except ValueError as exc:  # an unclosed quote: named like every other key
            raise ValueError(f"backend.command: {exc}") from exc
        for key in ("cwd", "url", "username", "password"):
            backend[key] = self.value(f"backend.{key}") or None
        backend["startup_timeout"] = self.value("backend.startup_timeout")
        backend["discover"] = self.discover.get()
        output["root"] = self.value("output.root") or None
        for key in ("max_upscale_megapixels", "on_oversize", "tile_min", "tile_max"):
            limits[key] = self.value(f"limits.{key}")
        for key in ("global_positive", "global_negative"):
            data["prompts"][key] = self.value(f"prompts.{key}")
        return data

    def checked(self) -> Config | None:
        """The form as a valid configuration, or None with every problem shown by key."""
        try:
            config = settings_file.validate(self.form())
        except ValueError as exc:  # ConfigError is one; names each key
            self._show(self.error, f"Not saved: {exc}")
            return None
        self.error.configure(text="")
        return config

    # -- actions -------------------------------------------------------------------------------

    def test_connection(self) -> None:
        config = self.checked()
        if config is None:
            return
        b = config.backend
        auth = (b.username, b.password or "") if b.username else None
        self._show(self.test_result, "Testing…", "TLabel")
        self.test_button.configure(state="disabled")

        def work() -> Probe:
            if b.mode == "attached" or b.url:
                return discovery.probe(str(b.url), auth)
            return discovery.check_launch(b.command, b.cwd)

        def done(result: Probe) -> None:
            if self.winfo_exists():
                mark = "✓" if result.ok else "✗"
                style = "Done.TLabel" if result.ok else "Failed.TLabel"
                self._show(self.test_result, f"{mark} {result.message}", style)
                self.test_button.configure(state="normal")

        def failed(error: BaseException) -> None:
            if self.winfo_exists():
                self._show(self.test_result, f"✗ {error}")
                self.test_button.configure(state="normal")

        self.ui.run(work, done, failed)

    def save(self) -> None:
        config = self.checked()
        if config is None:
            return
        self.save_button.configure(state="disabled")
        self._show(self.error, "Saving…", "TLabel")

        def done(path: Path) -> None:
            self.on_saved(path)
            if self.winfo_exists():
                self.destroy()

        def failed(error: BaseException) -> None:
            if self.winfo_exists():
                self._show(self.error, f"Not saved: {error}")
                self.save_button.configure(state="normal")

        self.ui.run(lambda: settings_file.write(self.home, config), done, failed)
