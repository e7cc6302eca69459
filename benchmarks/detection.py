"""Object detection: the default `toolkit train object_detector` recipe on the raccoon photos and on
the generated shapes set, with its int8 file and the peer "one box = the whole image".

- ``raccoon``: ``../shared/data/raccoon`` (160 photos, Pascal VOC), the recipe's split (seed 0, 25%
  held out: 40 photos never seen in training; nothing is tuned on them). mAP@0.5 and mAP@0.5:0.95
  (COCO rules) of the Keras model and of its int8 ``.tflite`` (decoding and NMS inside, builtin ops),
  one-image p50 latency of the int8 file (LiteRT, two threads at most), training time. The peer in
  the same run and split: every image answered with one box covering it, score 1 (what an image
  classifier without boxes can say). Then the demo tab's request p50 on that model
  (``apps.detection.detect_objects``: decode the upload, detect, draw, table; Keras and int8).
- ``raccoon_folds``: the int8 parity out of fold, the statistically sounder figure (the held-out row
  rests on 41 boxes, one of which moves mAP@0.5 by ~0.024): the 120 training photos of that split in
  4 folds of 30, each fold scored by the default recipe trained on the other 90 and by its int8 file
  calibrated on them; per-fold and pooled mAP@0.5 of both (the 40 held-out photos are not read).
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


def raccoon_folds(folds: int = 4, **overrides) -> dict:
    """Out-of-fold int8 parity inside the 120 training photos of the raccoon split (the 40 held-out
    photos are not read): ``folds`` folds of 30, each fold's model trained with the default recipe on
    the other 90 photos, its int8 file calibrated on them (as ``toolkit export`` does), both scored
    on the fold's 30. Four times the photos of the held-out row behind each pooled figure."""
    import json

    import numpy as np

    from toolkit.detection import ObjectDetector, load_boxes, mean_average_precision, split

    if not RACCOON.is_dir():
        return {"rows": [target("detection raccoon folds", 0.0, "data present", False, note=f"{RACCOON} missing")]}
    train, _ = split(load_boxes(str(RACCOON)), 0.25, 0)  # the benchmark's split; its test part stays unread
    parts = np.array_split(np.random.default_rng(0).permutation(len(train)), folds)
    per_fold, found = [], {"keras": [], "int8": []}
    truth_boxes, truth_labels = [], []
    for k, part in enumerate(parts):
        rest = np.sort(np.concatenate([p for j, p in enumerate(parts) if j != k]))
        fit_part, fold = train.subset(rest), train.subset(np.sort(part))
        task = ObjectDetector(**overrides).fit(fit_part)
        with tempfile.TemporaryDirectory(prefix="detection-fold-") as workdir:
            task.save(Path(workdir) / "model")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                path = task.export(quantization="int8", data=fold)
            lite = ObjectDetector.open_tflite(path, card=json.loads((Path(workdir) / "model" / "card.json").read_text()))
            found["int8"] += lite.predict_arrays(fold.images)
            del lite
        found["keras"] += task.predict_arrays(fold.images)
        truth_boxes += fold.boxes
        truth_labels += fold.labels
        n = len(fold)
        keras_map, int8_map = (mean_average_precision(fold.boxes, fold.labels, *zip(*found[w][-n:]),
                                                      task.class_names_)["map_50"] for w in ("keras", "int8"))
        per_fold.append({"keras_map_50": round(keras_map, 4), "int8_map_50": round(int8_map, 4),
                         "diff": round(int8_map - keras_map, 4), "n_images": n})
    pooled = {w: mean_average_precision(truth_boxes, truth_labels, *zip(*found[w]), train.class_names)["map_50"]
              for w in found}
    diff = pooled["int8"] - pooled["keras"]
    folds_note = ", ".join(f"{f['diff']:+.3f}" for f in per_fold)
    rows = [target(f"detection raccoon: int8 mAP@0.5 minus Keras out of fold ({folds} folds of the 120 training "
                   "photos, pooled)", round(diff, 4), ">= -0.02", diff >= -0.02,
                   note=f"int8 {pooled['int8']:.3f}, Keras {pooled['keras']:.3f}; per fold {folds_note}")]
    return {"rows": rows, "folds": per_fold, "pooled": {k: round(v, 4) for k, v in pooled.items()},
            "config": overrides}


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
