"""Headless Chromium (Debian's package) for page tests: the DOM after scripts ran, and a screenshot.

Each call starts a fresh browser with a throw-away profile and every background service off, so a
test talks to nothing but the page's own server on loopback.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--window-size=1440,1100",
)


def chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    raise AssertionError("chromium is not installed: apt-get install -y --no-install-recommends chromium")


def _run(url: str, *action: str, budget_ms: int) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        # The virtual time budget lets the page's fetches and timers run before the DOM is taken.
        command = [
            chromium(),
            *FLAGS,
            f"--user-data-dir={profile}",
            f"--virtual-time-budget={budget_ms}",
            *action,
            url,
        ]
        result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    if result.returncode != 0:
        raise AssertionError(f"chromium failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return result


def rendered_dom(url: str, budget_ms: int = 6000) -> str:
    return _run(url, "--dump-dom", budget_ms=budget_ms).stdout


def screenshot(url: str, path: Path, budget_ms: int = 6000) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    _run(url, f"--screenshot={path}", budget_ms=budget_ms)
    if not path.exists():
        raise AssertionError(f"chromium wrote no screenshot to {path}")
    return path
