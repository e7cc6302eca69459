"""Honest answers of the shipped image classifiers: does "not sure" flag what it should?

For each image classifier under saved_models/vision/ (its calibration from the card, or made now
on the held-out part of its training split when the card has none), measured on data the
calibration never saw: the test split (in-domain), fresh generated noise (other seeds), and
off-domain images (flat colours, stripes, and scikit-image photos kept out of calibration).
The peers, in the same run: the max-probability score alone, thresholded to flag 5% of the same
held-out images (the usual baseline), and, for models whose rule reads pooled features, the rule
without them (max probability and pixel distance). The int8 ``.tflite`` beside each model is
measured on the same images with its own outputs (a file with a ``features`` output checks the
full rule, as the Keras model does). ECE on the test
split before and after temperature scaling.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .common import target

ROOT = Path(__file__).resolve().parent.parent
NOISE = ("uniform_noise", "gaussian_noise", "random_colours")
OFF_DOMAIN = ("flat_colours", "stripes", "photos", "digits_upscaled")


def honest(model_dir: str | Path, test=None, ood: dict | None = None, name: str | None = None) -> tuple[list, dict]:
    """Rows and details for one saved image classifier. ``test``: labelled in-domain images
    (default: the test split its card records); ``ood``: kind -> raw images (default: generated
    with seed 1, held-out photos)."""
    from toolkit import load
    from toolkit.calibration import HELD_OUT_PHOTOS, Calibration, expected_calibration_error
    from toolkit.data.images import resolve_image_data
    from toolkit.vision.calibrate import generated_inputs, validation_part

    task = load(model_dir)
    name = name or Path(model_dir).name
    height, width, channels = task.input_shape_
    splits = task.reload_data()
    if splits is None:
        raise LookupError("its card names no training data that is here (no held-out split to measure on)")
    test = resolve_image_data(test if test is not None else splits.test, "test", (height, width), channels,
                              task.class_names_)
    if task.calibration_ is None:
        task.calibrate(splits)
    cal = task.calibration_
    if ood is None:
        from toolkit.calibration import ood_images

        side = int(min(max(height, width, 32), 256))
        ood = {**generated_inputs(task, seed=1, n=100),
               "photos": ood_images(n=100, seed=1, size=side, photos=HELD_OUT_PHOTOS)["photos"]}
    held = validation_part(resolve_image_data(splits.train, "train", (height, width), channels, task.class_names_),
                           task.config.validation_split, task.config.seed)[1]
    peer = Calibration(cal.temperature, float(np.quantile(cal.scaled(task.probabilities(held.x)).max(-1), 0.05)))
    lite = cal.fallback()  # what a .tflite (probabilities only) checks

    def flagged(calibration, batch, probs, features):
        return np.logical_or(*calibration.flags(batch, probs, features)).mean()

    int8_file = Path(model_dir) / "model_int8.tflite"
    int8 = task.open_tflite(int8_file) if int8_file.is_file() else None
    test_probs, test_features = task.probabilities_and_features(test.x)
    share, peer_share, lite_share, int8_share = {}, {}, {}, {}
    for kind, batch in [("in_domain_test", test.x), *((k, task.prepare(v)) for k, v in ood.items())]:
        probs, features = (test_probs, test_features) if kind == "in_domain_test" else \
            task.probabilities_and_features(batch)
        share[kind] = float(flagged(cal, batch, probs, features))
        peer_share[kind] = float(flagged(peer, batch, probs, None))
        lite_share[kind] = float(flagged(lite, batch, probs, None))
        if int8 is not None and int8.calibration_ is not None:  # the int8 file, its own outputs and rule
            lite_probs, lite_features = int8.probabilities_and_features(batch)
            rows = int8.assess_batch(batch, lite_probs, features=lite_features)
            int8_share[kind] = float(np.mean([row["not_sure"] for row in rows]))
    noise = [k for k in NOISE if k in share]
    off = [k for k in OFF_DOMAIN if k in share]
    noise_share = float(np.mean([share[k] for k in noise]))
    off_share = float(np.mean([share[k] for k in off]))
    ece = (expected_calibration_error(test_probs, test.y), expected_calibration_error(cal.scaled(test_probs), test.y))
    lite_note = "" if lite is cal else (
        "; rule without the feature distance (max probability, pixel distance) {:.3f}")

    def peers(kinds):
        note = f"max-probability peer {np.mean([peer_share[k] for k in kinds]):.3f}"
        return note + lite_note.format(np.mean([lite_share[k] for k in kinds]))

    rows = [
        target(f"{name}: in-domain test images flagged 'not sure'", share["in_domain_test"], "<= 0.05",
               share["in_domain_test"] <= 0.05, note=f"{len(test)} test images; {peers(['in_domain_test'])}; "
               f"rule: {cal.to_card()['score']}"),
        target(f"{name}: random-noise images flagged", noise_share, ">= 0.9", noise_share >= 0.9,
               note=f"{', '.join(noise)}; {peers(noise)}"),
        target(f"{name}: off-domain images flagged", off_share, ">= 0.9", off_share >= 0.9,
               note=f"{', '.join(off)} (photos not used to calibrate); {peers(off)}"),
        target(f"{name}: test ECE after temperature scaling", ece[1], "<= before", ece[1] <= ece[0] + 1e-4,
               note=f"before {ece[0]:.4f}; T={cal.temperature:.3f}" + (
                   "" if cal.report.get("temperature_fitted", True) else " (held-out set had no error: T kept at 1)")),
    ]
    if int8_share:
        checked = ", ".join(int8.calibration_.checks()) if int8.feature_output else ", ".join(
            int8.calibration_.fallback().checks())
        for label, kinds, goal, ok in (("in-domain test images", ["in_domain_test"], "<= 0.05", lambda v: v <= 0.05),
                                       ("random-noise images", noise, ">= 0.9", lambda v: v >= 0.9),
                                       ("off-domain images", off, ">= 0.9", lambda v: v >= 0.9)):
            value = float(np.mean([int8_share[k] for k in kinds]))
            keras_value = float(np.mean([share[k] for k in kinds]))
            rows.append(target(f"{name}: int8 TFLite, {label} flagged 'not sure'", value, goal, ok(value),
                               note=f"Keras {keras_value:.3f} on the same images; the file checks {checked}"))
    return rows, {"model": str(model_dir), "flagged": share, "peer_max_probability_flagged": peer_share,
                  **({"int8_tflite_flagged": int8_share} if int8_share else {}),
                  **({} if lite is cal else {"without_features_flagged": lite_share}),
                  "ece_test_before": ece[0], "ece_test_after": ece[1], "calibration": cal.to_card()}


def image_classifiers() -> list[Path]:
    """The shipped image classifier folders whose training data can be reloaded."""
    import json

    found = []
    for card in sorted((ROOT / "saved_models" / "vision").glob("*/card.json")):
        if json.loads(card.read_text()).get("task") == "image_classifier":
            found.append(card.parent)
    return found


def run() -> dict:
    rows, details = [], []
    for directory in image_classifiers():
        try:
            more, detail = honest(directory)
        except Exception as exc:  # a folder whose data is not here: say so, measure the others
            details.append({"model": str(directory), "skipped": str(exc)})
            continue
        rows += more
        details.append(detail)
    return {"rows": rows, "models": details}
