"""Start the reference backend: A1111-shaped boot lines, a pre-bound socket, uvicorn.

The socket is bound before uvicorn starts so `--port 0` works: the real port is printed in the
`Running on local URL:` line, which is how a supervisor (or a test) learns where to connect.
"""

from __future__ import annotations

import socket
import sys
import threading
import time

import uvicorn

from stablenew.webui_sim.backend import SimBackend, SimConfig
from stablenew.webui_sim.output import err, say
from stablenew.webui_sim.server import create_app


def serve(
    config: SimConfig,
    host: str = "127.0.0.1",
    port: int = 7861,
    slow_start: float = 0.0,
    fail_start: bool = False,
) -> int:
    started = time.monotonic()
    say(f"Launching API server with arguments: {' '.join(sys.argv[1:])}")
    if fail_start:
        err("RuntimeError: simulated start-up failure (fail_start)")
        return 1
    if slow_start > 0:
        time.sleep(slow_start)

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY on accepted connections only when the
    # listening socket says it is TCP; without it every response waits ~40 ms (Nagle).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        err(f"ERROR: cannot bind {host}:{port}: {exc}")
        return 1
    sock.listen(128)
    actual_port = sock.getsockname()[1]

    backend = SimBackend(config)
    app = create_app(backend)
    # Like A1111, the model loads in the background: the API answers at once, generation waits.
    backend.queue_lock.acquire()

    def load_model() -> None:
        try:
            backend.load_locked(backend.checkpoints[0])
        finally:
            backend.queue_lock.release()

    threading.Thread(target=load_model, name="model-load", daemon=True).start()
    say(f"Startup time: {time.monotonic() - started:.1f}s (import torch: 0.0s).")
    say(f"Running on local URL:  http://{host}:{actual_port}")

    server = uvicorn.Server(
        uvicorn.Config(
            app,
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=1,
            timeout_keep_alive=30,
        )
    )
    try:
        server.run(sockets=[sock])
    finally:
        # Frees calls stuck in a hang fault so no worker thread outlives the server.
        backend.shutdown.set()
    return 0
