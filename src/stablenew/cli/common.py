"""What the commands share: the home folder, the configuration, errors and exit codes.

Every command acts through the controllers (`Services.jobs`, `.backend`, `.intents`); an error
StableNew raises on purpose reaches the user as one readable line with the exit code of its kind.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from stablenew import redact
from stablenew.app.config import Config, home_dir, load_config, service_config
from stablenew.app.services import Services
from stablenew.errors import (
    BackendStartError,
    HomeOwnedError,
    InputError,
    QueueError,
    StableNewError,
)

console = Console(highlight=False)
errors = Console(stderr=True, highlight=False)

# Exit codes (also in the README): 0 all completed, 1 something failed, 2 bad input or the home
# is owned by another process (nothing was done), 3 the backend did not start, 130 interrupted,
# 143 stopped by SIGTERM/SIGHUP.
EXIT_FAILED, EXIT_INPUT, EXIT_BACKEND, EXIT_INTERRUPTED, EXIT_TERMINATED = 1, 2, 3, 130, 143


@dataclass
class Context:
    home_option: Path | None

    @property
    def home(self) -> Path:
        return home_dir(self.home_option)

    def config(self) -> Config:
        return load_config(self.home)

    def services(self, backend_url: str | None = None, output: Path | None = None) -> Services:
        return Services(
            service_config(self.home, self.config(), backend_url=backend_url, output=output)
        )


def exit_code(exc: StableNewError) -> int:
    if isinstance(exc, InputError | QueueError | HomeOwnedError):
        return EXIT_INPUT
    if isinstance(exc, BackendStartError):
        return EXIT_BACKEND
    return EXIT_FAILED


def fail(message: str, code: int = EXIT_FAILED) -> NoReturn:
    first, *rest = redact.text(message).splitlines() or [""]
    errors.print(f"[bold red]error:[/] {escape(first)}", soft_wrap=True)
    for line in rest:
        errors.print(escape(line), soft_wrap=True)
    raise typer.Exit(code)


def on_stop_signals(handler: Callable[[int], None]) -> Callable[[], None]:
    """SIGTERM and SIGHUP (a system shutdown, a closed terminal) call `handler(signum)`;
    returns a function that puts the previous handlers back."""

    def handle(signum: int, frame: FrameType | None) -> None:
        handler(signum)

    previous = {s: signal.signal(s, handle) for s in (signal.SIGTERM, signal.SIGHUP)}

    def restore() -> None:
        for s, h in previous.items():
            signal.signal(s, h)

    return restore
