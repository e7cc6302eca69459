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
    parts = imagenet.size_breakdown(SHIPPED / "model_int8.tflite")
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
        target("ImageNet int8 file size", size / 2**20, "<= 5 MiB", size < 5 * 2**20, "MiB",
               note=f"{size:,} bytes: over 5 MB (10^6 bytes), under 5 MiB; int8 weights "
                    f"{parts.get('int8_tensor_bytes', 0):,}, int32 biases {parts.get('int32_tensor_bytes', 0):,}, "
                    f"quantization parameters {parts['quantization_bytes']:,} ({parts['scales']:,} scales with "
                    f"int64 zero points), rest {parts['other_bytes'] + parts['metadata_bytes']:,}"),
        target("ImageNet one image: int8 TFLite p50", int8_ms, "<= 25 ms", int8_ms <= 25, "ms"),
        target("ImageNet one image: Keras float (traced) p50", keras_ms, "reference", True, "ms"),
    ]
    more, flagged = not_sure_rows(clf, int8)
    return {"rows": rows + more, "hits": hits, "size_bytes": size, "size_breakdown": parts,
            "not_sure_flagged": flagged}


def not_sure_rows(clf, int8) -> tuple[list, dict]:
    """The card's "not sure" rule on images its calibration never saw (seed 1; it used seed 0):
    other crops of the same 5 photos (in-domain: there is no other labelled ImageNet data here),
    fresh noise and off-domain images, by the Keras model and the int8 file; the peer is the
    max-probability threshold alone (the rule without the roughness score)."""
    import dataclasses

    from toolkit.transfer import imagenet

    cal = clf.calibration_
    if cal is None:
        return [target("ImageNet 'not sure' calibration in the card", 0.0, "present", False)], {}
    crops, ood = imagenet.calibration_images(n_crops=100, n_ood=30, seed=1)
    peer = dataclasses.replace(cal, roughness_threshold=None)
    flagged = {"keras": {}, "int8": {}, "peer_max_probability": {}}
    for kind, batch in [("in_domain", crops), *((k, clf.prepare(v)) for k, v in ood.items())]:
        probs = clf.probabilities(batch)
        flagged["keras"][kind] = float(np.logical_or(*cal.flags(batch, probs)).mean())
        flagged["peer_max_probability"][kind] = float(np.logical_or(*peer.flags(batch, probs)).mean())
        flagged["int8"][kind] = float(np.mean([r["not_sure"] for r in int8.assess_batch(batch, int8.probabilities(batch))]))
    groups = (("in-domain crops (other crops of the 5 calibration photos)", ["in_domain"], "<= 0.05",
               lambda v: v <= 0.05),
              ("random-noise images", ["uniform_noise", "gaussian_noise", "random_colours"], ">= 0.9",
               lambda v: v >= 0.9),
              ("off-domain images", ["flat_colours", "stripes", "digits_upscaled"], ">= 0.9", lambda v: v >= 0.9))
    rows = []
    for label, kinds, goal, ok in groups:
        value = {who: float(np.mean([flagged[who][k] for k in kinds])) for who in flagged}
        rows.append(target(f"ImageNet 'not sure': {label} flagged (Keras)", value["keras"], goal, ok(value["keras"]),
                           note=f"int8 file {value['int8']:.3f}; max-probability peer {value['peer_max_probability']:.3f}"
                                f"; {', '.join(kinds)}"))
    return rows, flagged
