"""Memory and time of decoding huge uploads: six 36-megapixel PNGs (about 0.1 MB each on disk) at once.

Each measurement runs in a fresh Python process that samples its own resident memory (VmRSS)
every 2 ms: idle (after the imports and one small decode), the peak while six threads decode
the file at once, and what is left a moment after they finish. Two paths in the same run, on
the same file:

- ``read_image(path, target_size=(224, 224))``: what the apps call with an upload's path (the
  image reduced right after decoding, at most two decodes at once in the process, freed memory
  handed back to the system);
- the full-size decode an upload got until now (Gradio decoding the upload itself:
  ``np.asarray(Image.open(path).convert("RGB"))``, no bound on concurrent decodes).

Issue 16 measured the server before: 6 s and about 260 MB that stayed per 36 MP upload; six at
once peaked at 4.8 GB.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

from .common import target

ROOT = Path(__file__).resolve().parent.parent
SIDE = 6000  # 36 megapixels
THREADS = 6
MODEL_INPUT = (224, 224)

_CHILD = r"""
import gc, json, sys, threading, time
import numpy as np
from PIL import Image
from toolkit.data.images import read_image

path, mode, threads, side = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
PAGE = 4096

def rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE / 2**20

def decode():
    if mode == "toolkit":
        return read_image(path, target_size=(side, side)).shape
    return np.asarray(Image.open(path).convert("RGB")).shape

small = path + ".small.png"
Image.new("RGB", (64, 64), (1, 2, 3)).save(small)
read_image(small); np.asarray(Image.open(small).convert("RGB"))  # codecs loaded
gc.collect(); time.sleep(0.3)
idle = rss_mb()
peak, stop = [idle], threading.Event()

def sample():
    while not stop.is_set():
        peak[0] = max(peak[0], rss_mb())
        time.sleep(0.002)

sampler = threading.Thread(target=sample); sampler.start()
start = time.perf_counter()
shapes = []
workers = [threading.Thread(target=lambda: shapes.append(decode())) for _ in range(threads)]
for w in workers: w.start()
for w in workers: w.join()
wall = time.perf_counter() - start
stop.set(); sampler.join()
gc.collect(); time.sleep(0.5)
after = rss_mb()
one = []
for _ in range(3):
    t = time.perf_counter(); decode(); one.append(time.perf_counter() - t)
print(json.dumps({"idle_mb": idle, "peak_mb": peak[0], "after_mb": after, "wall_s": wall,
                  "one_s": float(np.median(one)), "shapes": sorted({tuple(s) for s in shapes})}))
"""


def _measure(path: Path, mode: str) -> dict:
    out = subprocess.run([sys.executable, "-c", _CHILD, str(path), mode, str(THREADS), str(MODEL_INPUT[0])],
                         cwd=ROOT, capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        raise RuntimeError(f"{mode}: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def run() -> dict:
    from PIL import Image

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "huge.png"
        Image.new("RGB", (SIDE, SIDE), (90, 140, 200)).save(path)  # like a scan of a blank page: tiny file
        size_kb = path.stat().st_size / 1024
        new, old = _measure(path, "toolkit"), _measure(path, "full")
    peak, old_peak = new["peak_mb"] - new["idle_mb"], old["peak_mb"] - old["idle_mb"]
    left, old_left = new["after_mb"] - new["idle_mb"], old["after_mb"] - old["idle_mb"]
    label = f"{THREADS} concurrent {SIDE}x{SIDE} PNG uploads ({size_kb:.0f} KB each)"
    rows = [
        target(f"{label}: peak memory above idle", round(peak, 1), "< 1024 MB", peak < 1024, "MB",
               f"full-size decode in the same run: {old_peak:.0f} MB; issue 16's server before: 4.8 GB peak"),
        target(f"{label}: memory left above idle afterwards", round(left, 1), "< 64 MB", left < 64, "MB",
               f"full-size decode in this plain process: {old_left:.0f} MB left; issue 16's server before: "
               "~260 MB left per upload"),
        target(f"one {SIDE}x{SIDE} PNG decoded for a {MODEL_INPUT[0]}x{MODEL_INPUT[1]} model", round(new["one_s"], 3),
               "reference", True, "s",
               f"full-size decode {old['one_s']:.2f} s in the same run; issue 16's server before: 6 s; "
               f"all {THREADS} at once: {new['wall_s']:.1f} s (full-size {old['wall_s']:.1f} s)"),
    ]
    return {"rows": rows, "toolkit": new, "full_size_decode": old, "file_kb": round(size_kb, 1)}
