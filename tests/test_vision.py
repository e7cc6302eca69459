"""ImageClassifier: configuration, transfer learning, resuming, saving and evaluation."""

from __future__ import annotations

import dataclasses
import json
import warnings

import numpy as np
import pytest

from toolkit import ImageClassifier, ImageClassifierConfig
from toolkit.errors import DataError, ModelFormatError, NotFittedError, WeightsUnavailableError
from toolkit.transfer import get_backbone


def test_config_validation_lists_valid_names():
    with pytest.raises(ValueError, match=r"Unknown backbone 'resnet9'.*mobilenet_v2.*small_cnn"):
        ImageClassifierConfig(backbone="resnet9")
    with pytest.raises(ValueError, match="no ImageNet weights"):
        ImageClassifierConfig(backbone="small_cnn", weights="imagenet")
    with pytest.raises(ValueError, match="epochs must be > 0"):
        ImageClassifierConfig(epochs=0)
    assert ImageClassifierConfig(image_size=64).image_size == (64, 64)
    assert ImageClassifierConfig(augment=True).augment == "photos"
    with pytest.raises(ValueError, match=r"Unknown augment preset 'mixup'.*shift"):
        ImageClassifierConfig(augment="mixup")
    variant = dataclasses.replace(ImageClassifierConfig(), backbone="lenet5")
    assert variant.backbone == "lenet5"


def test_predict_before_fit_raises():
    with pytest.raises(NotFittedError, match="not fitted"):
        ImageClassifier().predict(np.zeros((8, 8)))


def test_one_class_is_rejected():
    with pytest.raises(DataError, match="at least 2 classes"):
        ImageClassifier(epochs=1).fit((np.zeros((10, 8, 8)), np.zeros(10, int)))


def test_predict_accepts_any_size_and_channels(tiny_model):
    rgb = np.random.default_rng(0).integers(0, 255, (50, 40, 3)).astype(np.uint8)
    assert tiny_model.predict(rgb).shape == (1,)
    assert tiny_model.predict_proba(np.zeros((3, 12, 12, 1))).shape == (3, 3)
    top = tiny_model.top_k(rgb, k=2)[0]
    assert len(top) == 2 and top[0]["probability"] >= top[1]["probability"]


def test_report_and_evaluate(tiny_model, tiny_data):
    report = tiny_model.report(tiny_data)
    assert report.confusion_matrix.sum() == len(tiny_data[1])
    metrics = tiny_model.evaluate(tiny_data)
    assert {"accuracy", "macro_f1", "baseline_majority_accuracy", "f1/0"} <= set(metrics)
    assert metrics["accuracy"] == pytest.approx(np.trace(report.confusion_matrix) / len(tiny_data[1]))
    assert report.confusion_matrix_png()[:4] == b"\x89PNG"


def test_save_load_roundtrip_and_integrity(tiny_model, tmp_path):
    directory = tiny_model.save(tmp_path / "m")
    card = json.loads((directory / "card.json").read_text())
    assert card["task"] == "image_classifier" and card["labels"] == ["0", "1", "2"]
    assert card["input"] == {**card["input"], "shape": [12, 12, 1], "range": [0, 255]}
    assert (directory / "labels.txt").read_text().split() == ["0", "1", "2"]
    loaded = ImageClassifier.load(directory)
    x = np.random.default_rng(1).uniform(0, 255, (4, 12, 12, 1))
    np.testing.assert_allclose(loaded.predict_proba(x), tiny_model.predict_proba(x), atol=1e-6)

    with open(directory / "model.keras", "ab") as f:  # tamper
        f.write(b"!")
    with pytest.raises(ModelFormatError, match="does not match its card"):
        ImageClassifier.load(directory)


def test_save_is_atomic(tiny_model, tmp_path, monkeypatch):
    directory = tiny_model.save(tmp_path / "m")
    before = (directory / "card.json").read_text()

    def crash(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(type(tiny_model), "_save_extra", crash)
    with pytest.raises(RuntimeError, match="disk full"):
        tiny_model.save(directory)
    assert (directory / "card.json").read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]  # no temporary folders left


def test_save_refuses_a_folder_of_user_files(tiny_model, tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ModelFormatError, match="not empty"):
        tiny_model.save(tmp_path)
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_imagenet_offline_error_says_where_to_put_the_file(monkeypatch):
    from keras.src.utils import file_utils

    def offline(fname, origin, *args, **kwargs):
        raise Exception(f"URL fetch failure on {origin}: None -- [Errno -2] Name or service not known")

    monkeypatch.setattr(file_utils, "get_file", offline)
    with pytest.raises(WeightsUnavailableError) as info:
        get_backbone("mobilenet_v2", (96, 96, 3), weights="imagenet")
    message = str(info.value)
    assert "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_96_no_top.h5" in message
    assert ".keras/models" in message and "weights=<path" in message


def test_application_backbone_from_a_weights_file(tmp_path):
    source = get_backbone("mobilenet_v3_small", (32, 32, 3))
    path = tmp_path / "mnv3.weights.h5"
    source.save_weights(path)
    loaded = get_backbone("mobilenet_v3_small", (32, 32, 3), weights=str(path))
    for a, b in zip(source.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(WeightsUnavailableError, match="not found"):
        get_backbone("mobilenet_v3_small", (32, 32, 3), weights=str(tmp_path / "missing.h5"))


def test_two_phase_transfer_from_a_saved_model(tiny_model, tiny_data, tmp_path):
    source_dir = tiny_model.save(tmp_path / "source")
    before = [w.numpy().copy() for w in tiny_model.model_.get_layer("backbone").weights]

    x, y = tiny_data
    config = ImageClassifierConfig(weights=str(source_dir), epochs=2, fine_tune_epochs=2, fine_tune_layers=1,
                                   fine_tune_learning_rate=1e-2, batch_size=16, cache_features=False)
    phases = []

    import keras

    class Record(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            backbone = self.model.get_layer("backbone")
            phases.append([layer.name for layer in backbone.layers if layer.trainable and layer.weights])

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf = ImageClassifier(config).fit((x, y % 2), callbacks=[Record()])
    weights = clf.model_.get_layer("backbone").weights
    kernels = [i for i, w in enumerate(weights) if "kernel" in w.path]
    # Phase 1 trains no backbone layer; phase 2 only the top weight layer (not BatchNorm).
    assert phases[0] == [] and len(phases[1]) == 1 and "conv2d" in phases[1][0]
    assert not np.allclose(weights[kernels[-1]].numpy(), before[kernels[-1]])
    for i in kernels[:-1]:
        np.testing.assert_array_equal(weights[i].numpy(), before[i])
    moving = [i for i, w in enumerate(weights) if "moving" in w.path]
    assert moving
    for i in moving:  # BatchNorm statistics stay put: the backbone runs in inference mode
        np.testing.assert_array_equal(weights[i].numpy(), before[i])
    assert clf.history_["fine_tune_start"] == [2] and len(clf.history_["loss"]) == 4


def test_interrupted_fit_resumes_from_last_finished_epoch(tiny_data, tmp_path):
    import keras

    backup = tmp_path / "backup"
    config = ImageClassifierConfig(epochs=4, patience=10, batch_size=32, backup_dir=str(backup))

    class Crash(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 2:
                raise KeyboardInterrupt("power cut")

    with pytest.raises(KeyboardInterrupt):
        ImageClassifier(config).fit(tiny_data, callbacks=[Crash()])
    assert backup.exists()

    seen = []

    class Epochs(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            seen.append(epoch)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ImageClassifier(config).fit(tiny_data, callbacks=[Epochs()])
    assert seen == [2, 3]  # epochs 0 and 1 were finished before the crash
    assert not backup.exists()


def test_lenet5_on_a_folder_is_augmented_by_default(image_folder, tiny_data, monkeypatch):
    built = []
    original = ImageClassifier._augmenter

    def spy(self, preset):
        built.append(preset)
        return original(self, preset)

    monkeypatch.setattr(ImageClassifier, "_augmenter", spy)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf = ImageClassifier(backbone="lenet5", image_size=(20, 20), epochs=1, batch_size=4).fit(image_folder)
        assert built == ["photos"]
        ImageClassifier(epochs=1).fit(tiny_data)  # arrays: none by default
    assert built == ["photos"] and clf.augment_ == "photos"
    assert clf.input_shape_ == (20, 20, 3)
    assert clf.model_.get_layer("resize").output.shape[1:3] == (32, 32)
    assert clf.predict(np.zeros((64, 64, 3))).item() in ("cats", "dogs")
    images = np.random.default_rng(0).uniform(0, 255, (2, 20, 20, 3)).astype(np.float32)
    augmented = np.asarray(original(clf, "photos")(images, training=True))
    assert augmented.shape == images.shape and not np.allclose(augmented, images)


def test_tiny_data_lowers_the_batch_size_with_a_warning(tiny_data):
    with pytest.warns(UserWarning, match="using batch_size=10 instead of 32"):
        clf = ImageClassifier(epochs=1).fit(tiny_data)  # 81 training images after the validation split
    assert clf.batch_size_ == 10 and clf.card()["training"]["batch_size"] == 10
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert ImageClassifier(epochs=1, batch_size=8).fit(tiny_data).batch_size_ == 8
    assert not [w for w in caught if "batch_size" in str(w.message)]  # a batch size that fits: no warning
