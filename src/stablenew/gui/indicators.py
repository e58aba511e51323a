"""Check boxes and radio buttons at the display's scaling.

sv_ttk draws their indicators with 20 px images in elements fixed at 26 px wide, and Tk scales
neither: at 2x they stayed 1x next to 2x text. Here the images are redrawn from their 1x
originals in place, and each theme gets indicator elements as wide as the scaled images."""

from __future__ import annotations

import math
import re
import tkinter as tk
from collections.abc import Callable

THEMES = {"sun-valley-light": "sv_light", "sun-valley-dark": "sv_dark"}  # theme -> namespace
WIDTH = 26  # pixels at 1x: sv_ttk's indicator elements
PADDING = 4  # pixels at 1x: sv_ttk's padding of both widgets
# sv_ttk 2.5's state -> image maps (the same in both themes), the first entry the default.
CHECK = (
    ("", "check-unsel-rest"),
    ("alternate disabled", "check-tri-dis"),
    ("selected disabled", "check-dis"),
    ("disabled", "check-unsel-dis"),
    ("pressed alternate", "check-tri-hover"),
    ("active focus alternate", "check-tri-focus-hover"),
    ("active alternate", "check-tri-hover"),
    ("focus alternate", "check-tri-focus"),
    ("alternate", "check-tri-rest"),
    ("pressed selected", "check-hover"),
    ("active focus selected", "check-focus-hover"),
    ("active selected", "check-hover"),
    ("focus selected", "check-focus"),
    ("selected", "check-rest"),
    ("pressed !selected", "check-unsel-pressed"),
    ("active focus", "check-unsel-focus-hover"),
    ("active", "check-unsel-hover"),
    ("focus", "check-unsel-focus"),
)
RADIO = (
    ("", "radio-unsel-rest"),
    ("selected disabled", "radio-dis"),
    ("disabled", "radio-unsel-dis"),
    ("pressed selected", "radio-pressed"),
    ("active focus selected", "radio-focus-hover"),
    ("active selected", "radio-hover"),
    ("focus selected", "radio-focus"),
    ("selected", "radio-rest"),
    ("pressed !selected", "radio-unsel-pressed"),
    ("active focus", "radio-unsel-focus-hover"),
    ("active", "radio-unsel-hover"),
    ("focus", "radio-unsel-focus"),
)
WIDGETS = (("Checkbutton", CHECK), ("Radiobutton", RADIO))


def scale(root: tk.Tk, factor: float, px: Callable[[float], int]) -> None:
    """Draw both themes' indicators at `factor` (a multiple of a quarter); at 1x they are the
    theme's own. Applying it again (a change of theme) draws them from the originals again."""
    if factor == 1:
        return
    width = px(WIDTH)
    for theme, namespace in THEMES.items():
        names = set(root.tk.splitlist(_in(root, theme, "ttk::style element names")))
        script = []
        for widget, states in WIDGETS:
            element = f"Scaled{width}.{widget}.indicator"
            if element not in names:
                spec = " ".join(
                    f"{{{state}}} {image}" if state else image
                    for state, image in (
                        (s, _scaled(root, namespace, i, factor)) for s, i in states
                    )
                )
                script.append(
                    f"ttk::style element create {element} image [list {spec}] "
                    f"-width {width} -sticky w"
                )
            layout = _in(root, theme, f"ttk::style layout T{widget}")
            layout = re.sub(rf"[\w.]*{widget}\.indicator", element, layout)
            script.append(f"ttk::style layout T{widget} {{{layout}}}")
            script.append(f"ttk::style configure T{widget} -padding {px(PADDING)}")
        _in(root, theme, "\n".join(script))


def _in(root: tk.Tk, theme: str, script: str) -> str:
    """`script` run with `theme` as the one that styles and elements are defined in."""
    return str(root.tk.eval(f"ttk::style theme settings {theme} {{{script}}}"))


def _scaled(root: tk.Tk, namespace: str, name: str, factor: float) -> str:
    """The theme's image `name`, redrawn at `factor` from its 1x original (kept aside)."""
    tk_ = root.tk
    image = str(tk_.eval(f"set ::ttk::theme::{namespace}::I({name})"))
    original = f"stablenew_1x_{namespace}_{name}"
    if original not in tk_.splitlist(tk_.call("image", "names")):
        tk_.call("image", "create", "photo", original)
        tk_.call(original, "copy", image)
    zoom, subsample = round(factor * 4), 4  # Tk zooms and subsamples by whole numbers
    common = math.gcd(zoom, subsample)
    zoomed = f"stablenew_zoomed_{namespace}_{name}"
    tk_.call("image", "create", "photo", zoomed)
    tk_.call(zoomed, "copy", original, "-zoom", zoom // common)
    tk_.call(image, "blank")
    tk_.call(image, "configure", "-width", 0, "-height", 0)  # sized by what is copied in
    tk_.call(image, "copy", zoomed, "-subsample", subsample // common)
    tk_.call("image", "delete", zoomed)
    return image
