"""The look, at any display scaling: the Sun Valley theme (light or dark, following the OS
unless the user chose), fonts and sizes that follow the screen's scaling, and the default window
size.

Tk scales point sizes by `tk scaling` (pixels per point: 1.33 at 96 dpi, 2.0 at Windows' 150%),
but the theme's fonts are in pixels and every size a widget is given in pixels stays as it is.
So the theme's fonts are rescaled here, and every pixel size in the app goes through `px()`:
the same layout at 1x on 1366x768 and at 2x on 2732x1536.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tkinter as tk
import tkinter.font as tkfont
from dataclasses import dataclass
from tkinter import ttk

import sv_ttk

from stablenew.gui import indicators

BASE_SCALING = 96 / 72  # Tk's pixels per point on a 96 dpi screen: what the theme is drawn for
DEFAULT_SIZE = (1366, 768)  # the window at 1x; scaled with the display
MIN_SIZE = (1100, 640)
THEMES = ("system", "light", "dark")  # what the user chooses; "system" follows the OS
SCALES = ("auto", "1", "1.5", "2")  # the display scaling, or the user's own
# Colours drawn by the app itself (canvas items, status labels), per theme.
PALETTES = {
    "light": {
        "text": "#1c1c1c",
        "muted": "#9e9e9e",
        "note": "#5f6368",
        "accent": "#0b57d0",
        "done": "#2e7d32",
        "failed": "#c62828",
        "disabled": "#8a8a8a",
        "banner": "#fff4ce",
        "tip": "#ffffe1",
    },
    "dark": {
        "text": "#fafafa",
        "muted": "#6b6b6b",
        "note": "#a8acb0",
        "accent": "#7ab4ff",
        "done": "#81c784",
        "failed": "#ef6f6c",
        "disabled": "#8a8a8a",
        "banner": "#433519",
        "tip": "#2b2b2b",
    },
}
# The theme's own fonts, in pixels at 1x (sv_ttk's sv.tcl)
THEME_FONTS = {
    "SunValleyCaptionFont": 12,
    "SunValleyBodyFont": 14,
    "SunValleyBodyStrongFont": 14,
    "SunValleyBodyLargeFont": 18,
    "SunValleySubtitleFont": 20,
    "SunValleyTitleFont": 28,
    "SunValleyTitleLargeFont": 40,
    "SunValleyDisplayFont": 68,
}


@dataclass(frozen=True)
class Theme:
    root: tk.Tk
    scale: float  # 1.0 at 96 dpi, in steps of a quarter

    def px(self, pixels: float) -> int:
        """A size in pixels at 1x, at this display's scaling."""
        return round(pixels * self.scale)

    @property
    def body(self) -> tkfont.Font:
        return tkfont.nametofont("SunValleyBodyFont", root=self.root)

    @property
    def heading(self) -> tkfont.Font:
        return tkfont.nametofont("SunValleyCaptionFont", root=self.root)

    @property
    def strong(self) -> tkfont.Font:
        return tkfont.nametofont("StableNewStrong", root=self.root)

    def default_geometry(self) -> str:
        width, height = self.fit(self.px(DEFAULT_SIZE[0]), self.px(DEFAULT_SIZE[1]))
        return f"{width}x{height}+0+0"

    def fit(self, width: int, height: int) -> tuple[int, int]:
        """A window size no larger than the screen."""
        return (
            min(width, self.root.winfo_screenwidth()),
            min(height, self.root.winfo_screenheight()),
        )

    def min_size(self) -> tuple[int, int]:
        return self.fit(self.px(MIN_SIZE[0]), self.px(MIN_SIZE[1]))

    @property
    def name(self) -> str:
        """The theme in use now: "light" or "dark"."""
        return "dark" if ttk.Style(self.root).theme_use() == "sun-valley-dark" else "light"

    def colours(self) -> dict[str, str]:
        return PALETTES[self.name]


def dpi_aware() -> None:
    """On Windows, draw at the display's real resolution (not bitmap-stretched by Windows):
    call before the first window. Elsewhere Tk already is."""
    if sys.platform == "win32":
        import contextlib
        import ctypes

        with contextlib.suppress(AttributeError, OSError):
            ctypes.windll.shcore.SetProcessDpiAwareness(2)  # per-monitor


def os_prefers_dark() -> bool:
    """Whether the desktop asks for dark windows (Windows, macOS, GNOME/GTK); light if unknown."""
    forced = os.environ.get("STABLENEW_OS_THEME")  # tests and odd desktops say it outright
    if forced in ("light", "dark"):
        return forced == "dark"
    try:
        if sys.platform == "win32":
            import winreg

            key = winreg.OpenKey(
                winreg.HKEY_CURRENT_USER,
                r"Software\Microsoft\Windows\CurrentVersion\Themes\Personalize",
            )
            return winreg.QueryValueEx(key, "AppsUseLightTheme")[0] == 0
        if sys.platform == "darwin":
            done = subprocess.run(
                ["defaults", "read", "-g", "AppleInterfaceStyle"],
                capture_output=True,
                text=True,
                timeout=2,
                check=False,
            )
            return done.stdout.strip().lower() == "dark"
        if ":dark" in os.environ.get("GTK_THEME", "").lower():
            return True
        if shutil.which("gsettings"):
            done = subprocess.run(
                ["gsettings", "get", "org.gnome.desktop.interface", "color-scheme"],
                capture_output=True,
                text=True,
                timeout=2,
                check=False,
            )
            return "dark" in done.stdout.lower()
    except (OSError, subprocess.SubprocessError):
        pass
    return False


def resolve(choice: str) -> str:
    """A user's choice ("system", "light", "dark") as the theme to draw."""
    if choice == "system":
        return "dark" if os_prefers_dark() else "light"
    return choice if choice in ("light", "dark") else "light"


def display_scale(root: tk.Misc) -> float:
    """How much larger than at 96 dpi everything must be drawn (1, 1.25, 1.5, ... 1 at least)."""
    scaling = float(root.tk.call("tk", "scaling"))
    return max(1.0, round(scaling / BASE_SCALING * 4) / 4)


def apply(root: tk.Tk, name: str = "light", scale: str = "auto") -> Theme:
    """Load the theme onto `root` ("system" follows the OS), with fonts, row heights and styles
    for this display's scaling, or the one the user chose (1, 1.5, 2)."""
    sv_ttk.set_theme(resolve(name), root)
    try:
        chosen = float(scale)
    except ValueError:
        chosen = 0.0
    theme = Theme(root, chosen if chosen >= 1 else display_scale(root))
    for font_name, size in THEME_FONTS.items():
        tkfont.nametofont(font_name, root=root).configure(size=-theme.px(size))
    body = theme.body
    # Tk's own named fonts (Text widgets, dialogs, menus) match the theme's body text.
    for font_name in ("TkDefaultFont", "TkTextFont", "TkMenuFont", "TkHeadingFont"):
        tkfont.nametofont(font_name, root=root).configure(size=-theme.px(14))
    tkfont.nametofont("TkFixedFont", root=root).configure(size=-theme.px(13))
    # Created in Tcl, not as a Python Font: that one deletes its font when it is collected.
    if "StableNewStrong" not in tkfont.names(root):
        root.tk.call("font", "create", "StableNewStrong")
    strong = tkfont.nametofont("StableNewStrong", root=root)
    strong.configure(**body.actual())
    strong.configure(weight="bold")
    style = ttk.Style(root)
    line = body.metrics("linespace")
    style.configure("Treeview", rowheight=line + theme.px(6))
    style.configure("Heading", padding=(theme.px(4), theme.px(2)))
    colours = theme.colours()
    style.configure("Active.TLabel", foreground=colours["accent"], font="StableNewStrong")
    style.configure("Done.TLabel", foreground=colours["done"])
    style.configure("Failed.TLabel", foreground=colours["failed"])
    style.configure("Disabled.TLabel", foreground=colours["disabled"])
    style.configure("Title.TLabel", font="StableNewStrong")
    style.configure("Note.TLabel", foreground=colours["note"])
    style.configure("Banner.TFrame", background=colours["banner"])
    style.configure("Banner.TLabel", background=colours["banner"], font="StableNewStrong")
    style.configure("Tip.TLabel", background=colours["tip"], padding=theme.px(4))
    style.configure("Section.TButton", font="StableNewStrong", anchor="w")
    style.configure("Small.TButton", padding=(theme.px(6), theme.px(1)))
    indicators.scale(root, theme.scale, theme.px)
    # Tk's own file and folder dialogs draw their list on a canvas that is always white, with
    # the palette's text colour: white on white in the dark theme. Their list text stays dark.
    for dialog in ("TkFDialog", "TkChooseDir"):
        root.option_add(f"*{dialog}*Canvas.foreground", "#1a1a1a", "interactive")
    return theme
