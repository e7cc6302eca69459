"""Issue 15, text: the TF-IDF peer beside every text result, and the fastText-style encoder
(bigram ids the pure-Python tokenizer reproduces; train, save, load, export, TFLite parity)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from toolkit import TFLiteModel

POSITIVE = ["great phone", "love this case", "works very well", "excellent sound", "very happy with it",
            "perfect fit and great value"]
NEGATIVE = ["broken after a day", "awful sound", "waste of money", "terrible case", "stopped working soon",
            "poor fit and bad value"]


def _texts(n: int, offset: int = 0):
    texts, labels = [], []
    for i in range(offset, offset + n):
        good = i % 2 == 1
        words = POSITIVE if good else NEGATIVE
        texts.append(f"{words[i % 6]}, the {('phone', 'cable', 'charger')[i % 3]} is {words[(i + 1) % 6]}")
        labels.append("positive" if good else "negative")
    return texts, labels


@pytest.fixture(scope="module")
def tiny():
    from toolkit.data.text import TextSplits, resolve_text_data

    train = resolve_text_data(_texts(96), "train")
    test = resolve_text_data(_texts(30, offset=500), "test", class_names=train.class_names)
    return TextSplits(train, test, {"source": "arrays"})


@pytest.fixture(scope="module")
def fasttext(tiny):
    from toolkit.nlp import TextClassifier, TextClassifierConfig

    config = TextClassifierConfig(encoder="fasttext", sequence_length=16, epochs=25, learning_rate=1e-2,
                                  embedding_dim=16)
    return TextClassifier(config).fit(tiny)


def test_tfidf_baseline_learns_the_tiny_set(tiny):
    from toolkit.nlp.baselines import accuracy, fit_baseline, tfidf_accuracy

    assert tfidf_accuracy(tiny.train.texts, tiny.train.y, tiny.test.texts, tiny.test.y) == 1.0
    nb = fit_baseline("naive_bayes", tiny.train.texts, tiny.train.y)
    assert accuracy(nb, tiny.test.texts, tiny.test.y) == 1.0
    flipped = accuracy(nb, tiny.test.texts, 1 - tiny.test.y)
    assert flipped == 0.0
    with pytest.raises(ValueError, match="Valid names"):
        fit_baseline("svm", tiny.train.texts, tiny.train.y)


def test_word_tokenizer_reproduces_bigram_vectorization():
    import keras
    import tensorflow as tf

    from toolkit.nlp.tokenizer import WordTokenizer

    texts = _texts(40)[0] + ["The BATTERY died -- after a day!!!", "", "one", "a b c d e f g h i j k l m n o p q"]
    layer = keras.layers.TextVectorization(max_tokens=120, output_sequence_length=12, ngrams=2)
    layer.adapt(texts[:30])
    tokenizer = WordTokenizer(layer.get_vocabulary(), 12, ngrams=2)
    np.testing.assert_array_equal(tokenizer.encode(texts), layer(tf.constant(texts)).numpy())
    assert tokenizer.tokens("Great phone!") == ["great", "phone", "great phone"]
    assert any(" " in token for token in tokenizer.vocabulary)  # bigrams are in the vocabulary


def test_evaluate_reports_the_tfidf_baseline(fasttext, tiny):
    metrics = fasttext.evaluate(tiny)
    assert metrics["baseline_tfidf_accuracy"] == 1.0
    assert metrics["accuracy"] >= 0.9
    assert fasttext.tfidf_baseline() is fasttext.tfidf_baseline()  # fitted once


def test_fasttext_save_load_export_agree(fasttext, tiny, tmp_path):
    from toolkit.base import load

    directory = fasttext.save(tmp_path / "ft")
    card = json.loads((directory / "card.json").read_text())
    assert card["encoder"]["name"] == "fasttext" and card["encoder"]["ngrams"] == 2
    loaded = load(directory)
    np.testing.assert_allclose(loaded.predict_proba(tiny.test.texts), fasttext.predict_proba(tiny.test.texts),
                               atol=1e-6)
    # A loaded model has no training texts in memory; with TextSplits it fits the peer on their train part.
    assert loaded.evaluate(tiny)["baseline_tfidf_accuracy"] == 1.0
    path = fasttext.export(directory, quantization="dynamic", data=tiny)
    entry = json.loads((directory / "card.json").read_text())["tflite"][0]
    assert entry["agreement_with_keras"] == 1.0
    lite = TFLiteModel(path)
    np.testing.assert_array_equal(lite.predict(tiny.test.texts), fasttext.predict(tiny.test.texts))


def test_loaded_model_without_its_data_reports_no_tfidf(fasttext, tiny, tmp_path):
    from toolkit.base import load

    loaded = load(fasttext.save(tmp_path / "ft"))
    texts, labels = _texts(20, offset=900)
    metrics = loaded.evaluate((texts, labels))
    assert "baseline_tfidf_accuracy" not in metrics and metrics["accuracy"] >= 0.9


def test_train_recipe_card_has_the_baseline(tmp_path):
    import csv

    from toolkit.nlp import TextClassifier

    path = tmp_path / "reviews.csv"
    texts, labels = _texts(80)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        writer.writerows(zip(texts, labels))
    summary = TextClassifier.train_recipe(tmp_path / "out", data=str(path), encoder="fasttext", epochs=3,
                                          sequence_length=16, verbose=0)
    card = json.loads((tmp_path / "out" / "card.json").read_text())
    assert summary["metrics"]["test_baseline_tfidf_accuracy"] == card["metrics"]["test_baseline_tfidf_accuracy"]
    assert 0.5 <= card["metrics"]["test_baseline_tfidf_accuracy"] <= 1.0


def test_paired_interval_of_two_accuracies_on_one_test_part():
    from benchmarks.nlp import paired_interval

    right = np.array([True] * 80 + [False] * 20)
    same = paired_interval([right, right], right, margin=0.0)
    assert same["difference"] == same["low"] == same["high"] == 0.0 and same["share_reaching_goal"] == 1.0
    better = right.copy()
    better[80:84] = True  # 4 more texts right: +4 points on 100 texts, +20 out of reach
    interval = paired_interval([better], right, margin=0.20)
    assert interval["difference"] == pytest.approx(0.04) and interval["share_reaching_goal"] == 0.0
    assert 0.0 <= interval["low"] < 0.04 < interval["high"] and interval["texts"] == 100
