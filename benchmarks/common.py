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


def rest_event(http, base: str, api: str, data: list) -> tuple[str, object]:
    """One call of a launched Gradio app's API as a browser's fetch makes it: POST the inputs,
    then read the server-sent event stream; returns ("complete" or "error", the payload)."""
    import json

    event_id = http.post(f"{base}/gradio_api/call/{api}", json={"data": data}).json()["event_id"]
    event = None
    with http.stream("GET", f"{base}/gradio_api/call/{api}/{event_id}") as stream:
        for line in stream.iter_lines():
            if line.startswith("event:"):
                event = line.split(":", 1)[1].strip()
            elif line.startswith("data:") and event in ("complete", "error"):
                return event, json.loads(line[5:])
    raise RuntimeError(f"{api}: the stream ended without a result")
