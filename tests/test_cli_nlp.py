"""The command line for text: train nlp on a CSV, evaluate, predict --text, export, explain --text."""

from __future__ import annotations

import json

import pytest

from conftest import run
from toolkit.cli import main


@pytest.fixture(scope="module")
def reviews(tmp_path_factory):
    """A CSV with custom column names, and a separate test CSV."""
    import csv

    root = tmp_path_factory.mktemp("reviews")
    good = ["great", "love it", "works well", "excellent", "very happy", "perfect"]
    bad = ["broken", "awful", "waste of money", "terrible", "stopped working", "poor"]
    for name, n in (("reviews.csv", 60), ("test.csv", 24)):
        with open(root / name, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["id", "review", "stars"])
            for i in range(n):
                words = good if i % 2 else bad
                writer.writerow([i, f"{words[i % 6]}, the {('phone', 'case', 'cable')[i % 3]} is {words[(i + 1) % 6]}",
                                 5 if i % 2 else 1])
    return root


@pytest.fixture(scope="module")
def text_model(reviews, tmp_path_factory):
    out = tmp_path_factory.mktemp("cli-nlp") / "m2"
    code = main(["train", "nlp", "--data", str(reviews / "reviews.csv"), "--text-column", "review",
                 "--label-column", "stars", "--encoder", "bigru", "--epochs", "4", "--out", str(out),
                 "--verbose", "0"])
    assert code == 0
    return out


def test_train_nlp_writes_a_model_folder(text_model):
    card = json.loads((text_model / "card.json").read_text())
    assert card["task"] == "text_classifier" and card["labels"] == ["1", "5"]
    assert card["data"]["text_column"] == "review" and card["data"]["test_size"] == 0.2
    assert (text_model / "vocab.txt").is_file() and (text_model / "confusion_matrix.png").is_file()


def test_evaluate_predict_export_explain(capsys, text_model, reviews, tmp_path):
    code, out, _ = run(capsys, "evaluate", text_model, "--data", reviews / "test.csv")
    assert code == 0 and json.loads(out)["metrics"]["n_samples"] == 24
    code, out, _ = run(capsys, "predict", text_model, "--text", "the battery died after a day", "great case")
    rows = json.loads(out)
    assert code == 0 and [r["text"] for r in rows] == ["the battery died after a day", "great case"]
    assert {r["top_k"][0]["label"] for r in rows} <= {"1", "5"}
    code, out, _ = run(capsys, "export", text_model, "--quantization", "dynamic")
    entry = json.loads(out)[0]
    assert code == 0 and entry["file"] == "model_dynamic.tflite" and entry["agreement_with_keras"] >= 0.95
    code, out, _ = run(capsys, "predict", text_model, "--text", "great case", "--tflite", "model_dynamic.tflite")
    assert code == 0 and json.loads(out)[0]["top_k"][0]["label"] in {"1", "5"}
    code, out, _ = run(capsys, "explain", text_model, "--text", "awful phone, stopped working", "--method", "lime",
                       "--out", tmp_path / "why.html", "--budget", "50")
    assert code == 0 and "stopped" in (tmp_path / "why.html").read_text()


@pytest.mark.parametrize("argv, message", [
    (["--text-column", "body"], "body"),
    (["--encoder", "bigru", "--fine-tune"], "fine_tune"),
])
def test_train_nlp_errors_are_one_line(capsys, reviews, tmp_path, argv, message):
    code, _, err = run(capsys, "train", "nlp", "--data", reviews / "reviews.csv", "--out", tmp_path / "x", *argv)
    assert code == 2 and err.startswith("error:") and message in err and "Traceback" not in err


def test_predict_text_errors(capsys, text_model):
    code, _, err = run(capsys, "predict", text_model, "--text", "   ")
    assert code == 2 and err.startswith("error:")
    code, _, err = run(capsys, "explain", text_model, "--out", "x.html")
    assert code == 2 and "--text" in err


def test_train_export_predict_nbchar(capsys, reviews, tmp_path):
    """--encoder nbchar (word + character n-grams): trained, exported and read back from its TFLite
    file through the command line (the ids come from vocab.txt: words, then characters)."""
    out = tmp_path / "nbchar"
    code, _, _ = run(capsys, "train", "nlp", "--data", reviews / "reviews.csv", "--text-column", "review",
                     "--label-column", "stars", "--encoder", "nbchar", "--sequence-length", "16", "--epochs", "3",
                     "--out", out, "--verbose", "0")
    card = json.loads((out / "card.json").read_text())
    assert code == 0 and card["encoder"]["char_ngrams"] == [2, 3, 4, 5]
    code, out_json, _ = run(capsys, "export", out, "--quantization", "float32")
    assert code == 0 and json.loads(out_json)[0]["agreement_with_keras"] == 1.0
    code, out_json, _ = run(capsys, "predict", out, "--text", "awful cable", "--tflite", "model_float32.tflite")
    assert code == 0 and json.loads(out_json)[0]["top_k"][0]["label"] in {"1", "5"}
