"""A converted classifier with another head (toolkit.edge.head_swap) and the frozen backbone's
remembered features (toolkit.vision.feature_memo): the swapped file must answer like the Keras
model with the new head, and like a fresh conversion of it."""

from __future__ import annotations

import numpy as np
import pytest

from toolkit.edge.export import convert
from toolkit.edge.head_swap import int8_ranges, swap_head
from toolkit.edge.runner import LiteRTSession
from toolkit.errors import ExportError


def tiny(n_classes: int, seed: int, softmax: bool = True):
    import keras

    keras.utils.set_random_seed(seed)
    inputs = keras.Input((16, 16, 3), name="pixels")
    x = keras.layers.Rescaling(1 / 255.0)(inputs)
    x = keras.layers.Conv2D(32, 3, activation="relu6", name="conv")(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = keras.layers.Dense(n_classes, activation="softmax" if softmax else None, name="predictions")(x)
    return keras.Model(inputs, outputs)


def run(data: bytes, x: np.ndarray, tmp_path, name: str) -> np.ndarray:
    path = tmp_path / name
    path.write_bytes(data)
    return LiteRTSession(path).run_batched(x)


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(0).uniform(0, 255, (60, 16, 16, 3)).astype(np.float32)


def new_head(base, n_classes: int, seed: int):
    """A model on ``base``'s backbone (same conv weights) with a new ``n_classes`` head."""
    model = tiny(n_classes, seed)
    model.get_layer("conv").set_weights(base.get_layer("conv").get_weights())
    kernel = np.random.default_rng(seed).normal(0, 2.0, (32, n_classes)).astype(np.float32)
    bias = np.linspace(-0.5, 0.5, n_classes).astype(np.float32)
    model.get_layer("predictions").set_weights([kernel, bias])
    return model, kernel, bias


@pytest.mark.parametrize("n_classes", [2, 5])
def test_an_int8_head_written_into_a_template_answers_like_keras_and_a_fresh_conversion(images, tmp_path,
                                                                                         n_classes):
    import keras

    base = tiny(3, 0)
    template = convert(base, "int8", images)
    model, kernel, bias = new_head(base, n_classes, 1)
    features = keras.Model(model.input, model.get_layer("pool").output)(images).numpy()
    swapped = run(swap_head(template, kernel, bias, *int8_ranges(features, kernel, bias)), images, tmp_path, "s.tflite")
    fresh = run(convert(model, "int8", images), images, tmp_path, "f.tflite")
    keras_probs = model(images).numpy()
    assert swapped.shape == (len(images), n_classes)
    assert np.mean(swapped.argmax(1) == keras_probs.argmax(1)) >= 0.95
    assert np.abs(swapped - keras_probs).max() < 0.08
    assert np.abs(swapped - fresh).max() < 0.08  # as close as the converter's own file


def test_a_dynamic_range_head_is_written_exactly(images, tmp_path):
    base = tiny(3, 0)
    template = convert(base, "dynamic")
    model, kernel, bias = new_head(base, 4, 2)
    swapped = run(swap_head(template, kernel, bias), images, tmp_path, "d.tflite")
    np.testing.assert_allclose(swapped, model(images).numpy(), atol=2e-3)


def test_a_file_without_a_softmax_head_or_of_another_width_is_refused(images):
    with pytest.raises(ExportError, match="FULLY_CONNECTED -> SOFTMAX"):
        swap_head(convert(tiny(3, 0, softmax=False), "dynamic"), np.zeros((32, 2)), np.zeros(2))
    with pytest.raises(ExportError, match="takes 32 features; the new head takes 7"):
        swap_head(convert(tiny(3, 0), "dynamic"), np.zeros((7, 2)), np.zeros(2))
    with pytest.raises(ExportError, match="feature and logit ranges"):
        swap_head(convert(tiny(3, 0), "int8", images), np.ones((32, 2)), np.zeros(2))


def test_frozen_features_are_computed_once_per_image_and_never_shared_with_other_weights(fake_pretrained,
                                                                                        tmp_path):
    from test_make_your_own import FAST, photos

    from toolkit import make_your_own as mine
    from toolkit.base import load
    from toolkit.vision import feature_memo

    result = mine.train_from_examples("image", photos(tmp_path / "in"), tmp_path / "work", **FAST)
    task = result.task
    assert feature_memo.uses_memo(task)
    x = np.random.default_rng(3).uniform(0, 255, (5, *task.input_shape_)).astype(np.float32)
    feature_memo.clear()
    first = task.probabilities(x)
    assert feature_memo.size() == 5
    np.testing.assert_allclose(task.probabilities(x), first, atol=1e-6)
    again = load(result.directory)  # the same weights: the same rows
    np.testing.assert_allclose(again.probabilities(x), first, atol=1e-5)
    assert feature_memo.size() == 5
    conv = next(layer for layer in again.model_.get_layer("backbone").layers if layer.weights)
    conv.set_weights([w + 0.05 for w in conv.get_weights()])
    again._feature_fn = None  # as for a new model object: its weights are hashed again
    again.probabilities(x)
    assert feature_memo.size() == 10
    assert not np.allclose(feature_memo.frozen_features(again, x), feature_memo.frozen_features(task, x), rtol=1e-3, atol=0)
    assert "earlier in this process" in result.tflite["conversion"] or "now" in result.tflite["conversion"]
