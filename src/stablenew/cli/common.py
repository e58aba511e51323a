"""What the commands share: the home folder, the configuration, errors, exit codes and the
options several commands declare the same way.

Every command acts through the controllers (`Services.jobs`, `.backend`, `.intents`); an error
StableNew raises on purpose reaches the user as one readable line with the exit code of its kind
(`cli.main` prints it).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn

import typer

from stablenew.app.config import Config, home_dir, load_config, service_config
from stablenew.app.services import Services
from stablenew.cli.output import out
from stablenew.errors import (
    BackendAuthRejected,
    BackendStartError,
    HomeOwnedError,
    InputError,
    QueueError,
    StableNewError,
)
from stablenew.jobs.status import JobStatus

# Exit codes (also in the README): 0 all completed, 1 something failed, 2 bad input or the home
# is owned by another process (nothing was done), 3 the backend did not start (or refused the
# credentials), 130 interrupted, 143 stopped by SIGTERM/SIGHUP.
EXIT_FAILED, EXIT_INPUT, EXIT_BACKEND, EXIT_INTERRUPTED, EXIT_TERMINATED = 1, 2, 3, 130, 143

# Priorities are ordinary integers; the bound keeps a typo from overflowing SQLite's integers.
PRIORITY_LIMIT = 1_000_000


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
    if isinstance(exc, BackendStartError | BackendAuthRejected):
        return EXIT_BACKEND  # the backend cannot be used: nothing ran
    return EXIT_FAILED


def fail(message: str, code: int = EXIT_FAILED, kind: str = "UsageError") -> NoReturn:
    out.error(message, code, kind)
    raise typer.Exit(code)


# -- options several commands share ------------------------------------------------------------


def json_option() -> Any:
    return typer.Option(False, "--json", help="Print one JSON document instead of text.")


def backend_option() -> Any:
    return typer.Option(
        None,
        metavar="URL",
        help="Attach to a running A1111-compatible backend at this URL instead of the "
        "configured one.",
    )


def stages_option() -> Any:
    return typer.Option(
        None, metavar="LIST", help="Stage chain, e.g. txt2img,img2img,adetailer,upscale."
    )


def images_option() -> Any:
    return typer.Option(None, min=1, metavar="N", help="Images per prompt.")


def seed_option() -> Any:
    return typer.Option(None, metavar="SEED", help="Seed of the first image (-1: random).")


def priority_option() -> Any:
    return typer.Option(
        0,
        min=-PRIORITY_LIMIT,
        max=PRIORITY_LIMIT,
        metavar="N",
        help="Higher runs first.",
    )


def status_option(what: str) -> Any:
    return typer.Option(
        None,
        metavar="STATUS",
        help=f"Only {what} in this status: {', '.join(s.value for s in JobStatus)} "
        "(repeat it or separate with commas).",
    )


def statuses(values: list[str] | None) -> list[JobStatus] | None:
    """`--status failed --status cancelled` or `--status failed,cancelled`, checked."""
    if not values:
        return None
    names = [n.strip().upper() for v in values for n in v.split(",") if n.strip()]
    try:
        return [JobStatus(n) for n in names]
    except ValueError:
        fail(f"--status: choose from {', '.join(s.value for s in JobStatus)}", EXIT_INPUT)


# -- signals -----------------------------------------------------------------------------------


class StoppedWhileStarting(BaseException):
    """SIGTERM or SIGHUP before the backend was up: leave at once (exit 143), as Ctrl+C then
    leaves with 130. A BaseException, like KeyboardInterrupt, so no `except Exception` on the
    way up swallows it."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def give_up_starting(signum: int) -> NoReturn:
    """From a signal handler while the backend starts: unwind out of the start."""
    if signum == signal.SIGINT:
        raise KeyboardInterrupt
    raise StoppedWhileStarting(signum)


def set_from_signal(event: threading.Event) -> None:
    """Set `event` from a signal handler. `Event.set` takes the event's lock, which the main
    thread may hold at the very moment it is interrupted (inside its own `event.wait`): set there,
    it deadlocks and the process ignores every later signal. A thread sets it instead, once the
    interrupted main thread has let go."""
    threading.Thread(target=event.set, name="signal-wake", daemon=True).start()


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


def backends_note(services: Services) -> str:
    """Where the backends answer, for a banner: 'backend: URL' for one, every backend of a pool
    by name with its URL or why it is not up (URLs masked: a `user:pass@` stays out of logs)."""
    if len(services.backends) == 1:
        return f"backend: {services.backend.shown_url or services.backend.state.value.lower()}"
    shown = []
    for b in services.backends:
        failed = services.start_failures.get(b.name, "").splitlines()
        where = b.shown_url or ("did not start: " + failed[0] if failed else b.state.value.lower())
        shown.append(f"{b.name} {where}")
    return "backends: " + ", ".join(shown)
