"""A StableNew worker process attached to a running backend, for kill -9 tests.

python -m tests.pipeline.worker HOME URL
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path

from stablenew.app.services import Services
from tests.pipeline.conftest import service_config

if __name__ == "__main__":
    services = Services(service_config(Path(sys.argv[1]), url=sys.argv[2]))
    services.start()
    print("WORKER STARTED", flush=True)
    threading.Event().wait()  # until killed
