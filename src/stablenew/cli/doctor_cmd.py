"""`stablenew doctor`: every part a job depends on, checked, with a verdict each."""

from __future__ import annotations

import typer

from stablenew.app.doctor import diagnose
from stablenew.cli.common import backend_option, json_option
from stablenew.cli.output import out


def doctor(
    ctx: typer.Context,
    backend: str | None = backend_option(),
    timeout: float = typer.Option(
        10.0, min=0.1, metavar="SECONDS", help="Seconds an attached backend has to answer."
    ),
    json_out: bool = json_option(),
) -> None:
    """Check the configuration, the job database, the disks and the backend, each with a clear
    verdict; exit 1 if any check fails. On a home another process owns it only reads: it never
    starts or stops anything."""
    out.json = json_out
    checks = []
    for check in diagnose(ctx.obj.home, ctx.obj.config(), backend, timeout):
        checks.append(check)
        if not out.json:  # one at a time: a slow backend start shows the earlier verdicts
            mark = ("ok  ", "green") if check.ok else ("FAIL", "bold red")
            out.line(mark, f" {check.name}: {check.detail}")
    ok = all(c.ok for c in checks)
    if out.json:
        records = [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in checks]
        out.document("checks", records, ok=ok)
    raise typer.Exit(0 if ok else 1)
