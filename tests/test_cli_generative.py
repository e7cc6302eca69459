"""The command line for generative models: train vae / gan / denoiser, generate, predict --out,
evaluate, export, explain, and one clean ``error:`` line (exit status 2) for bad input.

The models are trained for one epoch: the checks are about the command line, not quality."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import one_error_line, quiet_main, run, write_image


def _train(*argv) -> tuple[int, dict]:
    code, stdout = quiet_main(*argv)
    return code, json.loads(stdout) if code == 0 else {}


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A conditional GAN trained by the CLI (one epoch, 8x8: the digits' own size, to keep it short)."""
    root = tmp_path_factory.mktemp("cli-gen")
    code, gan = _train("train", "gan", "--data", "digits", "--conditional", "--epochs", "1", "--latent-dim", "8",
                       "--image-size", "8", "--samples-dir", root / "grids", "--out", root / "gan")
    assert code == 0
    return root, gan


@pytest.fixture(scope="module")
def shipped_vae():
    from conftest import REPO

    directory = REPO / "saved_models" / "generative" / "digits_vae"
    if not (directory / "card.json").is_file():
        pytest.skip("saved_models/generative/digits_vae is missing; run `make models`")
    return directory


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """A flat folder of 30 small RGB pictures (soft blobs on a tinted background)."""
    root = tmp_path_factory.mktemp("photos") / "photos"
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:20, :24]
    for k in range(30):
        cy, cx = rng.uniform(5, 15), rng.uniform(5, 19)
        blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 20)[..., None]
        write_image(root / f"p{k:02d}.png", 40 + 180 * blob * rng.uniform(0.5, 1, 3))
    return root


def test_train_gan(models):
    root, gan = models
    assert gan["out"] == str(root / "gan") and gan["epochs"] == 1 and gan["seconds"] > 0
    assert {"test_label_accuracy", "test_fid", "test_fid_noise_baseline", "test_fid_real_vs_real",
            "test_mode_collapse", "test_diversity_ratio"} <= set(gan["metrics"])
    card = json.loads((root / "gan" / "card.json").read_text())
    assert card["command"].startswith("toolkit train gan --data digits --conditional")
    assert card["config"]["conditional"] is True and card["config"]["latent_dim"] == 8
    assert card["discriminator"]["file"] == "discriminator.keras"
    assert (root / "grids" / "samples_epoch_001.png").is_file()
    assert (root / "gan" / "samples" / "epoch_001.png").is_file() and (root / "gan" / "training_curves.png").is_file()


def test_vae_options_reach_the_config():
    from toolkit.cli import build_parser

    args = build_parser().parse_args(["train", "vae", "--data", "digits", "--latent-dim", "4", "--beta", "0.5",
                                      "--kl-warmup-epochs", "3", "--image-size", "32", "--out", "m"])
    assert (args.latent_dim, args.beta, args.kl_warmup_epochs, args.image_size) == (4, 0.5, 3, [32])


def test_generate_a_grid_and_raw_samples(capsys, models, shipped_vae, tmp_path):
    from PIL import Image

    root, _ = models
    code, out, _ = run(capsys, "generate", root / "gan", "--n", 12, "--label", 7, "--seed", 0,
                       "--out", tmp_path / "grid.png")
    assert code == 0 and json.loads(out)["n"] == 12 and Image.open(tmp_path / "grid.png").size[0] >= 64
    code, out, _ = run(capsys, "generate", root / "gan", "--n", 5, "--label", 7, "--seed", 0,
                       "--out", tmp_path / "s.npy")
    samples = np.load(tmp_path / "s.npy")
    assert code == 0 and samples.shape == (5, 8, 8, 1) and samples.dtype == np.float32 and samples.max() <= 255
    code, out, _ = run(capsys, "generate", shipped_vae, "--n", 4, "--seed", 1, "--out", tmp_path / "v.npy")
    assert code == 0 and np.load(tmp_path / "v.npy").shape == (4, 16, 16, 1)
    code, _, err = run(capsys, "generate", shipped_vae, "--n", 4, "--label", 3, "--out", tmp_path / "v.npy")
    assert one_error_line(code, err) and "unconditional" in err


@pytest.mark.parametrize("argv, message", [
    (["--n", "4", "--label", "12"], "Unknown label '12'"),
    (["--n", "0"], "--n: expected a whole number >= 1"),
    (["--n", "4", "--out-name", "grid.gif"], "must end in one of .png, .jpg, .jpeg, .npy"),
], ids=["unknown-label", "zero", "bad-suffix"])
def test_generate_errors(capsys, models, tmp_path, argv, message):
    root, _ = models
    out = tmp_path / "grid.png"
    if "--out-name" in argv:
        out, argv = tmp_path / argv[-1], argv[:2]
    try:
        code, _, err = run(capsys, "generate", root / "gan", *argv, "--out", out)
    except SystemExit as stopped:  # refused by the parser: its usage line, then the message
        code, err = stopped.code, capsys.readouterr().err
        assert code == 2 and message in err
    else:
        assert one_error_line(code, err) and message in err
    assert not out.exists()


def test_evaluate_export_and_generate_with_tflite(capsys, models, tmp_path):
    root, _ = models
    code, out, _ = run(capsys, "evaluate", root / "gan", "--out", tmp_path / "eval")
    report = json.loads(out)
    assert code == 0 and 0 <= report["label_accuracy"] <= 1
    assert report["fid_noise_baseline"] > report["fid_real_vs_real"]
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text())["fid"] == report["fid"]
    code, out, _ = run(capsys, "export", root / "gan", "--quantization", "float16")
    entries = json.loads(out)
    assert code == 0 and [e["quantization"] for e in entries] == ["float16"] and entries[0]["kind"] == "generator"
    assert entries[0]["max_abs_pixel_error"] <= 0.02 and entries[0]["inputs"][1]["name"] == "label"
    code, out, _ = run(capsys, "generate", root / "gan", "--tflite", "model_float16.tflite", "--n", 3, "--label", 4,
                       "--seed", 2, "--out", tmp_path / "lite.npy")
    run(capsys, "generate", root / "gan", "--n", 3, "--label", 4, "--seed", 2, "--out", tmp_path / "keras.npy")
    assert code == 0 and np.abs(np.load(tmp_path / "lite.npy") - np.load(tmp_path / "keras.npy")).max() / 255 <= 0.02
    code, _, err = run(capsys, "export", root / "gan", "--quantization", "int8")
    assert one_error_line(code, err) and "float16" in err


def test_explain_gan_and_vae(capsys, models, shipped_vae, tmp_path, digits_png):
    root, _ = models
    code, out, _ = run(capsys, "explain", root / "gan", "--image", digits_png[0][0], "--method", "lime",
                       "--budget", 30, "--target", 3, "--out", tmp_path / "why.png")
    assert code == 0 and json.loads(out)["method"] == "lime" and (tmp_path / "why.png").is_file()
    code, out, _ = run(capsys, "explain", shipped_vae, "--image", digits_png[0][0], "--budget", 5,
                       "--out", tmp_path / "walk.png")
    assert code == 0 and json.loads(out)["method"] == "traversal" and json.loads(out)["budget"] == 5


def test_denoiser_on_a_folder_and_predict_out(capsys, photos, tmp_path):
    out = tmp_path / "den"
    code, result = _train("train", "denoiser", "--data", photos, "--noise", "0.2", "--noise-type", "salt_and_pepper",
                          "--epochs", "1", "--image-size", "16", "--out", out)
    assert code == 0 and result["metrics"]["test_noise_type"] == "salt_and_pepper"
    card = json.loads((out / "card.json").read_text())
    assert card["image"]["shape"] == [16, 16, 3] and card["noise"] == {"type": "salt_and_pepper", "level": 0.2,
                                                                        "scale": "0-1 pixels"}
    noisy = write_image(tmp_path / "noisy.png", np.random.default_rng(0).integers(0, 255, (16, 16, 3)))
    code, stdout, _ = run(capsys, "predict", out, "--image", noisy, "--out", tmp_path / "clean.png")
    from PIL import Image

    assert code == 0 and json.loads(stdout)["shape"] == [16, 16, 3]
    assert Image.open(tmp_path / "clean.png").size == (16, 16)
    other = write_image(tmp_path / "other.png", np.full((30, 30, 3), 90))
    code, stdout, _ = run(capsys, "predict", out, "--image", noisy, other, "--out", tmp_path / "many")
    assert code == 0 and sorted(p.name for p in (tmp_path / "many").iterdir()) == ["noisy.png", "other.png"]
    assert json.loads(stdout)["out"] == [str(tmp_path / "many" / "noisy.png"), str(tmp_path / "many" / "other.png")]
    code, _, err = run(capsys, "predict", out, "--image", noisy)
    assert one_error_line(code, err) and "--out" in err


def test_predict_on_a_gan_points_to_generate(capsys, models, digits_png, tmp_path):
    root, _ = models
    code, _, err = run(capsys, "predict", root / "gan", "--image", digits_png[0][0], "--out", tmp_path / "x.png")
    assert one_error_line(code, err) and "toolkit generate" in err
    code, _, err = run(capsys, "generate", root / "missing", "--out", tmp_path / "x.png")
    assert one_error_line(code, err)


def test_train_errors_are_one_line(capsys, tmp_path, photos):
    code, _, err = run(capsys, "train", "gan", "--data", photos, "--conditional", "--epochs", "1", "--out",
                       tmp_path / "g")
    assert one_error_line(code, err) and "labelled images of at least 2 classes" in err
    code, _, err = run(capsys, "train", "vae", "--data", tmp_path / "nothing", "--out", tmp_path / "v")
    assert one_error_line(code, err) and "not found" in err
    code, _, err = run(capsys, "train", "vae", "--data", "digits", "--image-size", "18", "--out", tmp_path / "v")
    assert one_error_line(code, err) and "divisible by 4" in err
