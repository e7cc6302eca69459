"""Generative models: data, noise, quality metrics, sampling errors, the conditional GAN's two
files and its explanations, VAE traversals and interpolations, the denoiser's residual, and the
TFLite runner's named inputs. Models here are tiny (one epoch): the checks are about behaviour;
the shipped models' quality is checked in test_shipped.py and by the benchmarks."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from conftest import write_image
from toolkit.errors import DataError, ModelFormatError, NotFittedError
from toolkit.generative import (
    GAN,
    VAE,
    Denoiser,
    DenoiserConfig,
    GANConfig,
    TFLiteImageModel,
    VAEConfig,
    add_noise,
    digits_splits,
    resolve_images,
)
from toolkit.generative import metrics as gm


@pytest.fixture(scope="module")
def digits():
    return digits_splits()


@pytest.fixture(scope="module")
def small_digits(digits):
    """200 training digits (all ten classes) at 16x16."""
    return digits.train.subset(np.arange(200))


@pytest.fixture(scope="module")
def cgan(small_digits, tmp_path_factory):
    """A tiny conditional GAN (one epoch), saved, with a float16 TFLite generator."""
    config = GANConfig(conditional=True, latent_dim=6, generator_filters=(8, 4), discriminator_filters=(4, 8),
                       epochs=2, batch_size=32, sample_every=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gan = GAN(config).fit(small_digits)
    directory = gan.save(tmp_path_factory.mktemp("gan") / "cgan")
    gan.export(directory, quantization="float16")
    return gan, directory


@pytest.fixture(scope="module")
def vae():
    """The shipped VAE (latent_dim 8): traversals and interpolations need no training here."""
    from conftest import REPO

    directory = REPO / "saved_models" / "generative" / "digits_vae"
    if not (directory / "card.json").is_file():
        pytest.skip("saved_models/generative/digits_vae is missing; run `make models`")
    return VAE.load(directory)


# ---------------------------------------------------------------------- data and noise


def test_digits_are_upsampled_to_the_model_size(digits):
    assert digits.train.x.shape == (1437, 16, 16, 1) and digits.test.x.shape == (360, 16, 16, 1)
    assert 0 <= digits.test.x.min() and digits.test.x.max() <= 255 and digits.test.meta["polarity"] == "light_on_dark"
    big = resolve_images("digits", "test", image_size=(32, 32))
    assert big.x.shape == (360, 32, 32, 1)


def test_image_folders_with_and_without_classes(tmp_path, image_folder):
    labelled = resolve_images(image_folder, image_size=(16, 16), channels=3)
    assert labelled.class_names == ["cats", "dogs"] and labelled.x.shape[1:] == (16, 16, 3)
    flat = tmp_path / "flat"
    for k in range(3):
        write_image(flat / f"p{k}.png", np.full((20, 24, 3), 40 * k))
    images = resolve_images(flat, image_size=(8, 8), channels=1)
    assert images.x.shape == (3, 8, 8, 1) and images.class_names == ["images"]
    (flat / "notes.txt").write_text("hello")
    with pytest.raises(DataError, match="not an image file"):
        resolve_images(flat)
    with pytest.raises(DataError, match="not found"):
        resolve_images(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="empty"):
        resolve_images(tmp_path / "empty")


def test_arrays_get_the_vision_errors():
    with pytest.raises(DataError, match=r"raw pixel values in \[0, 255\]"):
        resolve_images(np.full((4, 16, 16, 1), 300.0))
    with pytest.raises(DataError, match="one label per image"):
        resolve_images((np.zeros((4, 16, 16, 1)), [0, 1]))
    with pytest.raises(DataError, match="Expected image data"):
        resolve_images({"x": 1})
    x = resolve_images(np.zeros((5, 12, 12, 3)), image_size=(16, 16), channels=1)
    assert x.x.shape == (5, 16, 16, 1)


def test_noise_levels_and_kinds():
    gray = np.full((20, 16, 16, 1), 127.5, np.float32)
    noisy = add_noise(gray, 0.3, "gaussian", seed=0)
    assert abs(np.std(noisy - gray) / 255 - 0.3) < 0.03 and noisy.min() >= 0 and noisy.max() <= 255
    np.testing.assert_array_equal(noisy, add_noise(gray, 0.3, "gaussian", seed=0))
    sp = add_noise(gray, 0.2, "salt_and_pepper", seed=0)
    changed = sp != gray
    assert abs(changed.mean() - 0.2) < 0.03 and set(np.unique(sp[changed])) == {0.0, 255.0}
    with pytest.raises(ValueError, match="Valid types"):
        add_noise(gray, 0.3, "speckle")
    with pytest.raises(ValueError, match="gaussian"):
        DenoiserConfig(noise_type="poisson")


# ---------------------------------------------------------------------- metrics


def test_frechet_distance_matches_the_matrix_square_root():
    from scipy import linalg

    rng = np.random.default_rng(0)
    a = rng.normal(size=(300, 12))
    b = rng.normal(size=(300, 12)) @ rng.normal(size=(12, 12)) * 0.5 + 1
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    expected = (np.sum((a.mean(0) - b.mean(0)) ** 2) + np.trace(s1) + np.trace(s2)
                - 2 * np.trace(np.real(linalg.sqrtm(s1 @ s2))))
    assert gm.frechet_distance(a, b) == pytest.approx(expected, rel=1e-6)
    assert abs(gm.frechet_distance(a, a)) < 1e-8


def test_fid_for_digits_puts_real_images_far_below_noise(shipped_digits, digits):
    report = gm.fid_report(digits.train.x[-360:], digits.test.x, digits.train.x, seed=1)
    assert report["fid_samples"] == 360
    assert report["fid"] < 3 and report["fid_real_vs_real"] < 3 and report["fid_noise_baseline"] > 30
    blurred = np.repeat(np.repeat(gm.DigitsJudge.classifier_input(digits.test.x)[:, ::2, ::2], 4, 1), 4, 2)
    assert gm.fid_digits(blurred, digits.test.x) > report["fid_real_vs_real"]
    assert gm.label_accuracy(digits.test.x, digits.test.y) > 0.95


def test_missing_classifier_says_make_models(tmp_path):
    with pytest.raises(ModelFormatError, match="make models"):
        gm.DigitsJudge(tmp_path / "digits_cnn")


def test_diversity_flags_mode_collapse(digits):
    real = digits.test.x
    collapsed = np.repeat(real[:1], 100, axis=0) + np.random.default_rng(0).uniform(0, 2, (100, 16, 16, 1))
    assert gm.diversity_report(collapsed, real)["mode_collapse"] is True
    healthy = gm.diversity_report(digits.train.x[:200], real, digits.train.y[:200], n_classes=10)
    assert healthy["mode_collapse"] is False and healthy["distinct_labels"] == 10
    assert 0.8 < healthy["diversity_ratio"] < 1.2 and healthy["label_entropy"] > 0.95
    one_class = gm.diversity_report(digits.train.x[:50], real, np.zeros(50, int), n_classes=10)
    assert one_class["mode_collapse"] is True and one_class["distinct_labels"] == 1


def test_psnr_and_ssim(digits):
    clean = digits.test.x[:20]
    noisy = add_noise(clean, 0.3, seed=0)
    assert gm.psnr(clean, clean) == pytest.approx(100.0) and gm.ssim(clean, clean) == pytest.approx(1.0, abs=1e-5)
    report = gm.restoration_report(clean, noisy, (clean + noisy) / 2)
    assert 9 < report["psnr_noisy"] < 14 and report["psnr_gain_db"] == pytest.approx(20 * np.log10(2), abs=0.1)
    assert report["ssim_gain"] > 0


# ---------------------------------------------------------------------- configs and sampling errors


@pytest.mark.parametrize("make, message", [
    (lambda: VAEConfig(image_size=(18, 18)), "divisible by 4"),
    (lambda: GANConfig(image_size=(12, 20), generator_filters=(8, 8, 8)), "divisible by 8"),
    (lambda: GANConfig(label_smoothing=0.7), "label_smoothing"),
    (lambda: DenoiserConfig(noise=1.5, noise_type="salt_and_pepper"), "share of pixels"),
    (lambda: VAEConfig(latent_dim=0), "latent_dim must be > 0"),
])
def test_configs_are_validated(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_unfitted_models_say_so():
    for task in (VAE(), GAN(), Denoiser()):
        with pytest.raises(NotFittedError):
            task.predict(np.zeros((1, 16, 16, 1)))
    with pytest.raises(NotFittedError):
        GAN().generate(4)


def test_generate_rejects_bad_counts_and_labels(cgan, vae):
    gan, _ = cgan
    for n in (0, -3, 2.5, True):
        with pytest.raises(DataError, match="n >= 1"):
            gan.generate(n)
    with pytest.raises(DataError, match=r"Unknown label 12\. Expected one of \['0', '1'"):
        gan.generate(4, label=12)
    with pytest.raises(DataError, match="Unknown label 'seven'"):
        gan.generate(4, label="seven")
    with pytest.raises(DataError, match="unconditional"):
        vae.generate(4, label=3)
    with pytest.raises(DataError, match="conditional: pass labels"):
        gan.predict(np.zeros((2, 6)))
    with pytest.raises(DataError, match=r"shape \(6,\) or \(N, 6\)"):
        gan.predict(np.zeros((2, 5)), labels=[1, 2])
    assert gan.generate(3, label="7", seed=0).shape == (3, 16, 16, 1)
    np.testing.assert_array_equal(gan.generate(5, seed=4), gan.generate(5, seed=4))


# ---------------------------------------------------------------------- the conditional GAN


def test_cgan_saves_both_networks_with_their_hashes(cgan):
    from toolkit.storage import sha256_file

    gan, directory = cgan
    card = json.loads((directory / "card.json").read_text())
    entry = card["discriminator"]
    assert entry["file"] == "discriminator.keras" and sha256_file(directory / entry["file"]) == entry["sha256"]
    assert [spec["name"] for spec in card["input"]] == ["noise", "label"]
    assert card["input"][1]["labels"] == [str(d) for d in range(10)] and card["conditional"] is True
    assert sorted(p.name for p in (directory / "samples").iterdir()) == ["epoch_001.png", "epoch_002.png"]
    loaded = GAN.load(directory)
    np.testing.assert_array_equal(loaded.generate(6, label=2, seed=1), gan.generate(6, label=2, seed=1))
    image = gan.generate(1, label=3, seed=0)
    assert loaded.realness(image, label=3) == pytest.approx(gan.realness(image, label=3), abs=1e-6)


def test_a_changed_discriminator_is_refused(cgan, tmp_path):
    import shutil

    _, directory = cgan
    copy = shutil.copytree(directory, tmp_path / "copy")
    with open(copy / "discriminator.keras", "ab") as f:
        f.write(b"tampered")
    with pytest.raises(ModelFormatError, match="does not match its card"):
        GAN.load(copy)


def test_tflite_generator_inputs_by_name(cgan):
    gan, directory = cgan
    lite = TFLiteImageModel(directory / "model_float16.tflite")
    assert lite.kind == "generator" and lite.input_names == ["label", "noise"] and lite.conditional_
    z = np.random.default_rng(0).standard_normal((7, 6)).astype("float32")
    labels = np.arange(7) % 10
    assert np.abs(lite.predict(z, labels) - gan.predict(z, labels)).max() / 255 <= 0.02
    assert np.abs(lite.generate(4, label=5, seed=3) - gan.generate(4, label=5, seed=3)).max() / 255 <= 0.02
    with pytest.raises(DataError, match="Expected the inputs"):
        lite.run(noise=z)
    entry = next(e for e in json.loads((directory / "card.json").read_text())["tflite"])
    assert entry["kind"] == "generator" and entry["max_abs_pixel_error"] <= 0.02
    assert [i["name"] for i in entry["inputs"]] == ["noise", "label"] and entry["inputs"][1]["dtype"] == "int32"
    with pytest.raises(Exception, match="int8 is not offered"):
        gan.export(directory, quantization="int8")


@pytest.mark.parametrize("method, budget", [("shap", 20), ("lime", 40)])
def test_cgan_explains_the_discriminator(cgan, digits, method, budget):
    gan, _ = cgan
    explanation = gan.explain(digits.test.x[0], method=method, budget=budget, target=int(digits.test.y[0]))
    assert explanation.attributions.shape == (16, 16) and explanation.image.dtype == np.uint8
    assert explanation.target == f"real {digits.test.y[0]}" and 0 <= explanation.extra["p_real"] <= 1
    assert np.abs(explanation.attributions).sum() > 0
    with pytest.raises(ValueError, match="Valid methods"):
        gan.explain(digits.test.x[0], method="gradcam")


# ---------------------------------------------------------------------- VAE and denoiser


def test_vae_latent_space(vae, digits):
    a, b = digits.test.x[0], digits.test.x[1]
    strip = vae.interpolate(a, b, steps=5)
    assert strip.shape == (5, 16, 16, 1)
    np.testing.assert_allclose(strip[[0, -1]], vae.predict(np.stack([a, b])), atol=1e-3)
    assert vae.traverse(1, steps=4).shape == (4, 16, 16, 1)
    with pytest.raises(DataError, match="Unknown latent dimension 8"):
        vae.traverse(8)
    with pytest.raises(DataError, match="steps >= 2"):
        vae.interpolate(a, b, steps=1)
    explanation = vae.explain(method="traversal", budget=5)
    assert explanation.attributions.shape == (8,) and (explanation.attributions >= 0).all()
    assert explanation.attributions.max() > 5 * explanation.attributions.min()  # some dimensions matter more
    assert explanation.image.shape[0] >= 8 * 16 and explanation.image.shape[1] >= 5 * 16  # 8 rows of 5
    one = vae.explain(digits.test.x[0], target=[2, 4], budget=3)
    assert one.attributions.shape == (2,) and one.extra["dims"] == [2, 4]
    assert explanation.extra["values"] == [-3.0, -1.5, 0.0, 1.5, 3.0]
    with pytest.raises(ValueError, match="traversal"):
        vae.explain(a, method="shap")


def test_denoiser_residual_and_evaluate(small_digits, digits):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        den = Denoiser(DenoiserConfig(filters=(8, 8), epochs=1, batch_size=32)).fit(
            small_digits, validation_data=(digits.test.x[:40], digits.test.y[:40]))
    assert len(den.history_["val_loss"]) == 1
    noisy = den.add_noise(digits.test.x[:1], seed=2)
    explanation = den.explain(noisy[0])
    assert explanation.method == "residual" and explanation.attributions.shape == (16, 16)
    np.testing.assert_allclose(explanation.attributions, np.abs(noisy[0] - den.predict(noisy)[0]).mean(-1) / 255,
                               atol=1e-5)
    report = den.evaluate((digits.test.x[:60], digits.test.y[:60]), noise=0.5, noise_type="salt_and_pepper")
    assert report["noise_type"] == "salt_and_pepper" and report["n_test"] == 60
    assert set(report) >= {"psnr_noisy", "psnr_denoised", "psnr_gain_db", "ssim_noisy", "ssim_denoised"}
    assert den.predict(np.zeros((8, 8, 1))).shape == (1, 16, 16, 1)  # any size in, the model's size out
