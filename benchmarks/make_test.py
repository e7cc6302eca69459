"""`make test` on a fresh clone of HEAD with a fresh .venv, install included, as CI runs it."""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from pathlib import Path

from .common import target

REPO = Path(__file__).resolve().parent.parent
LIMIT_SECONDS = 15 * 60


def run() -> dict:
    workspace = Path(tempfile.mkdtemp(prefix="make-test-"))
    clone = workspace / "main"
    subprocess.run(["git", "clone", "--quiet", str(REPO), str(clone)], check=True)
    shared = REPO.parent / "shared"
    if shared.exists():
        os.symlink(shared, workspace / "shared")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("VIRTUAL_ENV", "PYTHONPATH", "MAKE", "MFLAGS"))}
    start = time.perf_counter()
    proc = subprocess.run(["make", "test"], cwd=clone, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    summary = next((line for line in reversed(proc.stdout.splitlines()) if " passed" in line or " failed" in line),
                   f"exit status {proc.returncode}")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=clone, capture_output=True,
                            text=True).stdout.strip()
    ok = proc.returncode == 0 and seconds <= LIMIT_SECONDS
    return {
        "commit": commit,
        "returncode": proc.returncode,
        "summary": summary,
        "rows": [target("`make test` on a fresh clone, fresh .venv, install included", seconds,
                        f"<= {LIMIT_SECONDS} s, passing", ok, "s", note=f"{summary.strip()}; pip cache warm")],
    }
