"""Honest answers: temperature scaling, calibration error, the "not sure" flag (library, TFLite, CLI, demo)."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from conftest import run, write_image
from toolkit.calibration import (FEATURE_FILE, Calibration, FeatureDensity, PixelDensity, calibrate,
                                 expected_calibration_error, fit_temperature, ood_images, reliability_curve,
                                 scale_probabilities)
from toolkit.errors import DataError, ToolkitError


def _overconfident(n=2000, classes=4, sharpen=3.0, seed=0):
    """Labels drawn from softmax(z); the 'model' reports softmax(sharpen * z): overconfident."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 1.5, (n, classes))
    true = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    y = np.array([rng.choice(classes, p=p) for p in true])
    model = np.exp(sharpen * z) / np.exp(sharpen * z).sum(1, keepdims=True)
    return model, y


def test_temperature_undoes_overconfidence_and_ece_drops():
    probs, y = _overconfident()
    t = fit_temperature(probs, y)
    assert t == pytest.approx(3.0, rel=0.15)
    assert np.allclose(scale_probabilities(probs, 1.0), probs, atol=1e-5)
    before, after = expected_calibration_error(probs, y), expected_calibration_error(scale_probabilities(probs, t), y)
    assert before > 0.1 and after < 0.03
    curve = reliability_curve(probs, y, n_bins=10)
    assert sum(curve["count"]) == len(y) and curve["ece"] == pytest.approx(before, abs=0.02)
    assert all(lo <= c <= hi for lo, c, hi in zip(curve["bin_low"], curve["confidence"], curve["bin_high"]))


def test_no_held_out_error_keeps_the_temperature():
    probs = np.array([[0.7, 0.3], [0.2, 0.8], [0.9, 0.1]])
    assert fit_temperature(probs, np.array([0, 1, 0])) == 1.0


def test_pixel_distance_separates_noise_and_round_trips(tmp_path):
    from toolkit.data import load_digits

    digits = load_digits()
    density = PixelDensity.fit(digits.train.x)
    rng = np.random.default_rng(0)
    assert np.median(density.distance(digits.test.x)) < 1.5
    assert density.distance(rng.uniform(0, 255, (20, 8, 8, 1))).min() > 3 * np.quantile(
        density.distance(digits.test.x), 0.95)
    again = PixelDensity.load(density.save(tmp_path / "ref.npz"))
    assert np.allclose(again.distance(digits.test.x[:5]), density.distance(digits.test.x[:5]))
    (tmp_path / "bad.npz").write_bytes(b"not an npz")
    with pytest.raises(ToolkitError, match="toolkit calibrate"):
        PixelDensity.load(tmp_path / "bad.npz")


def test_calibrate_keeps_in_domain_flags_under_the_budget():
    rng = np.random.default_rng(0)
    val = rng.normal(100, 10, (200, 8, 8, 1)).clip(0, 255)
    val_probs, val_y = _overconfident(200, 3)
    ood_batch = rng.uniform(0, 255, (50, 8, 8, 1))
    ood_probs = np.full((50, 3), 1 / 3)
    cal = calibrate(val_probs, val_y, val, rng.normal(100, 10, (300, 8, 8, 1)).clip(0, 255),
                    {"noise": (ood_batch, ood_probs)}, max_flagged=0.05)
    assert cal.report["in_domain_flagged"] <= 0.05 and cal.report["ood_flagged"] >= 0.9
    assert cal.temperature > 1.5 and cal.report["ece_after"] < cal.report["ece_before"]
    rows = cal.assess(ood_batch[:2], ood_probs[:2])
    assert rows[0] == {"in_domain": False, "not_sure": True, "why": "looks unlike the training images",
                       "checked": ["max_probability", "pixel_distance"]}
    again = Calibration.from_card(json.loads(json.dumps(cal.to_card())), None)  # no reference file: no pixel check
    assert again.temperature == cal.temperature and again.distance_threshold is None
    with pytest.raises(DataError, match="at least 2 held-out images"):
        calibrate(val_probs[:1], val_y[:1], val[:1], None, {})


def _feature_problem(seed=0, dim=64):
    """Two classes of 'pooled features' along their own directions; the generated inputs have
    confident probabilities and training-like pixels, but features pointing elsewhere."""
    rng = np.random.default_rng(seed)
    centres = np.abs(rng.normal(0, 1, (3, dim)))  # class 0, class 1, off-domain

    def features(n, c):
        return np.abs(centres[c] + rng.normal(0, 0.15, (n, dim)))

    y = np.arange(120) % 2
    pixels = lambda n: rng.normal(100, 10, (n, 8, 8, 1)).clip(0, 255)  # noqa: E731
    probs = lambda labels: np.eye(2)[labels] * 0.9 + 0.05  # noqa: E731
    val_y = np.arange(40) % 2
    val_f = np.concatenate([features(1, c) for c in val_y])
    ref_f = np.concatenate([features(1, c) for c in y])
    ood = {"other": (pixels(30), probs(np.zeros(30, int)), features(30, 2))}
    return (probs(val_y), val_y, pixels(40), val_f), (pixels(120), ref_f, y), ood


def test_feature_distance_flags_what_pixels_and_probabilities_miss(tmp_path):
    (val_p, val_y, val_x, val_f), (ref_x, ref_f, ref_y), ood = _feature_problem()
    density = FeatureDensity.fit(ref_f, ref_y)
    assert density.distance(ood["other"][2]).min() > density.distance(val_f).max()
    again = FeatureDensity.load(density.save(tmp_path / FEATURE_FILE))
    assert np.allclose(again.distance(val_f[:5]), density.distance(val_f[:5]))

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the rule without features flags too little: it warns only if chosen
        cal = calibrate(val_p, val_y, val_x, ref_x, ood, val_features=val_f, reference_features=(ref_f, ref_y))
    assert cal.uses_features and cal.report["ood_flagged"] == 1.0 and cal.report["in_domain_flagged"] <= 0.05
    assert cal.report["without_features_ood_flagged"] < 0.5  # the pixels and probabilities alone miss them
    batch, probs, features = ood["other"]
    row = cal.assess(batch[:1], probs[:1], features[:1])[0]
    assert row["not_sure"] and row["in_domain"] is False and row["why"] == "looks unlike the training images"
    assert "feature_distance" in row["checked"]
    blind = cal.assess(batch, probs)  # a .tflite: no features, the rule calibrated without them
    assert all("feature_distance" not in r["checked"] for r in blind)
    assert np.mean([r["not_sure"] for r in blind]) == cal.report["without_features_ood_flagged"]

    card = cal.to_card()
    assert card["feature_reference_file"] == FEATURE_FILE and "without_features" in card
    assert ".tflite" in card["without_features"]["used_by"]
    cal.save_references(tmp_path)
    loaded = Calibration.from_card(json.loads(json.dumps(card)), tmp_path)
    assert loaded.uses_features and loaded.feature_threshold == cal.feature_threshold
    assert [r["not_sure"] for r in loaded.assess(batch, probs, features)] == [True] * len(batch)
    (tmp_path / FEATURE_FILE).unlink()  # a folder without the feature file falls back to the rule without it
    missing = Calibration.from_card(card, tmp_path)
    assert not missing.uses_features and missing.probability_threshold == card["without_features"]["threshold"][
        "max_probability"]


def test_no_feature_score_without_features_for_every_input():
    (val_p, val_y, val_x, val_f), (ref_x, ref_f, ref_y), ood = _feature_problem()
    ood = {"other": ood["other"][:2]}  # generated inputs without features: no feature score
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cal = calibrate(val_p, val_y, val_x, ref_x, ood, val_features=val_f, reference_features=(ref_f, ref_y))
    assert cal.features is None and "feature_reference_file" not in cal.to_card()


def test_generated_inputs_are_raw_images_of_every_kind():
    kinds = ood_images(n=3, seed=1, size=32)
    assert {"uniform_noise", "flat_colours", "stripes", "photos", "digits_upscaled"} <= set(kinds)
    for images in kinds.values():
        assert len(images) == 3 and all(i.ndim == 3 and 0 <= i.min() and i.max() <= 255 for i in images)
    assert not np.array_equal(ood_images(n=3, seed=2, size=32)["uniform_noise"][0], kinds["uniform_noise"][0])


# ---------------------------------------------------------------------------- the shipped digits model


@pytest.fixture(scope="module")
def digits_model(shipped_digits):
    from toolkit import load

    return load(shipped_digits)


def _random_colours(seed=0):
    return np.random.default_rng(seed).integers(0, 255, (48, 48, 3)).astype(np.uint8)


def test_shipped_card_records_the_calibration(digits_model):
    section = digits_model.card()["calibration"]
    assert section["in_domain_flagged"] <= 0.05 and section["ood_flagged"] >= 0.9
    assert {"temperature", "ece_before", "ece_after", "threshold", "n_in_domain", "n_ood"} <= set(section)
    assert (digits_model.directory_ / section["reference_file"]).is_file()


def test_assess_flags_random_colours_not_digits(digits_model):
    from toolkit.data import load_digits

    test = load_digits().test
    rows = digits_model.assess(test.x[:60], k=3)
    assert np.mean([r["not_sure"] for r in rows]) <= 0.05
    assert [r["label"] for r in rows] == list(digits_model.predict(test.x[:60]))
    assert len(rows[0]["top_k"]) == 3 and rows[0]["temperature"] == digits_model.calibration_.temperature
    noisy = digits_model.assess(_random_colours())[0]
    assert noisy["not_sure"] and noisy["in_domain"] is False and noisy["why"] == "looks unlike the training images"


def test_tflite_flags_like_keras(digits_model, shipped_digits):
    from toolkit.edge import TFLiteModel

    lite = TFLiteModel(shipped_digits / "model_int8.tflite")
    images = [_random_colours(1), np.kron(np.eye(8) * 255, np.ones((4, 4)))]
    assert [r["not_sure"] for r in lite.assess(images)] == [r["not_sure"] for r in digits_model.assess(images)]
    assert lite.assess(_random_colours(2))[0]["not_sure"]
    with pytest.raises(ToolkitError, match="toolkit calibrate"):
        lite.calibrate()


def test_cli_predict_json_says_not_sure(capsys, shipped_digits, digits_png, tmp_path):
    noise = write_image(tmp_path / "noise.jpg", _random_colours(3))
    code, out, _ = run(capsys, "predict", str(shipped_digits), "--image", str(digits_png[0][0]), str(noise),
                       "--top-k", "2")
    rows = json.loads(out)
    assert code == 0 and [r["not_sure"] for r in rows] == [False, True]
    assert rows[0]["label"] == digits_png[1][0] and len(rows[0]["top_k"]) == 2 and rows[1]["why"]


# ---------------------------------------------------------------------------- a tiny model: calibrate, save, export


def test_tiny_model_calibrates_saves_and_exports(tiny_model, tiny_data, tmp_path):
    from toolkit import load
    from toolkit.edge import TFLiteModel

    x, y = tiny_data
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        section = tiny_model.calibrate((x[::3], y[::3]), ood=[_random_colours(k) for k in range(20)])
    assert section["n_in_domain"] == 30 and section["n_ood"] == 20 and section["in_domain_flagged"] <= 0.05
    directory = tiny_model.save(tmp_path / "m")
    loaded = load(directory)
    assert loaded.card()["calibration"]["threshold"] == section["threshold"]
    assert [r["not_sure"] for r in loaded.assess(x[:5])] == [r["not_sure"] for r in tiny_model.assess(x[:5])]
    phone = tmp_path / "phone"
    loaded.export(phone, quantization="float32", data=tiny_data)
    lite = TFLiteModel(phone / "model_float32.tflite")
    assert lite.calibration_ is not None and lite.calibration_.density is not None
    assert lite.assess(_random_colours(5))[0]["not_sure"] == loaded.assess(_random_colours(5))[0]["not_sure"]
    tiny_model.calibration_ = None  # the session fixture stays as other tests expect it


def test_exported_file_returns_features_when_the_rule_reads_them(tiny_model, tiny_data, tmp_path):
    """A calibration with a feature distance: the .tflite gets a 'features' output, the runner reads
    it, flags as the Keras model does, and the metadata describes the rule and packs its reference."""
    from toolkit.calibration import FEATURE_FILE, Calibration, FeatureDensity
    from toolkit.edge import TFLiteModel
    from toolkit.edge.metadata import read_metadata

    x, y = tiny_data
    probs, features = tiny_model.probabilities_and_features(x)
    assert features is not None
    density = FeatureDensity.fit(features, y, n_components=4)
    threshold = float(np.quantile(density.distance(features), 0.95))
    tiny_model.calibration_ = Calibration(features=density, feature_threshold=threshold)
    try:
        odd = np.stack([_random_colours(k)[:12, :12, :1] for k in range(6)]).astype(np.float32)
        keras_rows = tiny_model.assess(np.concatenate([x[:6], odd]))
        for quantization in ("float32", "int8"):
            file = tiny_model.export(tmp_path / quantization, quantization=quantization, data=tiny_data)
            lite = TFLiteModel(file, card=tiny_model.card())
            assert lite.feature_output
            lite_probs, lite_features = lite.probabilities_and_features(tiny_model.prepare(x))
            assert lite_features.shape == features.shape and lite_probs.shape == probs.shape
            assert np.abs(lite_features - features).max() <= (1e-4 if quantization == "float32" else 0.1 * features.max())
            rows = lite.assess(np.concatenate([x[:6], odd]))
            agree = np.mean([a["not_sure"] == b["not_sure"] for a, b in zip(rows, keras_rows)])
            assert agree >= (1.0 if quantization == "float32" else 0.8) and "feature_distance" in rows[0]["checked"]
            meta = read_metadata(file)
            assert [o["name"] for o in meta["outputs"]] == [
                "features" if n == "features" else "probability" for n in lite.output_names]
            assert FEATURE_FILE in meta["files"] and f"{threshold}"[:6] in str(meta["outputs"])
    finally:
        tiny_model.calibration_ = None  # the session fixture stays as other tests expect it


def test_uncalibrated_models_never_say_not_sure(tiny_model, tiny_data):
    row = tiny_model.assess(tiny_data[0][0])[0]
    assert row["not_sure"] is False and row["in_domain"] is None and row["temperature"] is None


def test_shipped_photo_model_flags_noise_with_its_features(tmp_path):
    from conftest import REPO, SHARED_DATA

    from toolkit.vision.transfer_recipe import pretrained_default_problem

    directory = REPO / "saved_models" / "vision" / "ants_bees"
    problem = pretrained_default_problem()
    if problem or not (SHARED_DATA / "ants_bees").is_dir():
        pytest.skip(problem or "../shared/data/ants_bees is absent")
    from toolkit import load
    from toolkit.edge import TFLiteModel

    clf = load(directory)
    section = clf.card()["calibration"]
    assert section["ood_flagged"] >= 0.9 and section["in_domain_flagged"] <= 0.05
    assert (directory / section["feature_reference_file"]).stat().st_size < 1_000_000
    bee = sorted((SHARED_DATA / "ants_bees" / "bees").iterdir())[0]
    flat = np.full((64, 64, 3), 128, np.uint8)
    from toolkit.data.images import read_image

    rows = clf.assess([read_image(bee), _random_colours(5), flat])
    assert [r["not_sure"] for r in rows] == [False, True, True] and rows[0]["label"] == "bees"
    assert "feature_distance" in rows[0]["checked"]
    lite = TFLiteModel(directory / "model_int8.tflite")  # returns its pooled features too: the same rule
    assert lite.feature_output and sorted(lite.output_names) == ["features", "probabilities"]
    rows = lite.assess([read_image(bee), _random_colours(5), flat])
    assert [r["not_sure"] for r in rows] == [False, True, True] and rows[0]["label"] == "bees"
    assert "feature_distance" in rows[0]["checked"]


def test_demo_says_not_sure_for_random_colours(shipped_digits, digits_png, tmp_path):
    pytest.importorskip("gradio")
    from apps import vision

    service = vision.VisionService(shipped_digits)
    noise = write_image(tmp_path / "colours.jpg", _random_colours(4))
    for backend in ("Keras", "model_int8.tflite"):
        top, _, note = vision.classify_image(service, str(noise), None, backend)
        assert all(label.endswith("(unsure)") for label in top) and "Not sure: this image looks unlike" in note
        top, _, note = vision.classify_image(service, str(digits_png[0][0]), None, backend)
        assert max(top, key=top.get) == digits_png[1][0] and "Not sure" not in note
    assert vision.clear_outputs() == (None, None, "", None, "")
