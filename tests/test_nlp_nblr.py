"""Issue 15, text: the ``nblr`` encoder (NB-LR over binarised word 1-2-grams and character
2-5-grams): repeats count once inside the model, it starts at zero and learns, and it saves,
loads and exports to TFLite (builtin ops, the same ids as ``nbchar``)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.test_nlp_nbchar import tiny  # noqa: F401  (the fixture)
from toolkit import TFLiteModel


@pytest.fixture(scope="module")
def nblr(tiny):  # noqa: F811
    from toolkit.nlp import TextClassifier, TextClassifierConfig

    return TextClassifier(TextClassifierConfig(encoder="nblr", sequence_length=16, epochs=8)).fit(tiny)


def test_distinct_ids_by_hand():
    from toolkit.nlp.nblr import distinct_ids

    ids = np.array([[5, 3, 5, 0, 1, 3], [0, 0, 0, 0, 0, 0]], np.int32)
    got = np.asarray(distinct_ids(ids))
    assert got.tolist() == [[5, 0, 3, 0, 1, 0], [0, 0, 0, 0, 0, 0]]


def test_repeats_count_once_and_it_learns(nblr, tiny):  # noqa: F811
    core = nblr.model_.get_layer("text_core_nblr")
    once = nblr._word_tokenizer().encode(["great phone"])[0]
    present = once[once > 0]
    many = np.zeros_like(once)
    many[: 3 * len(present)] = np.concatenate([present[::-1], present, present])  # every id three times
    # Repeated ids add nothing: the same probabilities (a set of n-grams, not counts).
    got_once, got_many = np.asarray(core(np.stack([once, many])))
    np.testing.assert_allclose(got_many, got_once, atol=1e-6)
    assert abs(got_once[1] - 0.5) > 1e-3  # and the n-grams do move it
    predictions = core.get_layer("predictions").get_weights()
    np.testing.assert_array_equal(predictions[0], np.eye(2)) and np.testing.assert_array_equal(predictions[1], 0)
    assert np.abs(core.get_layer("embedding").get_weights()[0]).max() > 0  # v moved away from 0
    assert nblr.evaluate(tiny)["accuracy"] >= 0.9


def test_nblr_save_load_export(nblr, tiny, tmp_path):  # noqa: F811
    from toolkit.base import load

    directory = nblr.save(tmp_path / "nblr")
    card = json.loads((directory / "card.json").read_text())
    assert card["encoder"]["name"] == "nblr" and card["encoder"]["char_ngrams"] == [2, 3, 4, 5]
    loaded = load(directory)
    np.testing.assert_allclose(loaded.predict_proba(tiny.test.texts), nblr.predict_proba(tiny.test.texts), atol=1e-6)
    path = nblr.export(directory, quantization="float32", data=tiny)
    entry = json.loads((directory / "card.json").read_text())["tflite"][0]
    assert entry["agreement_with_keras"] == 1.0
    lite = TFLiteModel(path)
    np.testing.assert_allclose(lite.predict_proba(tiny.test.texts), nblr.predict_proba(tiny.test.texts), atol=1e-5)


def test_trained_on_every_training_text(nblr, tiny):  # noqa: F811
    """No validation part and no early stopping: the model (its naive-Bayes ratios too) is fitted on all the
    training texts for cfg.epochs epochs, the learning rate decayed along a cosine."""
    import keras

    from toolkit.nlp.encoders import nb_ratios
    from toolkit.nlp.nblr import NBLR_ALPHA

    history = nblr.history_
    assert "val_loss" not in history and len(history["loss"]) == nblr.config.epochs
    assert history["loss"][-1] < history["loss"][0]
    model = nblr.model_
    ids = np.asarray(keras.Model(model.input, model.get_layer("ids").output)(np.asarray(tiny.train.texts, object)))
    table = model.get_layer("text_core_nblr").get_layer("nb_ratios").get_weights()[0]
    expected = nb_ratios(ids, tiny.train.y, *table.shape, alpha=NBLR_ALPHA)
    offset = model.get_layer("vectorizer").vocabulary_size()
    expected[offset:offset + 2] = 0  # the character vocabulary's padding and OOV
    np.testing.assert_allclose(table, expected, atol=1e-5)
    schedule = model.optimizer.learning_rate
    assert float(schedule) < 1e-6  # decayed to 0 by the last step


def test_given_validation_data_is_measured_not_used_to_stop(tiny):  # noqa: F811
    from toolkit.nlp import TextClassifier, TextClassifierConfig

    clf = TextClassifier(TextClassifierConfig(encoder="nblr", sequence_length=16, epochs=2))
    clf.fit(tiny.train, validation_data=tiny.test)
    assert len(clf.history_["val_loss"]) == 2 and len(clf.history_["loss"]) == 2
