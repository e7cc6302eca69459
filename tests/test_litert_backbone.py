"""A served classifier's frozen ImageNet backbone run by LiteRT (toolkit.vision.litert_backbone):
the same float32 weights, the same answers as Keras, converted once and kept on disk, never used
where it disagrees, and the page says what ran it."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A transfer-learned classifier on the fake ImageNet backbone, trained once for this module's tests."""
    from conftest import use_fake_pretrained
    from test_make_your_own import FAST, photos

    from toolkit import make_your_own as mine
    from toolkit.vision import feature_memo

    folder = tmp_path_factory.mktemp("litert")
    with pytest.MonkeyPatch.context() as patcher:
        use_fake_pretrained(patcher, tmp_path_factory)
        feature_memo.clear()
        result = mine.train_from_examples("image", photos(folder / "in"), folder / "work", **FAST)
        assert feature_memo.uses_memo(result.task)
        yield result, folder / "cache"


@pytest.fixture
def served(trained, fake_pretrained, monkeypatch):
    """The trained classifier as if just trained (no LiteRT runner in this process yet, nothing remembered).
    The cache folder is the module's: a file kept by an earlier test is read (and checked) instead of
    converted again, as a new start would; each test that needs a conversion forces one."""
    from toolkit.vision import feature_memo, litert_backbone

    result, cache = trained
    monkeypatch.setenv("TOOLKIT_CACHE_DIR", str(cache))
    monkeypatch.setattr(litert_backbone, "_RUNNERS", {})
    feature_memo.clear()
    result.task._served_features = None
    return result


def test_served_backbone_gives_the_keras_answers_and_is_kept_on_disk(served, monkeypatch):
    from toolkit.base import load
    from toolkit.vision import feature_memo, litert_backbone

    task = served.task
    x = np.random.default_rng(5).uniform(0, 255, (6, *task.input_shape_)).astype(np.float32)
    keras_probs, keras_features = task.probabilities_and_features(x)
    assert feature_memo.served_features(task) is None
    runner = litert_backbone.serve_with_litert(task)
    assert runner is not None and feature_memo.served_features(task) is runner
    assert runner.path.is_file() and runner.path.parent == litert_backbone.cache_dir()
    probs, features = task.probabilities_and_features(x)
    np.testing.assert_allclose(features, keras_features, atol=1e-4 * np.abs(keras_features).max())
    np.testing.assert_allclose(probs, keras_probs, atol=1e-5)
    assert (probs.argmax(-1) == keras_probs.argmax(-1)).all()
    # another process (a new start) reads the kept file instead of converting again
    monkeypatch.setattr(litert_backbone, "_RUNNERS", {})
    monkeypatch.setattr(litert_backbone, "_convert", lambda *a: pytest.fail("converted again"))
    again = load(served.directory)
    assert litert_backbone.serve_with_litert(again).path == runner.path
    np.testing.assert_allclose(again.probabilities(x), keras_probs, atol=1e-5)


def test_a_damaged_kept_file_is_made_again_and_a_disagreeing_one_never_serves(served, monkeypatch):
    from toolkit.vision import feature_memo, litert_backbone

    task = served.task
    path = litert_backbone.serve_with_litert(task).path
    path.write_bytes(b"not a tflite file")
    monkeypatch.setattr(litert_backbone, "_RUNNERS", {})
    task._served_features = None
    assert litert_backbone.serve_with_litert(task).path.stat().st_size > 1000  # converted again
    monkeypatch.setattr(litert_backbone, "_RUNNERS", {})
    monkeypatch.setattr(litert_backbone, "TOLERANCE", -1.0)  # no conversion can pass
    task._served_features = None
    assert litert_backbone.serve_with_litert(task) is None
    assert feature_memo.served_features(task) is None  # TensorFlow keeps answering


def test_a_model_without_a_frozen_package_backbone_is_left_to_keras():
    from apps.vision import DEFAULT_MODEL_DIR, VisionService
    from toolkit.vision import feature_memo, litert_backbone

    if not (DEFAULT_MODEL_DIR / "card.json").is_file():
        pytest.skip("the digits model is not built (make models)")
    task = VisionService(DEFAULT_MODEL_DIR).task
    assert litert_backbone.serve_with_litert(task) is None
    assert feature_memo.served_features(task) is None


def test_the_vision_tab_says_what_ran_the_backbone(served, tmp_path):
    from PIL import Image

    from apps import vision

    service = vision.VisionService(served.directory)
    path = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(path)
    _, _, note = vision.classify_image.__wrapped__(service, str(path), None, "Keras")
    assert "LiteRT" not in note
    service.warm_up()
    labels, _, note = vision.classify_image.__wrapped__(service, str(path), None, "Keras")
    assert "float32 weights run by LiteRT (XNNPACK)" in note and "ms for this prediction" in note
    assert len(labels) == min(vision.TOP_K, len(service.task.class_names_))


def test_a_batch_split_over_sessions_gives_each_image_the_features_of_one_session(served):
    """The burst's batch is split over parallel interpreters: each image's features are those it
    gets alone, whatever part it lands in, also with two batches at once from two threads."""
    from concurrent.futures import ThreadPoolExecutor

    from toolkit.vision import litert_backbone

    task = served.task
    runner = litert_backbone.serve_with_litert(task)
    assert len(runner.sessions) == litert_backbone.SESSIONS
    x = np.random.default_rng(7).uniform(0, 255, (7, *task.input_shape_)).astype(np.float32)
    alone = np.concatenate([runner.session.run(x[i : i + 1]) for i in range(len(x))])
    split = litert_backbone.LiteRTFeatures(runner.path, sessions=3)
    assert len(split.sessions) == 3
    tolerance = 1e-5 * float(np.abs(alone).max())
    np.testing.assert_allclose(split(x), alone, rtol=0, atol=tolerance)
    np.testing.assert_allclose(split(x[:2]), alone[:2], rtol=0, atol=tolerance)  # fewer images than sessions
    assert split(x[:0]).shape[0] == 0
    with ThreadPoolExecutor(2) as pool:
        first, second = pool.map(split, [x, x[::-1]])
    np.testing.assert_allclose(first, alone, rtol=0, atol=tolerance)
    np.testing.assert_allclose(second, alone[::-1], rtol=0, atol=tolerance)
