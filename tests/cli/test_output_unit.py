"""The printing helper on a terminal (which a subprocess test cannot be): user text is shown as
typed, never read as rich markup or emoji codes."""

from __future__ import annotations

import io
import json
import re

from stablenew.cli.output import Output

TRICKY = "a cat :smile: [bold]not bold[/bold] [red]"
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _shown(stream: io.StringIO) -> str:
    return ANSI.sub("", stream.getvalue())


def test_a_terminal_gets_user_text_literally_in_lines_and_tables() -> None:
    screen = Terminal()
    out = Output(stdout=screen, stderr=screen)
    assert out.tty
    out.line(("prompt: ", "bold"), TRICKY)
    out.table(["prompt"], [[TRICKY]])
    out.error(f"no such pack: {TRICKY}", 2, "PackError")
    shown = _shown(screen)
    assert "😄" not in shown
    assert shown.count(":smile:") == 3 and shown.count("[bold]not bold[/bold]") == 3
    assert "error: no such pack: a cat :smile:" in shown


def test_a_pipe_gets_plain_tab_separated_rows() -> None:
    pipe = io.StringIO()
    out = Output(stdout=pipe, stderr=pipe)
    assert not out.tty
    out.table(["a", "b"], [["one\ttab", ("two\nlines", "red")]])
    assert pipe.getvalue() == "a\tb\none tab\ttwo lines\n"


def test_json_mode_prints_documents_and_json_errors() -> None:
    stdout, stderr = io.StringIO(), io.StringIO()
    out = Output(stdout=stdout, stderr=stderr)
    out.json = True
    assert not out.tty
    out.document("ids", ["x"], total=1)
    out.error("bad", 2, "InputError")
    assert json.loads(stdout.getvalue()) == {"schema": 1, "ids": ["x"], "total": 1}
    error = json.loads(stderr.getvalue())
    assert error == {"schema": 1, "error": {"type": "InputError", "message": "bad", "exit_code": 2}}
