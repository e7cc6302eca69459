"""Load on the demo: 100 concurrent prediction requests per prediction endpoint, and predictions
while 20 explanations run, from this process (an aiohttp client) against ``toolkit serve`` running in another.

Each request is what a page (or an API user without gradio_client) does: upload the file where
there is one, POST the inputs to ``/gradio_api/call/<endpoint>`` and read the result from the
event stream. A request's time runs from its first byte sent (the upload included) to its
result; throughput is requests / wall time of the burst. Today's figures (issue 16, before
batching: 100 concurrent requests, one at a time through the queue) stand beside them.

    python -m benchmarks.run demo_load
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from .common import rest_event, target

REQUESTS = 100
EXPLANATIONS = 20
P95_GOAL_S = 1.5
THROUGHPUT_GOALS = {"text": 50.0, "image": 25.0}
#: issue 16's measurements before this work (100 concurrent predictions, busy two-core machine)
BEFORE_P95_S = {"text": 6.5, "image": 15.5}
SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
REVIEW = "great phone, works perfectly"
PHOTO_SIZE = (500, 375)  # (width, height): the common size of the ants/bees photos


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_log(port: int) -> Path:
    return Path(os.environ.get("TMPDIR", "/tmp")) / f"toolkit-serve-{port}.log"


def start_server(port: int) -> subprocess.Popen:
    """``toolkit serve`` in its own process (its models warm up in the background)."""
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "TF_CPP_MIN_LOG_LEVEL": "2"}
    log = open(server_log(port), "w")
    return subprocess.Popen([sys.executable, "-c", "import sys; from toolkit.cli import main; sys.exit(main())",
                             "serve", "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT,
                            cwd=Path(__file__).resolve().parent.parent)


def wait_ready(base: str, process: subprocess.Popen, timeout: float = 900) -> float:
    """Wait until the server answers and has loaded every tab's models (its warm-up, which
    would otherwise compete with the timed requests for the CPU); returns the seconds waited."""
    import httpx

    from apps.main import WARM_UP_DONE

    start = time.time()
    log = server_log(int(base.rsplit(":", 1)[1]))
    while time.time() < start + timeout:
        if process.poll() is not None:
            raise RuntimeError(f"toolkit serve exited with {process.returncode}; see {log}")
        try:
            if httpx.get(f"{base}/config", timeout=5).status_code == 200 and WARM_UP_DONE in log.read_text():
                return time.time() - start
        except httpx.HTTPError:
            pass
        time.sleep(1)
    raise TimeoutError(f"toolkit serve did not load its models within {timeout} s; see {log}")


def photos(n: int) -> list[tuple[str, bytes]]:
    """``n`` photos to upload, one per request, as ``n`` phone users would: the ants/bees photos
    (JPEGs of 10-200 KB, most about 500x375) when the shared data is there, else synthetic
    500x375 JPEGs. Each request uploads another file (a repeated file would be stored once)."""
    from PIL import Image

    folder = SHARED / "ants_bees"
    files = sorted(folder.rglob("*.jpg")) if folder.is_dir() else []
    if files:
        return [(f"{i}-{files[i % len(files)].name}", files[i % len(files)].read_bytes()) for i in range(n)]
    import io

    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        buffer = io.BytesIO()
        Image.fromarray(rng.integers(0, 255, (PHOTO_SIZE[1], PHOTO_SIZE[0], 3), dtype=np.uint8)).save(buffer, "JPEG")
        out.append((f"synthetic-{i}.jpg", buffer.getvalue()))
    return out


def digit_pngs(n: int) -> list[tuple[str, bytes]]:
    """``n`` drawings of a "1", each a little to the side of the last (another file each)."""
    import io

    from PIL import Image

    out = []
    for i in range(n):
        canvas = np.full((280, 280, 3), 255, np.uint8)
        left = 60 + i % 150
        canvas[60:220, left:left + 30] = 0
        buffer = io.BytesIO()
        Image.fromarray(canvas).save(buffer, "PNG")
        out.append((f"digit-{i}.png", buffer.getvalue()))
    return out


async def _call(http, base: str, api: str, data: list, upload: tuple[str, bytes] | None = None):
    """(seconds, error or None) of one request, the upload included (``http``: an aiohttp session)."""
    import aiohttp

    start = time.perf_counter()
    try:
        if upload is not None:
            form = aiohttp.FormData()
            form.add_field("files", upload[1], filename=upload[0])
            async with http.post(f"{base}/gradio_api/upload", data=form) as response:
                response.raise_for_status()
                path = (await response.json())[0]
            data = [{"path": path, "meta": {"_type": "gradio.FileData"}}, *data]
        async with http.post(f"{base}/gradio_api/call/{api}", json={"data": data}) as response:
            response.raise_for_status()
            event_id = (await response.json())["event_id"]
        event = None
        async with http.get(f"{base}/gradio_api/call/{api}/{event_id}") as stream:
            async for raw in stream.content:
                line = raw.decode().rstrip("\r\n")
                if line.startswith("event:"):
                    event = line.split(":", 1)[1].strip()
                elif line.startswith("data:") and event in ("complete", "error"):
                    payload = json.loads(line[5:])
                    error = None if event == "complete" else (payload or "an error without a message")
                    return time.perf_counter() - start, error
        return time.perf_counter() - start, "the stream ended without a result"
    except Exception as exc:  # counted as an error of the request
        return time.perf_counter() - start, f"{type(exc).__name__}: {exc}"


def session(timeout: float):
    """The load client's HTTP session: aiohttp, each call on its own connection (no reuse between
    requests). A lean client (about 3 ms of CPU per upload request against httpx's 9-11 ms) leaves
    the shared cores to the server it measures."""
    import aiohttp

    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0, force_close=True),
                                 timeout=aiohttp.ClientTimeout(total=timeout))


async def burst(base: str, api: str, data: list, n: int, uploads: list | None = None) -> dict:
    """``n`` concurrent requests (request ``i`` uploads ``uploads[i]``): their latencies, errors,
    the burst's throughput, and the CPU seconds this client used (it must not be what limits)."""
    async with session(300) as http:
        cpu, start = time.process_time(), time.perf_counter()
        results = await asyncio.gather(*(_call(http, base, api, data, uploads[i % len(uploads)] if uploads else None)
                                         for i in range(n)))
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    return {**summary(results, wall), "client_cpu_s": cpu}


def process_cpu_s(pid: int) -> float | None:
    """CPU seconds (user + system) a process has used so far, None where /proc is missing."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def first_prediction(base: str, process: subprocess.Popen, started: float, timeout: float = 900) -> float:
    """Seconds from the server's start to its first answered prediction (a text, as a user who
    opens the page at once would send; the warm-up still runs beside it)."""
    import httpx

    while time.time() < started + timeout:
        if process.poll() is not None:
            raise RuntimeError(f"toolkit serve exited with {process.returncode}; see {server_log(int(base.rsplit(':', 1)[1]))}")
        try:
            with httpx.Client(timeout=300) as http:
                if rest_event(http, base, "classify_text", [REVIEW, None, "Keras"])[0] == "complete":
                    return time.time() - started
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"toolkit serve answered no prediction within {timeout} s")


def answered_by(base: str, api: str, data: list, upload: tuple[str, bytes]) -> str:
    """What answered an upload, as the page's note says it (its first bold part and the runtime
    beside it, e.g. "Keras (its ImageNet backbone's float32 weights run by LiteRT (XNNPACK))")."""
    import httpx

    with httpx.Client(timeout=300) as http:
        response = http.post(f"{base}/gradio_api/upload", files={"files": upload})
        response.raise_for_status()
        file = {"path": response.json()[0], "meta": {"_type": "gradio.FileData"}}
        event, payload = rest_event(http, base, api, [file, *data])
    if event != "complete":
        return f"an error: {payload}"
    note = str(payload[-1]).rsplit("\n\n", 1)[-1]  # after a "not sure" verdict
    return note.split(":", 1)[0].replace("**", "") if "for this prediction" in note else note[:120]


def summary(results: list, wall: float) -> dict:
    seconds = np.array([r[0] for r in results])
    errors = [r[1] for r in results if r[1] is not None]
    return {"n": len(results), "errors": len(errors), "first_error": errors[0] if errors else None,
            "p50_s": float(np.percentile(seconds, 50)), "p95_s": float(np.percentile(seconds, 95)),
            "wall_s": wall, "throughput": len(results) / wall}


async def under_explanations(base: str, explain: tuple[str, list], predict: tuple[str, list], n: int,
                             n_explain: int) -> tuple[dict, dict]:
    """``n_explain`` explanations started together, then ``n`` predictions while they run."""
    async with session(600) as http:
        start = time.perf_counter()
        explaining = [asyncio.create_task(_call(http, base, *explain)) for _ in range(n_explain)]
        await asyncio.sleep(1.0)  # the explanations are running
        p_start = time.perf_counter()
        predictions = await asyncio.gather(*(_call(http, base, *predict) for _ in range(n)))
        p_wall = time.perf_counter() - p_start
        still_running = sum(not t.done() for t in explaining)
        explained = await asyncio.gather(*explaining)
        e_wall = time.perf_counter() - start
    result = summary(predictions, p_wall)
    result["explanations_still_running_at_end"] = still_running
    return result, summary(explained, e_wall)


def cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def cpu_floor(result: dict) -> float:
    """The least wall time a burst could take on this machine's cores: the CPU seconds the server
    and this client spent on it, spread over every core with none ever idle."""
    return (result["server_cpu_ms_per_request"] * result["n"] / 1000 + result["client_cpu_s"]) / cores()


def cost(result: dict) -> str:
    """Where a burst's CPU went, for the row's note."""
    server = result.get("server_cpu_ms_per_request")
    return ((f"server CPU {server:.1f} ms/request, " if server is not None else "")
            + f"client CPU {result['client_cpu_s'] / result['n'] * 1000:.1f} ms/request")


def run() -> dict:
    from apps.nlp import MINILM, SCRATCH

    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    started = time.time()
    server = start_server(port)
    rows, details = [], {}
    imagenet = "ImageNet photos (EfficientNet-Lite0, 1000 classes)"
    digits = "Digits (draw one)"
    cases = [  # (name, kind, endpoint, inputs after the upload, upload)
        ("text, MiniLM (the page's default)", "text", "classify_text", [REVIEW, MINILM, "Keras"], None),
        ("text, BiGRU", "text", "classify_text", [REVIEW, SCRATCH, "Keras"], None),
        ("image upload, ImageNet EfficientNet-Lite0 (the page's default)", "image", "classify_image",
         [None, "Keras", imagenet], photos(REQUESTS)),
        ("image upload, digits CNN", "image", "classify_image", [None, "Keras", digits], digit_pngs(REQUESTS)),
    ]
    load_before = os.getloadavg()  # the machine's load: the goals are for two cores with nothing else running
    try:
        details["start_to_first_prediction_s"] = first_prediction(base, server, started)
        details["server_warm_up_s"] = wait_ready(base, server)
        for _, _, api, data, upload in cases:  # each model loaded and traced before timing
            for _ in range(3):
                asyncio.run(burst(base, api, data, 2, upload[-2:] if upload else None))
        asyncio.run(burst(base, "explain_text", [REVIEW, SCRATCH, "lime", "Keras"], 1))
        for name, _, api, data, upload in cases:
            if upload:
                details[f"{name}: answered by"] = answered_by(base, api, data, (f"check-{upload[-1][0]}", upload[-1][1]))
        for name, kind, api, data, upload in cases:
            cpu = process_cpu_s(server.pid)
            result = asyncio.run(burst(base, api, data, REQUESTS, upload))
            if cpu is not None:
                result["server_cpu_ms_per_request"] = (process_cpu_s(server.pid) - cpu) / REQUESTS * 1000
            details[name] = result
            before = f"; before: p95 {BEFORE_P95_S[kind]} s" if "default" in name else ""
            rows.append(target(f"demo load: {REQUESTS} concurrent {name}: errors", result["errors"], "0",
                               result["errors"] == 0, note=result["first_error"] or ""))
            rows.append(target(f"demo load: {REQUESTS} concurrent {name}: p95", result["p95_s"],
                               f"<= {P95_GOAL_S} s", result["p95_s"] <= P95_GOAL_S, "s",
                               note=f"p50 {result['p50_s']:.2f} s{before}"))
            if upload and cpu is not None:  # what the two processes' CPU allows, before any waiting
                floor = cpu_floor(result)
                details[name]["cpu_floor_s"] = floor
                rows.append(target(f"demo load: {REQUESTS} concurrent {name}: CPU floor on {cores()} cores", floor,
                                   "reference", True, "s", note=f"(server + client CPU) / {cores()}: no p95 below this "
                                   "with every core busy all the time"))
            goal = THROUGHPUT_GOALS[kind]
            rows.append(target(f"demo load: {REQUESTS} concurrent {name}: throughput", result["throughput"],
                               f">= {goal:.0f} req/s", result["throughput"] >= goal, "req/s",
                               note=(f"uploads included: {len(upload)} files, {np.mean([len(u[1]) for u in upload]) / 1024:.0f} "
                                     "KB on average; " if upload else "") + cost(result)
                               + (f"; answered by {details[name + ': answered by']}" if upload else "")))
        predicted, explained = asyncio.run(under_explanations(
            base, ("explain_text", [REVIEW, SCRATCH, "lime", "Keras"]),
            ("classify_text", [REVIEW, SCRATCH, "Keras"]), REQUESTS, EXPLANATIONS))
        details["text predictions during explanations"] = predicted
        details["explanations"] = explained
        rows.append(target(f"demo load: {REQUESTS} text predictions while {EXPLANATIONS} LIME explanations run: p95",
                           predicted["p95_s"], f"<= {P95_GOAL_S} s", predicted["p95_s"] <= P95_GOAL_S
                           and predicted["errors"] == 0, "s",
                           note=f"{predicted['errors']} errors; {predicted['explanations_still_running_at_end']} "
                                f"explanations still running when the last prediction answered; the explanations: "
                                f"{explained['errors']} errors, all done in {explained['wall_s']:.1f} s"))
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
    details["load_average_1min"] = {"before": load_before[0], "after": os.getloadavg()[0]}
    if rows:
        rows[0]["note"] = (rows[0]["note"] + "; " if rows[0]["note"] else "") + (
            f"machine load average {load_before[0]:.1f} before, {os.getloadavg()[0]:.1f} after; server start to "
            f"first answered prediction {details.get('start_to_first_prediction_s', float('nan')):.0f} s, to every "
            f"tab's models loaded {details.get('server_warm_up_s', float('nan')):.0f} s")
    return {"rows": rows, "details": details}
