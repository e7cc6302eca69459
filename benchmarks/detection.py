"""Object detection: the default `toolkit train object_detector` recipe on the raccoon photos and on
the generated shapes set, with its int8 file and the peer "one box = the whole image".

- ``raccoon``: ``../shared/data/raccoon`` (160 photos, Pascal VOC), the recipe's split (seed 0, 25%
  held out: 40 photos never seen in training; nothing is tuned on them). mAP@0.5 and mAP@0.5:0.95
  (COCO rules) of the Keras model and of its int8 ``.tflite`` (decoding and NMS inside, builtin ops),
  one-image p50 latency of the int8 file (LiteRT, two threads at most), training time. The peer in
  the same run and split: every image answered with one box covering it, score 1 (what an image
  classifier without boxes can say). Then the demo tab's request p50 on that model
  (``apps.detection.detect_objects``: decode the upload, detect, draw, table; Keras and int8).
- ``shapes``: 400 generated images (circles, squares, triangles on photo-like backgrounds, 0-4 an
  image), 25% held out; mAP@0.5 against the same whole-image peer.
"""

from __future__ import annotations

import tempfile
import time
import warnings
from pathlib import Path

from .common import target

RACCOON = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "raccoon"


def _train_and_export(data, workdir: str, name: str, **options) -> dict:
    from toolkit.detection import ObjectDetector
    from toolkit.storage import read_card

    out = Path(workdir) / name
    start = time.perf_counter()
    summary = ObjectDetector.train_recipe(out, data=data, test_size=0.25, verbose=0, **options)
    seconds = time.perf_counter() - start
    task = ObjectDetector.load(out)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        task.export(quantization="int8")
    card = read_card(out)
    entry = next(e for e in card["tflite"] if e["quantization"] == "int8")
    result = {"summary": summary, "seconds": seconds, "int8": entry, "metrics": card["metrics"]}
    if isinstance(data, str):  # photos on disk: the demo tab's request time on this model
        result["demo"] = demo_request_ms(out, task.reload_data().files)
    return result


def demo_request_ms(model_dir, photos: list[str], runs: int = 30) -> dict:
    """p50 of one request through the detection tab's handler (``apps.detection.detect_objects``:
    read the upload, detect, draw the boxes, build the table), Keras and the int8 file, over the
    held-out photos (one photo a call, in turn)."""
    import numpy as np

    from apps.detection import DetectionService, detect_objects

    service = DetectionService(model_dir)
    service.warm_up()
    out = {}
    for backend in ("Keras", "model_int8.tflite"):
        for path in photos[:3]:  # warm-up: trace, open the file
            detect_objects(service, path, None, backend, 0.3)
        times = []
        for i in range(runs):
            start = time.perf_counter()
            detect_objects(service, photos[i % len(photos)], None, backend, 0.3)
            times.append((time.perf_counter() - start) * 1000)
        out[backend] = round(float(np.median(times)), 2)
    return out


def raccoon() -> dict:
    if not RACCOON.is_dir():
        return {"rows": [target("detection raccoon", 0.0, "data present", False, note=f"{RACCOON} missing")]}
    with tempfile.TemporaryDirectory(prefix="detection-") as workdir:
        result = _train_and_export(str(RACCOON), workdir, "raccoon")
    m, entry = result["metrics"], result["int8"]
    keras_map, baseline = m["test_map_50"], m["test_baseline_whole_image_map_50"]
    rows = [
        target(f"detection raccoon: mAP@0.5 on 40 held-out photos (one whole-image box: {baseline:.3f})",
               round(keras_map, 4), ">= 0.80", keras_map >= 0.80,
               note=f"mAP@0.5:0.95 {m['test_map_50_95']:.3f}; efficientnet_lite0 frozen + anchor-free head"),
        target("detection raccoon: int8 .tflite mAP@0.5 minus Keras (decoding + NMS inside, builtin ops)",
               round(entry["map_50_diff"], 4), ">= -0.02", entry["map_50_diff"] >= -0.02,
               note=f"int8 mAP@0.5 {entry['test_map_50']:.3f}, {entry['size_bytes'] / 1e6:.2f} MB; ops "
                    f"{', '.join(o for o in entry['ops'] if 'NON_MAX' in o)}"),
        target("detection raccoon: int8 one-image p50 latency (LiteRT)", round(entry["latency_ms_p50"], 2),
               "<= 50", entry["latency_ms_p50"] <= 50, "ms"),
        target("detection raccoon: training time (feature caching included)", round(result["seconds"], 1),
               "<= 900", result["seconds"] <= 900, "s"),
    ]
    for backend, ms in result["demo"].items():
        rows.append(target(f"detection demo request p50 ({backend}; apps.detection.detect_objects)", ms, "<= 150",
                           ms <= 150, "ms", note="a held-out JPEG upload: decode, detect, draw, table"))
    return {"rows": rows, "metrics": m, "int8": entry, "train_seconds": result["seconds"], "demo_ms": result["demo"]}


def shapes(n: int = 400) -> dict:
    from toolkit.detection import make_shapes

    with tempfile.TemporaryDirectory(prefix="detection-") as workdir:
        result = _train_and_export(make_shapes(n, seed=0), workdir, "shapes")
    m = result["metrics"]
    value, baseline = m["test_map_50"], m["test_baseline_whole_image_map_50"]
    rows = [target(f"detection shapes (3 classes, {n // 4} held-out images): mAP@0.5 (one whole-image box: "
                   f"{baseline:.3f})", round(value, 4), ">= 0.90", value >= 0.90,
                   note=f"mAP@0.5:0.95 {m['test_map_50_95']:.3f}; int8 mAP@0.5 {result['int8']['test_map_50']:.3f}; "
                        f"trained in {result['seconds']:.0f} s")]
    return {"rows": rows, "metrics": m, "int8": result["int8"]}
