"""The command line: every subcommand, its --help, and clean errors."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO, run, write_image
from toolkit.cli import main

VERBS = ["train", "evaluate", "predict", "export", "compress", "explain", "serve", "bench"]


@pytest.mark.parametrize("argv", [[], *[[verb] for verb in VERBS], ["train", "vision"], ["train", "nlp"],
                                  ["train", "dates"]],
                         ids=lambda a: "-".join(a) or "toolkit")
def test_help(capsys, argv):
    with pytest.raises(SystemExit) as info:
        main([*argv, "--help"])
    assert info.value.code == 0
    assert "usage: toolkit" in capsys.readouterr().out


def test_python_dash_m_works():
    out = subprocess.run([sys.executable, "-m", "toolkit", "--help"], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0 and all(verb in out.stdout for verb in VERBS)


@pytest.fixture(scope="module")
def cli_model(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "digits"
    code = main(["train", "vision", "--data", "digits", "--out", str(out), "--epochs", "2", "--verbose", "0"])
    assert code == 0
    return out


def test_train_writes_a_model_folder(cli_model):
    card = json.loads((cli_model / "card.json").read_text())
    assert card["command"].startswith("toolkit train vision --data digits")
    assert card["data"]["source"] == "digits" and card["metrics"]["test_accuracy"] > 0.3
    for name in ("model.keras", "labels.txt", "confusion_matrix.png", "training_curves.png", "history.json"):
        assert (cli_model / name).is_file(), name
    assert not list(cli_model.parent.glob(".digits.backup*"))


def test_evaluate_predict_export_explain(cli_model, capsys, tmp_path, digits_png):
    code, out, _ = run(capsys, "evaluate", str(cli_model), "--out", str(tmp_path / "eval"))
    report = json.loads(out)
    assert code == 0 and report["metrics"]["n_samples"] == 360 and len(report["confusion_matrix"]) == 10
    assert (tmp_path / "eval" / "confusion_matrix.png").is_file()

    image = str(digits_png[0][0])
    code, out, _ = run(capsys, "predict", str(cli_model), "--image", image, "--top-k", "3")
    rows = json.loads(out)
    assert code == 0 and rows[0]["image"] == image and len(rows[0]["top_k"]) == 3

    code, out, _ = run(capsys, "export", str(cli_model), "--quantization", "float32", "int8")
    entries = json.loads(out)
    assert code == 0 and [e["file"] for e in entries] == ["model_float32.tflite", "model_int8.tflite"]
    assert entries[1]["agreement_with_keras"] >= 0.95 and entries[1]["n_test"] == 360

    code, out, _ = run(capsys, "predict", str(cli_model), "--image", image, "--tflite", "model_int8.tflite")
    assert code == 0 and json.loads(out)[0]["top_k"][0]["label"] == rows[0]["top_k"][0]["label"]

    code, out, _ = run(capsys, "explain", str(cli_model), "--image", image, "--method", "lime", "--budget", "100",
                       "--out", str(tmp_path / "why.png"))
    assert code == 0 and json.loads(out)["method"] == "lime"
    assert (tmp_path / "why.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "vision", "--data", "no/such/folder", "--out", "x"], "Data folder not found"),
        (["predict", "no/such/model", "--image", "x.png"], "not a folder"),
        (["train", "vision", "--data", "digits", "--out", "x", "--backbone", "small_cnn", "--weights", "imagenet"],
         "no ImageNet weights"),
    ],
    ids=["missing-data", "missing-model", "bad-weights"],
)
def test_user_errors_are_one_line(capsys, argv, message):
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    assert err.startswith("error: ") and message in err and "Traceback" not in err


def test_predict_bad_image_is_one_line(cli_model, capsys, tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_text("no")
    code, _, err = run(capsys, "predict", str(cli_model), "--image", str(bad))
    assert code == 2 and "not a readable image" in err


def test_train_on_a_folder_with_a_test_folder(tmp_path, capsys):
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for label, value in (("dark", 30), ("light", 220)):
            for k in range(6):
                write_image(tmp_path / split / label / f"{k}.png", np.full((20, 20, 3), value) + rng.integers(0, 20, 3))
    code, out, err = run(capsys, "train", "vision", "--data", str(tmp_path / "train"), "--test-data",
                         str(tmp_path / "test"), "--out", str(tmp_path / "m"), "--image-size", "16", "--epochs", "3",
                         "--verbose", "0")
    assert code == 0, err
    card = json.loads((tmp_path / "m" / "card.json").read_text())
    assert card["input"]["shape"] == [16, 16, 3] and card["labels"] == ["dark", "light"]
    assert card["training"]["augment"] == "photos" and card["data"]["test_source"].endswith("test")
    assert card["metrics"]["test_n_samples"] == 12


def test_serve_launches_the_app_on_localhost(monkeypatch, capsys):
    import apps.main

    calls = []
    monkeypatch.setattr(apps.main, "launch", lambda **kwargs: calls.append(kwargs))
    code, _, _ = run(capsys, "serve", "--port", "7861")
    assert code == 0 and calls == [{"host": "127.0.0.1", "port": 7861, "model_dir": None}]


def test_bench_rejects_unknown_names(capsys):
    from benchmarks.run import main as bench_main

    assert bench_main(["no_such_benchmark"]) == 2
    assert "Valid" in capsys.readouterr().err
