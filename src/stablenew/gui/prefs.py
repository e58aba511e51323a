"""Window geometry and the last compose settings, remembered between sessions."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from stablenew import private_files

log = logging.getLogger("stablenew.gui")


class Prefs:
    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            self.data = {}

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)

    def set(self, key: str, value: Any) -> None:
        self.data[key] = value

    def save(self) -> None:
        try:
            # It keeps the last prompt: owner-only, whoever made the home.
            private_files.write(self.path, json.dumps(self.data, indent=2).encode("utf-8"))
        except OSError as exc:  # losing preferences must never block closing the window
            log.warning("could not save GUI preferences to %s: %s", self.path, exc)
