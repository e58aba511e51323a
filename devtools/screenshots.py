"""The README's screenshots of the desktop app and the web UI, regenerated from the real flow.

    python -m devtools.screenshots [OUT_DIR]      (default docs/screenshots)

Runs `tests/gui/test_screenshots.py`: the real app on a virtual display (Xvfb) against the
reference backend, driven by real pointer clicks and key presses (xdotool), through a running
job with its live preview, the gallery, the viewer, the form with its groups open, the same in
the dark theme, a failed job with its reason, the failure's details, the debug log and the
Settings dialog at 1x (1366x768), and the gallery light and dark at 2x (2732x1536); then the
web UI in headless Chromium (`tests/web/test_layout.py`: web-*.png, desktop and phone, light
and dark). Nothing is opened that a user could not open; the tests write one PNG per state.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(out: Path) -> int:
    out = out.absolute()
    env = {**os.environ, "STABLENEW_SCREENSHOTS": str(out)}
    tests = [
        "tests/gui/test_screenshots.py",
        "tests/web/test_layout.py::test_screenshots_desktop_and_phone_light_and_dark",
    ]
    code = subprocess.call(
        [sys.executable, "-m", "pytest", "-q", "-n", "0", *tests], cwd=ROOT, env=env
    )
    if code == 0:
        for png in sorted(out.glob("*.png")):
            print(f"wrote {png}")
    return code


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "screenshots"))
