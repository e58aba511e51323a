"""A folder opened in the platform's file manager (Explorer, Finder, or the desktop's own)
through `click.launch`, with its outcome: `open_folder` returns once the opener has answered
and raises FolderNotOpened when it did not open the folder."""

from __future__ import annotations

import logging
import shutil
import sys
import threading
from pathlib import Path

import click

from stablenew.errors import FolderNotOpened

log = logging.getLogger("stablenew.gui")

OPENER = {"win32": "Explorer", "darwin": "open"}.get(sys.platform, "xdg-open")
# Some xdg-open set-ups run the file manager in the foreground: an opener still running after
# this long has opened the folder, and the caller's thread is not held for the file manager's life.
ANSWER_WITHIN_S = 5.0


def open_folder(folder: str) -> None:
    if not Path(folder).is_dir():
        raise FolderNotOpened(folder, "there is no such folder")
    # Without wait, click.launch answers 0 on Linux before xdg-open has even tried; macOS's
    # `open` and Windows' startfile answer when they have tried either way (and `open -W` would
    # wait for Finder to quit).
    wait = sys.platform not in ("darwin", "win32")
    if wait and shutil.which(OPENER) is None:  # click.launch would say only "1"
        raise FolderNotOpened(folder, f"{OPENER} is not installed (no file manager to ask)")
    answers: list[int] = []
    errors: list[BaseException] = []

    def launch() -> None:
        try:
            answers.append(click.launch(folder, wait=wait, locate=False))
        except Exception as exc:  # handed to the caller below, or logged if it came too late
            errors.append(exc)
            log.warning("opening %s failed: %s", folder, exc)

    opener = threading.Thread(target=launch, name="open-folder", daemon=True)
    opener.start()
    opener.join(ANSWER_WITHIN_S)
    if errors:
        raise FolderNotOpened(folder, f"{OPENER} could not be run: {errors[0]}") from errors[0]
    if answers and answers[0] != 0:
        raise FolderNotOpened(
            folder, f"{OPENER} exited with code {answers[0]} (is a file manager installed?)"
        )
