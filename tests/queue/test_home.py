"""The home's lock: one owner, whichever of its threads asks."""

from __future__ import annotations

import json
import threading
from pathlib import Path

from stablenew.queue.home import HomeLock


def test_the_owner_holds_the_home_in_every_thread(tmp_path: Path) -> None:
    home = HomeLock(tmp_path)
    assert home.try_acquire()
    seen: list[bool] = []

    def publish(name: str) -> None:  # a pool's backends get ready on their own threads
        seen.append(home.held)
        home.set_backend_urls({name: f"http://127.0.0.1:1/{name}"})

    worker = threading.Thread(target=publish, args=("gpu1",))
    worker.start()
    worker.join()
    assert seen == [True]
    info = json.loads((tmp_path / "owner.json").read_text())
    assert info["backend_urls"] == {"gpu1": "http://127.0.0.1:1/gpu1"}
    assert HomeLock(tmp_path).owner() is not None  # a second lock sees the owner

    closer = threading.Thread(target=home.release)  # a GUI may close from another thread
    closer.start()
    closer.join()
    other = HomeLock(tmp_path)
    assert other.owner() is None and other.try_acquire()
    other.release()
