"""Data loaders: digits, image folders, arrays, and the errors bad data gets."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import write_image
from toolkit.data import image_batch, labelled_arrays, load_digits, load_image_folder, load_splits, read_image
from toolkit.errors import DataError


def test_digits_split_is_the_documented_one():
    from sklearn.datasets import load_digits as sk_digits
    from sklearn.model_selection import train_test_split

    splits = load_digits()
    bunch = sk_digits()
    _, x_te, _, y_te = train_test_split(bunch.images, bunch.target, test_size=0.2, random_state=42,
                                        stratify=bunch.target)
    assert splits.train.x.shape == (1437, 8, 8, 1) and splits.test.x.shape == (360, 8, 8, 1)
    np.testing.assert_allclose(splits.test.x[..., 0], x_te * 255 / 16, rtol=1e-6)
    np.testing.assert_array_equal(splits.test.y, y_te)
    assert splits.train.x.max() == 255.0 and splits.class_names == [str(i) for i in range(10)]
    assert np.bincount(splits.test.y).min() >= 35  # stratified


def test_folder_with_mixed_formats_modes_and_sizes(image_folder):
    data = load_image_folder(image_folder, image_size=(16, 20))
    assert data.x.shape == (11, 16, 20, 3) and data.x.dtype == np.float32
    assert data.class_names == ["cats", "dogs"]
    assert sorted(np.bincount(data.y).tolist()) == [5, 6]
    assert 0 <= data.x.min() and data.x.max() <= 255
    gray = load_image_folder(image_folder, image_size=(8, 8), channels=1)
    assert gray.x.shape == (11, 8, 8, 1)


def test_rgba_is_composited_on_white(tmp_path):
    rgba = np.zeros((10, 10, 4), np.uint8)  # fully transparent black
    arr = read_image(write_image(tmp_path / "a.png", rgba))
    assert arr.shape == (10, 10, 3) and arr.min() == 255


def test_folder_split_is_stratified_and_reproducible(image_folder):
    a = load_splits(image_folder, (16, 16), test_size=0.4, seed=3)
    b = load_splits(image_folder, (16, 16), test_size=0.4, seed=3)
    assert a.test.files == b.test.files
    assert set(a.test.y.tolist()) == {0, 1}
    assert len(a.train) + len(a.test) == 11
    assert a.spec["test_size"] == 0.4 and a.spec["source"].endswith("photos")


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda root: (root / "cats" / "notes.txt").write_text("hello"), "notes.txt' is not an image file"),
        (lambda root: (root / "dogs" / "broken.png").write_bytes(b"\x89PNG\r\n garbage"), "broken.png"),
        (lambda root: (root / "dogs" / "empty.jpg").write_bytes(b""), "empty.jpg is empty"),
        (lambda root: (root / "birds").mkdir(), "birds' is empty"),
    ],
    ids=["non-image", "corrupt", "empty-file", "empty-class"],
)
def test_bad_folders_name_the_file(image_folder, make, message):
    make(image_folder)
    with pytest.raises(DataError, match=message.replace(".", r"\.")):
        load_image_folder(image_folder, image_size=(16, 16))


def test_one_class_and_missing_folders(tmp_path):
    write_image(tmp_path / "only" / "a" / "x.png", np.zeros((9, 9)))
    with pytest.raises(DataError, match="one class"):
        load_image_folder(tmp_path / "only")
    with pytest.raises(DataError, match="not found"):
        load_image_folder(tmp_path / "nowhere")
    write_image(tmp_path / "flat" / "x.png", np.zeros((9, 9)))
    with pytest.raises(DataError, match="no class subfolders"):
        load_image_folder(tmp_path / "flat")


def test_arrays_errors():
    with pytest.raises(DataError, match="image 2 has shape"):
        labelled_arrays([np.zeros((8, 8)), np.zeros((8, 8)), np.zeros((9, 8))], [0, 1, 0])
    with pytest.raises(DataError, match="1 or 3 channels"):
        image_batch(np.zeros((64, 64, 4)), channels=3, image_size=(8, 8))
    with pytest.raises(DataError, match="one label per image"):
        labelled_arrays(np.zeros((4, 8, 8)), [0, 1])
    with pytest.raises(DataError, match=r"\[0, 255\]"):
        image_batch(np.full((8, 8), 300.0))
    with pytest.raises(DataError, match="too small"):
        image_batch(np.zeros((1, 1, 3)), channels=3, image_size=(16, 16))
    with pytest.raises(DataError, match="NaN"):
        image_batch(np.full((8, 8), np.nan))


def test_string_labels_and_normalised_pixels_warning():
    data = labelled_arrays(np.zeros((4, 8, 8)), ["b", "a", "b", "a"])
    assert data.class_names == ["a", "b"] and data.y.tolist() == [1, 0, 1, 0]
    with pytest.warns(UserWarning, match=r"\[0, 1\]"):
        image_batch(np.full((8, 8), 0.5))


def test_image_batch_converts_channels_and_size():
    rgb = np.random.default_rng(0).integers(0, 255, (40, 30, 3)).astype(np.uint8)
    out = image_batch(rgb, channels=1, image_size=(8, 8))
    assert out.shape == (1, 8, 8, 1) and out.dtype == np.float32
    batch = image_batch([rgb, rgb], channels=3, image_size=(10, 10))
    assert batch.shape == (2, 10, 10, 3)


# --------------------------------------------------------------------------- huge images


def test_a_huge_png_is_refused_from_its_header_before_any_pixel_is_decoded(tmp_path, monkeypatch):
    from PIL import Image, ImageFile

    from toolkit.data.images import MAX_IMAGE_PIXELS, image_size_of

    path = tmp_path / "huge.png"
    Image.new("L", (8000, 6000)).save(path)  # 48 megapixels in a small file
    assert image_size_of(path) == (8000, 6000) and 8000 * 6000 > MAX_IMAGE_PIXELS

    def no_decoding(self):
        raise AssertionError("decoded pixels of an image it should refuse")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    with pytest.raises(DataError, match=r"too large: 8000x6000 pixels\. Expected at most 40 megapixels"):
        read_image(path, target_size=(224, 224))


def test_target_size_reduces_while_or_right_after_decoding(tmp_path):
    from PIL import Image

    gradient = np.tile(np.linspace(0, 255, 2000), (1500, 1)).astype(np.uint8)
    png = write_image(tmp_path / "wide.png", np.stack([gradient] * 3, -1))
    small = read_image(png, target_size=(224, 224))
    assert small.shape == (250, 334, 3)  # reduced 6x (ceil): both sides still cover 224
    assert abs(float(small[:, :, 0].mean()) - float(gradient.mean())) < 1.0
    assert read_image(png, target_size=(1000, 1000)).shape == (1500, 2000, 3)  # no whole factor fits: as is
    Image.new("RGB", (4000, 3000), (200, 40, 40)).save(tmp_path / "camera.jpg")
    photo = read_image(tmp_path / "camera.jpg", target_size=(224, 224))
    assert photo.shape == (375, 500, 3)  # JPEG decoded at 1/8 scale
    assert np.abs(photo[10, 10].astype(int) - (200, 40, 40)).max() <= 3
    rotated = Image.new("RGB", (800, 400), (0, 0, 255))
    exif = rotated.getexif()
    exif[0x0112] = 6  # stored sideways: upright it is 400 wide, 800 tall
    rotated.save(tmp_path / "turned.png", exif=exif)
    assert read_image(tmp_path / "turned.png").shape == (800, 400, 3)
    assert read_image(tmp_path / "turned.png", target_size=(100, 100)).shape == (200, 100, 3)


def test_at_most_two_images_are_decoded_at_once(tmp_path, monkeypatch):
    import threading
    import time

    import toolkit.data.images as images

    inside, most, lock = [0], [0], threading.Lock()
    decode = images._decode

    def slow_decode(img, target):
        with lock:
            inside[0] += 1
            most[0] = max(most[0], inside[0])
        time.sleep(0.05)
        try:
            return decode(img, target)
        finally:
            with lock:
                inside[0] -= 1

    monkeypatch.setattr(images, "_decode", slow_decode)
    path = write_image(tmp_path / "a.png", np.zeros((20, 20, 3)))
    threads = [threading.Thread(target=read_image, args=(path,)) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert most[0] == images.MAX_CONCURRENT_DECODES == 2
