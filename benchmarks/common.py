"""Timing helpers and the result format shared by the benchmarks."""

from __future__ import annotations

import platform
from typing import Callable


def p50_ms(fn: Callable[[], object], runs: int = 50, warmup: int = 5) -> float:
    from toolkit.edge.runner import median_ms

    return median_ms(fn, runs, warmup)


def machine() -> dict:
    import os

    return {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()}


def target(name: str, measured: float, goal: str, passed: bool, unit: str = "", note: str = "") -> dict:
    """One row of the README table: what was measured against which goal."""
    return {"name": name, "measured": measured, "unit": unit, "goal": goal, "passed": bool(passed), "note": note}
