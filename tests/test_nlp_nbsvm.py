"""Issue 15, text: the NBSVM-style encoder (naive-Bayes log-count ratios of word 1-3-grams times a
learned correction): its ratios, training, save/load, TFLite export and explanations."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.test_nlp_baselines import _texts
from toolkit import TFLiteModel


@pytest.fixture(scope="module")
def tiny():
    from toolkit.data.text import TextSplits, resolve_text_data

    train = resolve_text_data(_texts(96), "train")
    test = resolve_text_data(_texts(30, offset=500), "test", class_names=train.class_names)
    return TextSplits(train, test, {"source": "arrays"})


@pytest.fixture(scope="module")
def nbsvm(tiny):
    from toolkit.nlp import TextClassifier, TextClassifierConfig

    return TextClassifier(TextClassifierConfig(encoder="nbsvm", sequence_length=32, epochs=5)).fit(tiny)


def test_nb_ratios_by_hand():
    from toolkit.nlp.encoders import nb_ratios

    # token 2 only in class-1 texts (twice in one: counted once), token 3 in both, 4 only in class 0.
    ids = np.array([[2, 2, 3, 0], [2, 3, 0, 0], [3, 4, 0, 0]])
    y = np.array([1, 1, 0])
    r = nb_ratios(ids, y, vocab_size=5, n_classes=2, alpha=1.0)
    p = np.array([3, 3, 1], float)  # alpha + class-1 texts holding tokens 2, 3, 4
    q = np.array([1, 2, 2], float)
    np.testing.assert_allclose(r[2:, 1], np.log(p / p.sum()) - np.log(q / q.sum()), rtol=1e-6)
    np.testing.assert_allclose(r[:, 0], -r[:, 1], atol=1e-6)  # two classes: one-vs-rest is antisymmetric
    assert r[2, 1] > 0 > r[4, 1] and np.all(r[:2] == 0)  # padding and OOV carry no evidence


def test_nbsvm_starts_as_naive_bayes_and_learns(nbsvm, tiny):
    core = nbsvm.model_.get_layer("text_core_nbsvm")
    ratios = core.get_layer("nb_ratios").get_weights()[0]
    vocab = nbsvm.model_.get_layer("vectorizer").get_vocabulary()
    great = vocab.index("great")
    assert ratios[great, nbsvm.class_names_.index("positive")] > 0
    assert not core.get_layer("nb_ratios").trainable
    assert any(" " in token for token in vocab) and any(token.count(" ") == 2 for token in vocab)  # 1-3-grams
    assert np.abs(core.get_layer("embedding").get_weights()[0]).max() > 0  # the correction moved
    assert nbsvm.evaluate(tiny)["accuracy"] >= 0.9


def test_nbsvm_save_load_export_explain(nbsvm, tiny, tmp_path):
    from toolkit.base import load

    directory = nbsvm.save(tmp_path / "nb")
    card = json.loads((directory / "card.json").read_text())
    assert card["encoder"]["name"] == "nbsvm" and card["encoder"]["ngrams"] == 3
    loaded = load(directory)
    np.testing.assert_allclose(loaded.predict_proba(tiny.test.texts), nbsvm.predict_proba(tiny.test.texts),
                               atol=1e-6)
    path = nbsvm.export(directory, quantization="float32", data=tiny)
    assert json.loads((directory / "card.json").read_text())["tflite"][0]["agreement_with_keras"] == 1.0
    lite = TFLiteModel(path)
    np.testing.assert_allclose(lite.predict_proba(tiny.test.texts), nbsvm.predict_proba(tiny.test.texts),
                               atol=1e-5)
    explanation = nbsvm.explain("great phone, the cable is excellent sound", method="lime", budget=60)
    assert explanation.attributions.shape == (7,) and explanation.extra["class_index"] == 1
