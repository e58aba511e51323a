"""The event stream's fan-out: 50 SSE clients following a 500-image job. JSON out.

    python benchmarks/api_sse.py [--quick] [--out FILE]

A real `stablenew serve` runs a 500-image job (100 with --quick) on the reference backend at
zero latency, so events come as fast as the runner makes them. Measured side by side, in
alternating rounds: the job's run time with no client and with 50 clients connected (the
runner's overhead), and for every lifecycle event each client receives, the delivery lag from
the event's timestamp (made on the runner's thread) to its arrival at the client. The clients
run in this process on the same 2 cores as the server, so the overhead includes theirs.
Targets: p99 lag <= 250 ms; the job with 50 clients within 1.25x of the job with none.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

import httpx
from api_common import percentile, serving, wait_finished
from common import benchmark_main

CLIENTS = 50


class Clients:
    """`count` event-stream clients on one asyncio loop in a thread; records the lag of every
    lifecycle frame and counts them."""

    def __init__(self, url: str, count: int) -> None:
        self.url = url
        self.count = count
        self.lags: list[float] = []
        self.frames = [0] * count
        self.connected = threading.Event()
        self._stop = threading.Event()
        self._ready = 0
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)
        self._thread.start()
        if not self.connected.wait(60):
            raise TimeoutError("the clients did not connect")

    async def _main(self) -> None:
        tasks = [asyncio.create_task(self._client(n)) for n in range(self.count)]
        while not self._stop.is_set():
            await asyncio.sleep(0.05)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _client(self, n: int) -> None:
        """A lean client (plain asyncio streams, bytes scanning), so that what the benchmark
        measures is the server, not an HTTP library's parser sharing its two cores."""
        url = httpx.URL(self.url)
        reader, writer = await asyncio.open_connection(url.host, url.port)
        writer.write(
            f"GET /api/v1/events?progress=false HTTP/1.1\r\nHost: {url.host}\r\n\r\n".encode()
        )
        await writer.drain()
        await reader.readuntil(b"\r\n\r\n")  # the answer's head
        await reader.readuntil(b"retry: ")  # sent once the hub has registered this client
        self._ready += 1
        if self._ready == self.count:
            self.connected.set()
        data = b""
        try:
            while True:
                chunk = await reader.read(65536)
                if not chunk:
                    return
                now = time.time()
                data += chunk
                cut = data.rfind(b"\n\n")
                if cut < 0:
                    continue
                complete, data = data[: cut + 2], data[cut + 2 :]
                for frame in complete.split(b"\n\n"):
                    at = frame.find(b'"ts":"')
                    if (not frame.startswith(b"id: ") and b"\nid: " not in frame) or at < 0:
                        continue
                    stamp = frame[at + 6 : frame.index(b'"', at + 6)].decode()
                    self.lags.append(now - datetime.fromisoformat(stamp).timestamp())
                    self.frames[n] += 1
        finally:
            writer.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(30)


def one_job(client: httpx.Client, images: int) -> tuple[float, str]:
    spec = {"prompt": "fan-out", "steps": 1, "width": 64, "height": 64, "seed": 1}
    answer = client.post("/api/v1/jobs", json={"spec": {**spec, "images": images}})
    answer.raise_for_status()
    job_id = answer.json()["ids"][0]
    job = wait_finished(client, job_id)
    if job["status"] != "COMPLETED":
        raise RuntimeError(f"the job ended {job['status']}")
    started = datetime.fromisoformat(str(job["started_at"]).replace("Z", "+00:00"))
    finished = datetime.fromisoformat(str(job["finished_at"]).replace("Z", "+00:00"))
    return (finished - started).total_seconds(), job_id


def run(quick: bool) -> dict[str, object]:
    images = 100 if quick else 500
    rounds = 1 if quick else 3
    alone: list[float] = []
    watched: list[float] = []
    lags: list[float] = []
    frames_per_client: list[int] = []
    with (
        tempfile.TemporaryDirectory() as tmp,
        serving(Path(tmp) / "home") as url,
        httpx.Client(base_url=url, timeout=60) as client,
    ):
        one_job(client, 5)  # warm up: the backend's first call, the lists
        for _ in range(rounds):
            alone.append(one_job(client, images)[0])
            clients = Clients(url, CLIENTS)
            try:
                seconds, _ = one_job(client, images)
                watched.append(seconds)
                deadline = time.monotonic() + 30  # every client gets the job's last event
                while time.monotonic() < deadline and min(clients.frames) < max(clients.frames):
                    time.sleep(0.05)
            finally:
                clients.close()
            lags += clients.lags
            frames_per_client.append(min(clients.frames))
    lag_ms = [lag * 1000 for lag in lags]
    ratio = statistics.median(watched) / statistics.median(alone)
    return {
        "quick": quick,
        "images": images,
        "rounds": rounds,
        "clients": CLIENTS,
        "job_s": {
            "no_clients": [round(s, 3) for s in alone],
            "fifty_clients": [round(s, 3) for s in watched],
        },
        "overhead_ratio": round(ratio, 3),
        "events_per_client_per_job": frames_per_client,
        "lag_ms": {
            "p50": round(percentile(lag_ms, 0.50), 2),
            "p99": round(percentile(lag_ms, 0.99), 2),
            "max": round(max(lag_ms, default=0.0), 2),
            "frames": len(lag_ms),
        },
        "targets": {"lag_ms.p99": "<= 250", "overhead_ratio": "<= 1.25"},
    }


if __name__ == "__main__":
    benchmark_main(lambda args: run(args.quick), __doc__)
