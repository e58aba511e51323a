"""The one way the commands print: it knows a terminal from a pipe from `--json`.

- A terminal gets colour and tables (rich), sized to the window.
- A pipe or a file gets plain lines: no colour, no boxes, no progress bars, never wrapped, so
  a long path or error line reaches a log or `grep` whole.
- `--json` gets one JSON document on stdout, `{"schema": 1, <key>: ...}`, and errors as
  `{"schema": 1, "error": {...}}` on stderr.

Text that comes from a user (prompts, paths, reasons) is never read as rich markup or emoji
codes: cells and lines are `rich.text.Text`, so `[bold]` and `:smile:` print as typed.
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Iterable, Sequence
from typing import Any, TextIO

from rich.console import Console, RenderableType
from rich.table import Table
from rich.text import Text

from stablenew import redact
from stablenew.app.views import SCHEMA

# A piece of a line: plain text, or (text, rich style) that only a terminal shows styled.
Part = str | tuple[str, str]


# Every line and table cell passes the redactor: a backend URL with `user:pass@`, a launch
# command or a library's error may carry a credential, whichever command prints it.


def _text(parts: Sequence[Part]) -> Text:
    text = Text()
    for part in parts:
        if isinstance(part, tuple):
            text.append(redact.text(part[0]), style=part[1])
        else:
            text.append(redact.text(part))
    return text


def _plain(parts: Sequence[Part]) -> str:
    return redact.text("".join(p[0] if isinstance(p, tuple) else p for p in parts))


class Output:
    """Where a command's words go. `json` is set by the command from its `--json` flag."""

    def __init__(self, stdout: TextIO | None = None, stderr: TextIO | None = None) -> None:
        self._stdout = stdout
        self._stderr = stderr
        self.json = False
        self.stream = False  # NDJSON: every document on one line (`run --json-events`)
        # Re-entrant: a signal handler may print while the main thread is printing.
        self._lock = threading.RLock()
        self._consoles: dict[int, Console] = {}

    @property
    def stdout(self) -> TextIO:
        return self._stdout or sys.stdout

    @property
    def stderr(self) -> TextIO:
        return self._stderr or sys.stderr

    @property
    def tty(self) -> bool:
        """A person watches stdout (not `--json`): colour, tables and live progress."""
        return not self.json and _isatty(self.stdout)

    def console(self, stderr: bool = False) -> Console:
        """A rich console on stdout (or stderr) that reads no markup and no emoji codes."""
        stream = self.stderr if stderr else self.stdout
        console = self._consoles.get(id(stream))
        if console is None:
            console = Console(file=stream, highlight=False, emoji=False, markup=False)
            self._consoles[id(stream)] = console
        return console

    # -- lines ---------------------------------------------------------------------------------

    def line(self, *parts: Part) -> None:
        """One line of results on stdout (styled parts only styled on a terminal)."""
        self._write(self.stdout, parts)

    def note(self, *parts: Part) -> None:
        """A line for the person, not the data: stderr, so stdout stays parseable."""
        self._write(self.stderr, parts)

    def warn(self, message: str) -> None:
        self.note(("warning: ", "yellow"), redact.text(message))

    def _write(self, stream: TextIO, parts: Sequence[Part]) -> None:
        with self._lock:
            if _isatty(stream):
                self.console(stream is self.stderr).print(_text(parts), soft_wrap=True)
            else:
                stream.write(_plain(parts) + "\n")
                stream.flush()

    def render(self, renderable: RenderableType) -> None:
        """A rich renderable (a table) on a terminal; only call when `tty`."""
        with self._lock:
            self.console().print(renderable)

    def table(
        self,
        columns: Sequence[str],
        rows: Iterable[Sequence[Part]],
        title: str | None = None,
    ) -> None:
        """Rows of cells: a table on a terminal, tab-separated lines (header first) in a pipe.
        Nothing is cut: a long cell folds on a terminal and stays whole in a pipe."""
        if not self.tty:
            self.line("\t".join(columns))
            for row in rows:
                self.line("\t".join(_one_line(_plain([c])) for c in row))
            return
        table = Table(title=title, title_justify="left")
        for column in columns:
            table.add_column(column, overflow="fold")
        for row in rows:
            table.add_row(*(_text([c]) for c in row))
        self.render(table)

    # -- JSON ----------------------------------------------------------------------------------

    def document(self, key: str, data: Any, **extra: Any) -> None:
        """The one JSON document of a command: `{"schema": 1, key: data, ...extra}`."""
        indent = None if self.stream else 2
        document = dumps({"schema": SCHEMA, key: data, **extra}, indent=indent)
        self.stdout.write(redact.text(document) + "\n")
        self.stdout.flush()

    def ndjson(self, key: str, data: Any, **extra: Any) -> None:
        """One document per line (a stream of events)."""
        with self._lock:
            self.stdout.write(redact.text(dumps({"schema": SCHEMA, key: data, **extra})) + "\n")
            self.stdout.flush()

    def error(self, message: str, code: int, kind: str) -> None:
        """An error on stderr: one readable line (more lines only if the message has them),
        or the JSON error document."""
        message = redact.text(message)
        if self.json:
            error = {"type": kind, "message": message, "exit_code": code}
            self.stderr.write(dumps({"schema": SCHEMA, "error": error}) + "\n")
            self.stderr.flush()
            return
        first, *rest = message.splitlines() or [""]
        self.note(("error: ", "bold red"), first)
        for line in rest:
            self.note(line)


def dumps(data: Any, indent: int | None = None) -> str:
    return json.dumps(data, indent=indent, ensure_ascii=False, default=str)


def _one_line(cell: str) -> str:
    # A tab or newline inside a cell would break the row apart for `cut` and `awk`.
    return cell.replace("\t", " ").replace("\r", " ").replace("\n", " ")


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


out = Output()
