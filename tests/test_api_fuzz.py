"""Malformed API calls against the launched demo: every endpoint x (None, wrong type, out of range,
NaN / Inf, huge, path-like strings, [] ...). Each call must answer, or fail with a message a user
can read: never an error without a message, never "Unexpected error", never a stack trace, and
never the content of a file outside the uploads.

The calls go through Gradio's own input processing (``/gradio_api/call/<endpoint>``, what any
HTTP client sends), so failures before our handlers count too. Models load on first use, so the
corpus is chosen to fail fast: expensive endpoints (explanations, training) get each bad value in
every input at once; cheap ones also get it in one input at a time, the others left valid.
"""

from __future__ import annotations

import json

import pytest

pytest.importorskip("gradio")
httpx = pytest.importorskip("httpx")

NAN = float("nan")
#: bad values for any input
CORPUS = [None, "abc", [], -1, 10**12, NAN, float("inf"), "9" * 20_000, "../../../../etc/passwd",
          {"path": "/etc/passwd", "meta": {"_type": "gradio.FileData"}}]
#: endpoints whose calls take seconds when an input is valid: only all-bad calls
EXPENSIVE = {"explain_image", "explain_text", "explain_forecast", "train_quick_model", "compare_random",
             "reset_episode", "step_episode", "play_episode", "interpolate", "backtest", "sample_grid",
             "generate_digit", "denoise", "detect_anomalies", "forecast", "classify_image",
             "train_image_classifier", "train_text_classifier"}
EXPENSIVE |= {"explain_recording"}  # the speech tab's explanation
#: the values also sent in one input at a time (the others valid), for the cheap endpoints
ONE_AT_A_TIME = [None, "abc", NAN, 10**12, {"path": "/etc/passwd", "meta": {"_type": "gradio.FileData"}}]
CODE_WORDS = ("Traceback", "Unexpected error", "Error(", "Exception", "--")


@pytest.fixture(scope="module")
def served():
    from apps.main import serve_in_background

    app = serve_in_background()
    base = app.local_url.rstrip("/")
    config = httpx.get(f"{base}/config", timeout=30).json()
    components = {c["id"]: c for c in config["components"]}
    endpoints = {}
    for dep in config["dependencies"]:
        name = dep.get("api_name")
        if name and not name.startswith("load_example") and dep.get("show_api", True) is not False \
                and dep.get("api_visibility", "public") != "private":
            endpoints[name] = [components[i].get("props", {}).get("value") for i in dep["inputs"]]
    try:
        yield base, endpoints
    finally:
        app.close()


def call(http, base: str, api: str, data: list) -> tuple[str, object]:
    body = json.dumps({"data": data}, allow_nan=True)  # NaN and Infinity as JavaScript sends them
    response = http.post(f"{base}/gradio_api/call/{api}", content=body,
                         headers={"content-type": "application/json"})
    if response.status_code >= 400:  # refused before the queue: the body says why
        return "refused", response.text
    event_id = response.json()["event_id"]
    event = None
    with http.stream("GET", f"{base}/gradio_api/call/{api}/{event_id}") as stream:
        for line in stream.iter_lines():
            if line.startswith("event:"):
                event = line.split(":", 1)[1].strip()
            elif line.startswith("data:") and event in ("complete", "error"):
                payload = json.loads(line[5:])
                if event == "error" and isinstance(payload, dict):  # {"error": message, "visible": ...}
                    payload = payload.get("error")
                return event, payload
    return "no result", None


def cases(endpoints: dict) -> list[tuple[str, list]]:
    out = []
    for api, defaults in endpoints.items():
        n = len(defaults)
        out += [(api, [value] * n) for value in CORPUS]
        if api not in EXPENSIVE:
            inputs = range(min(n, 3))  # (the latent sliders are alike)
            out += [(api, [*defaults[:i], value, *defaults[i + 1:]]) for value in ONE_AT_A_TIME for i in inputs]
    return out


def test_every_malformed_call_gets_a_readable_answer(served):
    base, endpoints = served
    assert {"classify_text", "classify_image", "translate_date", "forecast", "detect_anomalies", "decode_latent",
            "play_episode", "step_episode"} <= set(endpoints)
    assert {"recognise", "explain_recording"} <= set(endpoints)  # the speech tab
    from concurrent.futures import ThreadPoolExecutor

    failures = []
    counts = {"complete": 0, "error": 0, "refused": 0}
    todo = cases(endpoints)
    with httpx.Client(timeout=300, limits=httpx.Limits(max_keepalive_connections=0)) as http, \
            ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda case: call(http, base, *case), todo))
    for (api, data), (kind, payload) in zip(todo, answers):
        counts[kind] = counts.get(kind, 0) + 1
        shown = repr(data)[:120]
        if kind == "complete":
            if "root:x:0:0" in json.dumps(payload, default=str):
                failures.append(f"{api}{shown}: returned the content of /etc/passwd")
        elif kind == "error":
            if not payload or not isinstance(payload, str) or not payload.strip():
                failures.append(f"{api}{shown}: an error without a message")
            elif any(word in payload for word in CODE_WORDS):
                failures.append(f"{api}{shown}: {payload[:200]}")
        elif kind != "refused":
            failures.append(f"{api}{shown}: {kind}")
    assert not failures, f"{len(failures)} calls ({counts}):\n" + "\n".join(failures[:40])
    assert counts["error"] > 0  # the corpus is malformed: most calls must be refused with a message
