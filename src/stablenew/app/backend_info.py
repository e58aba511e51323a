"""How a door names the backend it drives, so the simulator is never mistaken for a real one.

StableNew's own reference backend makes coloured noise, not pictures; every door that shows the
backend (GUI, `run`, `worker`, `doctor`) says so with the same words.
"""

from __future__ import annotations

from stablenew.app.controllers import BackendController
from stablenew.errors import StableNewError

REFERENCE = "reference backend (simulated images)"
A1111 = "A1111-compatible API"


def backend_kind(backend: BackendController) -> str | None:
    """REFERENCE or A1111 for a backend that answers; None when it cannot be asked."""
    try:
        return REFERENCE if backend.client().reference_version() else A1111
    except StableNewError:  # a client whose owner has not published its URL yet
        return None
