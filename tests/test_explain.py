"""Explanations: Grad-CAM, SHAP and LIME find the region that decides the label."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from conftest import region_task
from toolkit import ImageClassifier
from toolkit.explain import grid_segments, mass_in_region


@pytest.fixture(scope="module")
def region_model():
    x, y, region = region_task()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf = ImageClassifier(epochs=15, patience=15, batch_size=32, seed=0).fit((x, y))
    assert clf.evaluate(region_task(n=100, seed=1)[:2])["accuracy"] >= 0.95
    return clf, region


@pytest.fixture(scope="module")
def positives():
    x, y, _ = region_task(n=20, seed=2)
    return x[y == 1][:3]


def test_gradcam_looks_at_the_deciding_region(region_model, positives):
    clf, region = region_model
    shares = [mass_in_region(clf.explain(img, method="gradcam", target="1").attributions, region) for img in positives]
    # The region is a quarter of the image: chance is 0.25.
    assert np.mean(shares) > 0.5, shares


@pytest.mark.parametrize("method", ["shap", "lime"])
def test_shap_and_lime_look_at_the_deciding_region(region_model, positives, method):
    clf, region = region_model
    shares = [mass_in_region(clf.explain(img, method=method, target="1").attributions, region) for img in positives]
    assert np.mean(shares) > 0.5, shares


def test_explanation_shape_budget_and_files(region_model, positives, tmp_path):
    clf, _ = region_model
    exp = clf.explain(positives[0], method="lime", budget=50)
    assert exp.method == "lime" and exp.budget == 50 and exp.target in ("0", "1")
    assert exp.attributions.shape == (32, 32) and exp.image.dtype == np.uint8 and exp.image.shape[-1] == 3
    assert exp.seconds > 0
    assert exp.save(tmp_path / "x.png").read_bytes()[:4] == b"\x89PNG"
    assert np.load(exp.save(tmp_path / "x.npy")).shape == (32, 32)
    assert '"method": "lime"' in exp.save(tmp_path / "x.json").read_text()
    smooth = clf.explain(positives[0], method="gradcam", budget=4)
    assert smooth.budget == 4 and smooth.attributions.max() == pytest.approx(1.0)


def test_explain_errors(region_model, positives):
    clf, _ = region_model
    with pytest.raises(ValueError, match=r"Unknown explanation method 'saliency'.*gradcam"):
        clf.explain(positives[0], method="saliency")
    from toolkit.errors import DataError

    with pytest.raises(DataError, match="Unknown target class 'cat'"):
        clf.explain(positives[0], target="cat")
    with pytest.raises(DataError, match="one image"):
        clf.explain(positives[:2])


def test_grid_segments():
    seg = grid_segments(8, 8, 4)
    assert seg.shape == (8, 8) and len(np.unique(seg)) == 16 and seg[0, 0] == 0 and seg[7, 7] == 15


def test_lime_on_photos_finds_the_region():
    from toolkit.explain import lime_image

    rng = np.random.default_rng(0)
    image = rng.uniform(0, 255, (1, 48, 48, 3)).astype("float32")
    image[0, 10:40, 10:40] = (200, 40, 40)  # a red square for SLIC to find

    def predict_proba(batch):  # class 1 = how bright the top-left quadrant is
        p = batch[:, :24, :24].mean(axis=(1, 2, 3)) / 255.0
        return np.stack([1 - p, p], axis=1)

    attributions = lime_image(predict_proba, image, target=1, budget=200, hide_color=0.0)
    region = np.zeros((48, 48), bool)
    region[:24, :24] = True
    assert attributions.shape == (48, 48) and len(np.unique(attributions)) > 4
    assert mass_in_region(attributions, region) > 0.8
