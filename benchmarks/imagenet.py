"""The shipped ImageNet EfficientNet-Lite0 (saved_models/vision/imagenet_efficientnet_lite0): labels of
scikit-image's sample photos by the float Keras model (rebuilt from the pip package) and by the int8
file, their agreement on the photos and 100 random crops/flips of them, size and one-image latency."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .common import p50_ms, target

REPO = Path(__file__).resolve().parent.parent
SHIPPED = REPO / "saved_models" / "vision" / "imagenet_efficientnet_lite0"


def sample_photos() -> dict:
    from toolkit import load
    from toolkit.data.images import image_batch
    from toolkit.transfer import imagenet

    clf = load(SHIPPED)
    int8 = clf.open_tflite(SHIPPED / "model_int8.tflite")
    photos = imagenet.sample_photos()
    x = image_batch(list(photos.values()), channels=3, image_size=(224, 224))
    crops = imagenet.augmented_crops(photos, 100, seed=2)  # other crops than the card's check (seed 1)
    keras_probs, int8_probs = clf.probabilities(x), int8.probabilities(x)
    hits = {f"{name} top-{k}": float(np.mean(imagenet.photo_hits(clf.class_names_, probs, k)))
            for name, probs in (("Keras float", keras_probs), ("int8 TFLite", int8_probs)) for k in (1, 5)}
    both = np.concatenate([x, crops])
    agreement = float(np.mean(clf.probabilities(both).argmax(-1) == int8.probabilities(both).argmax(-1)))
    size = (SHIPPED / "model_int8.tflite").stat().st_size
    int8_ms = int8.latency_ms(x[:1], runs=200)
    keras_ms = p50_ms(lambda: clf.probabilities(x[:1]), runs=30)
    n = len(photos)
    rows = [
        target(f"ImageNet photos ({n}): Keras float top-1 hits", hits["Keras float top-1"], "reference", True,
               note="scikit-image's chelsea, coffee, camera, rocket; accepted labels in toolkit.transfer.imagenet"),
        target(f"ImageNet photos ({n}): Keras float top-5 hits", hits["Keras float top-5"], ">= 1.0",
               hits["Keras float top-5"] >= 1.0),
        target(f"ImageNet photos ({n}): int8 TFLite top-1 hits", hits["int8 TFLite top-1"], "= Keras float",
               hits["int8 TFLite top-1"] >= hits["Keras float top-1"]),
        target(f"ImageNet photos ({n}): int8 TFLite top-5 hits", hits["int8 TFLite top-5"], "= Keras float",
               hits["int8 TFLite top-5"] >= hits["Keras float top-5"]),
        target("ImageNet int8 vs float top-1 agreement (photos + 100 crops)", agreement, ">= 0.9", agreement >= 0.9),
        target("ImageNet int8 file size", size / 2**20, "<= 5 MiB", size < 5 * 2**20, "MiB"),
        target("ImageNet one image: int8 TFLite p50", int8_ms, "<= 25 ms", int8_ms <= 25, "ms"),
        target("ImageNet one image: Keras float (traced) p50", keras_ms, "reference", True, "ms"),
    ]
    return {"rows": rows, "hits": hits, "size_bytes": size}
