"""What the window does about the backend: start (own the home, or attach to its owner), say
what the backend is, offer an A1111 found on this machine, Settings, Start/Restart and the
output tail. A window attached to another process's backend never starts or restarts it."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from stablenew.app import discovery, settings_file
from stablenew.app.config import Config
from stablenew.app.discovery import Probe
from stablenew.app.services import Role
from stablenew.errors import StableNewError
from stablenew.gui.backend_view import BackendFacts
from stablenew.gui.settings_dialog import APPLIES, SettingsDialog
from stablenew.jobs.status import BackendState

if TYPE_CHECKING:
    from stablenew.gui.window import MainWindow

STARTING = "Starting the backend…"


class BackendActions:
    def __init__(self, window: MainWindow) -> None:
        self.w = window

    def start(self) -> None:
        """Own the home (the runner and the backend), or attach to its owner, off the Tk thread."""
        self.w.ui.run(self._owner_pid, self._open)

    def _owner_pid(self) -> int | None:
        owner = self.w.services.owner()
        return owner.pid if owner is not None else None

    def _open(self, owner_pid: int | None) -> None:
        # Said before opening, which takes a while either way: a window that will attach to
        # another process starts no backend and must not say it does.
        self.w.say(STARTING if owner_pid is None else f"Attaching to the owner pid {owner_pid}…")
        self.w.ui.run(self.w.services.open, self._opened, self._not_started)

    def _not_started(self, error: BaseException) -> None:
        self.w.failed("Backend start")(error)
        self.w.ui.run(self.read_facts, self.show_facts)  # the top bar still names it

    def _opened(self, role: Role) -> None:
        if role == Role.CLIENT:
            self.w.ui.run(self.read_facts, self._attached)
        else:
            if self.w.message.full_text == STARTING:  # a click's answer since then stays
                self.w.say("Backend ready. Write a prompt, then Ctrl+Enter queues it.")
            self.w.refresh_pool()  # the loaded model is known only once the pool runs
            if self.w.discover:
                self.w.ui.run(self._discover, self._found)

    def _attached(self, facts: BackendFacts) -> None:
        self.show_facts(facts)
        self.w.say(
            f"Attached to the owner pid {facts.owner_pid}: it runs the queue and the backend; "
            "jobs queued here run there."
        )

    def _discover(self) -> list[Probe]:
        if not settings_file.discovery_wanted(settings_file.read(self.w.home)):
            return []
        return discovery.discover()

    def _found(self, found: list[Probe]) -> None:
        if found and not self.w.closing:
            self.w.offer.offer(found[0])
            self.w.offer.grid(row=1, column=0, sticky="ew")

    def use_found(self, found: Probe) -> None:
        url = str(found.url)

        def work() -> Path:
            data = settings_file.read(self.w.home).model_dump()
            data["backend"].update(mode="attached", url=url)
            return settings_file.write(self.w.home, settings_file.validate(data))

        self.w.offer.dismiss()
        self.w.ui.run(
            work,
            lambda path: self.w.say(
                f"Saved to {path}: StableNew uses {url} from its next start "
                "(close and open it again)."
            ),
            self.w.failed("Saving the backend"),
        )

    def never_discover(self) -> None:
        def work() -> Path:
            data = settings_file.read(self.w.home).model_dump()
            data["backend"]["discover"] = False
            return settings_file.write(self.w.home, settings_file.validate(data))

        self.w.offer.dismiss()
        self.w.ui.run(
            work,
            lambda path: self.w.say(f"No more looking for an A1111 at start (saved to {path})."),
            self.w.failed("Saving the setting"),
        )

    def open_settings(self) -> None:
        def opened(config: Config) -> None:
            SettingsDialog(self.w.root, self.w.theme, self.w.ui, self.w.home, config, self._saved)

        def unreadable(error: BaseException) -> None:
            self.w.say(f"{error}: the dialog starts from the defaults.")
            opened(Config())

        self.w.ui.run(lambda: settings_file.read(self.w.home), opened, unreadable)

    def _saved(self, path: Path) -> None:
        self.w.say(f"Settings saved to {path}. {APPLIES}")

    def start_backend(self) -> None:
        if self.w.services.role == Role.CLIENT:
            self.w.say("The backend belongs to the home's owner: this window does not start it.")
            return
        self.w.say(STARTING)
        self.w.ui.run(
            self.w.services.backend.start,
            lambda _url: self._answering("started"),
            self.w.failed("Backend start"),
        )

    def restart_backend(self) -> None:
        if self.w.services.role == Role.CLIENT:
            self.w.say("The backend belongs to the home's owner: this window does not restart it.")
            return
        self.w.say("Restarting the backend…")
        self.w.ui.run(
            self.w.services.backend.restart,
            lambda _url: self._answering("restarted"),
            self.w.failed("Backend restart"),
        )

    def _answering(self, how: str) -> None:
        """The end of a Start or Restart click: its "…" line must not stay for good."""
        self.w.say(f"Backend {how}: it answers at {self.w.services.backend.shown_url}.")
        # Its restart count is known only now, after READY was shown; its output is new.
        self.w.refresh_pool()
        self.refresh_tail()

    def refresh_tail(self) -> None:
        if self.w.services.role == Role.CLIENT:
            self.w.backend.show_tail({"owner": "The backend's output is in the owner's logs."})
            return
        self.w.ui.run(self.w.services.backend.tail, self.w.backend.show_tail)

    def read_facts(self) -> BackendFacts:
        """Off the Tk thread: what the backend is, asked of it."""
        backend = self.w.services.backend
        owner = backend.owner() if self.w.services.role == Role.CLIENT else None
        url = owner.backend_url if owner is not None else (backend.shown_url or backend.meant_url)
        reference: bool | None = None
        # Only what answers can say what it is: a backend still starting (a take-over) answers
        # nothing, which read as "not the reference backend".
        if owner is not None or backend.state == BackendState.READY:
            try:
                reference = backend.reference_version() is not None
            except StableNewError:  # the owner has not published its backend yet
                reference = None
        return BackendFacts(reference, url, backend.managed, owner.pid if owner else None)

    def show_facts(self, facts: BackendFacts) -> None:
        self.w.facts = facts
        self.w.show_backend_text(facts.describe())
        self.w.backend.show_facts(facts)
