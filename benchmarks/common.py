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


class BrowserSession:
    """Calls of a launched Gradio app's events as its page makes them: one session for the page,
    each event POSTed to the queue and its result read from the session's event stream. (The
    REST route ``/gradio_api/call`` starts a new session, and with it a copy of every
    component's state, on each call: a cost the page pays once, when it opens.)"""

    def __init__(self, http, base: str):
        import uuid

        self.http, self.base, self.session = http, base.rstrip("/"), uuid.uuid4().hex[:11]
        config = http.get(f"{self.base}/config").json()
        self.fn_index = {d["api_name"]: d["id"] for d in config["dependencies"] if d.get("api_name")}

    def call(self, api: str, data: list) -> tuple[str, object]:
        """("complete" or "error", the outputs or the error message) of one event."""
        import json

        body = {"data": data, "fn_index": self.fn_index[api], "session_hash": self.session, "event_data": None,
                "trigger_id": None}
        event_id = self.http.post(f"{self.base}/gradio_api/queue/join", json=body).json()["event_id"]
        with self.http.stream("GET", f"{self.base}/gradio_api/queue/data",
                              params={"session_hash": self.session}) as stream:
            for line in stream.iter_lines():
                if not line.startswith("data:"):
                    continue
                message = json.loads(line[5:])
                if message.get("msg") == "process_completed" and message.get("event_id") == event_id:
                    output = message.get("output") or {}
                    if message.get("success"):
                        return "complete", output.get("data")
                    return "error", output.get("error") or message
        raise RuntimeError(f"{api}: the stream ended without a result")
