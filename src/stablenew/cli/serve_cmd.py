"""`stablenew serve`: own the home and serve the HTTP API (FastAPI on uvicorn).

Like `worker`, it runs the JobRunner and the managed backend until SIGINT, SIGTERM or SIGHUP
(a running job is re-queued to resume, the backend is stopped).
`run`, `queue ...` and the GUI keep working as its clients.

The listening socket is bound before anything else starts, so a port in use is an error that
names it (exit 2) and `--port 0` knows its port before it prints `StableNew API: http://H:P`,
the line scripts wait for (flushed, also into a pipe).
"""

from __future__ import annotations

import contextlib
import errno
import signal
import socket
import threading
import time
from pathlib import Path
from types import FrameType

import typer
import uvicorn
from fastapi import FastAPI

from stablenew.api.app import context_of, create_app
from stablenew.api.security import Security, is_loopback, load_or_create_token
from stablenew.app.metrics import Metrics
from stablenew.cli.common import (
    EXIT_INPUT,
    backends_note,
    fail,
    give_up_starting,
    on_stop_signals,
    set_from_signal,
)
from stablenew.cli.output import out

STARTED_TIMEOUT = 30.0  # seconds for uvicorn to start serving on a socket it already has


def serve(
    ctx: typer.Context,
    host: str | None = typer.Option(
        None, metavar="HOST", help="Address to listen on (default: [server] host, 127.0.0.1)."
    ),
    port: int | None = typer.Option(
        None,
        min=0,
        max=65535,
        metavar="PORT",
        help="Port (default: [server] port, 7870; 0 picks a free one).",
    ),
) -> None:
    """Serve the HTTP API (docs at /docs) and run queued jobs until stopped (Ctrl+C, SIGTERM
    or SIGHUP). Off loopback every request needs the API token, kept in the home."""
    config = ctx.obj.config()
    home: Path = ctx.obj.home
    host = host or config.server.host
    port = config.server.port if port is None else port
    listener = bind(host, port)
    token_file = Path(config.server.token_file or home / "api_token")
    security = Security.for_bind(host, load_or_create_token(token_file), config.server.cors_origins)
    services = ctx.obj.services()
    services.config.callbacks = True  # agent-scheduler's callback_url, even with no [[webhooks]]

    stop = threading.Event()
    stopped_by = 0
    started = False

    def on_signal(signum: int, frame: FrameType | None = None) -> None:
        nonlocal stopped_by
        if not started:
            give_up_starting(signum)  # still starting the backend: give up on it now
        stopped_by = signum
        set_from_signal(stop)

    previous = signal.signal(signal.SIGINT, on_signal)
    restore = on_stop_signals(on_signal)
    server: uvicorn.Server | None = None
    thread: threading.Thread | None = None
    app: FastAPI | None = None
    try:
        services.start()
        started = True
        metrics = Metrics(services.jobs, services.backends)
        services.on_webhook_attempt = metrics.webhook_attempt
        app = create_app(services, security, metrics)
        server = uvicorn.Server(
            uvicorn.Config(
                app,
                log_level="warning",
                access_log=False,
                timeout_graceful_shutdown=3,
                server_header=False,
            )
        )
        # Off the main thread: uvicorn installs no signal handlers there; ours stop it.
        thread = threading.Thread(
            target=server.run, kwargs={"sockets": [listener]}, name="uvicorn", daemon=True
        )
        thread.start()
        deadline = time.monotonic() + STARTED_TIMEOUT
        while not server.started and thread.is_alive() and time.monotonic() < deadline:
            stop.wait(0.02)
        if not server.started:
            fail("the HTTP server did not start", 1, "ServeError")
        bound = listener.getsockname()[1]
        shown = f"[{host}]" if ":" in host else host
        out.line(f"StableNew API: http://{shown}:{bound}")
        out.note(
            f"API token: {token_file}"
            + ("" if security.token_required else " (not needed on loopback)")
        )
        out.note(f"docs: http://{shown}:{bound}/docs; {backends_note(services)}")
        stop.wait()
    finally:
        if server is not None and app is not None:
            context_of(app).hub.close()  # open event streams end now
            server.should_exit = True
        if thread is not None:
            thread.join(timeout=10)
        services.close()
        listener.close()
        signal.signal(signal.SIGINT, previous)
        restore()
    out.note(f"serve stopped ({signal.Signals(stopped_by).name})")


def bind(host: str, port: int) -> socket.socket:
    """The listening socket, bound now: a port in use is a clear error (exit 2)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        fail(f"--host {host}: cannot listen there ({exc.strerror})", EXIT_INPUT, "ServeError")
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family == socket.AF_INET6 and not is_loopback(host):
        with contextlib.suppress(OSError):  # "::" serves IPv4 too where the OS allows it
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    try:
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            fail(
                f"port {port} on {host} is in use (another program listens there)",
                EXIT_INPUT,
                "ServeError",
            )
        fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}", EXIT_INPUT, "ServeError")
    sock.setblocking(False)
    return sock
