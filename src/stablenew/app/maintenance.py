"""Looking after a home's files: rescuing a damaged job database."""

from __future__ import annotations

from pathlib import Path

from stablenew.queue.salvage import SalvageReport, salvage


def recover_database(home: Path) -> SalvageReport:
    """Keep every job a damaged jobs.db still holds; the damaged file is set aside."""
    return salvage(home / "jobs.db", home)
