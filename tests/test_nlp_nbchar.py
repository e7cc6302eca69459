"""Issue 15, text: the ``nbchar`` encoder (NBSVM over the TF-IDF peer's features: word 1-2-grams
and character 2-5-grams): the pure-Python ids equal the model's, save/load, TFLite export from ids
(vocab.txt: words then characters) and explanations on words."""

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
def nbchar(tiny):
    from toolkit.nlp import TextClassifier, TextClassifierConfig

    return TextClassifier(TextClassifierConfig(encoder="nbchar", sequence_length=16, epochs=5)).fit(tiny)


def test_char_tokens_by_hand():
    from toolkit.nlp.charngrams import char_tokens, char_wb_tokens

    # The analyzer of models saved before char_wb: standardized "ab, C" -> "ab c": 2-grams, then 3-, 4- and
    # 5-grams (characters joined by a space).
    assert char_tokens("ab, C") == ["a b", "b  ", "  c", "a b  ", "b   c", "a b   c"]
    # char_wb: lowercase, punctuation kept, each word padded with spaces, n-grams inside a word only.
    assert char_wb_tokens("ab, C") == [" a", "ab", "b,", ", ", " ab", "ab,", "b, ", " ab,", "ab, ", " ab, ",
                                       " c", "c ", " c "]


def test_char_wb_equals_scikit_learn():
    from sklearn.feature_extraction.text import CountVectorizer

    from toolkit.nlp.charngrams import char_wb_tokens

    analyzer = CountVectorizer(analyzer="char_wb", ngram_range=(2, 5), lowercase=False).build_analyzer()
    for text in ("The phone's screen CRACKED!!  after 2 days :(", "a", "", "tabs\tand\nnew lines"):
        assert sorted(char_wb_tokens(text)) == sorted(analyzer(text.lower()))


def test_python_ids_equal_the_model_and_learn(nbchar, tiny):
    import keras

    from toolkit.nlp.charngrams import CHAR_FACTOR

    texts = list(tiny.test.texts) + ["Ünïcode — tabs\tand  double  spaces!!", "", "great", "a\u00a0b \u00c9T\u00c9 x"]
    ids_model = keras.Model(nbchar.model_.input, nbchar.model_.get_layer("ids").output)
    expected = np.asarray(ids_model(np.asarray(texts, dtype=object)))
    tokenizer = nbchar._word_tokenizer()
    got = tokenizer.encode(texts)
    assert got.shape == (len(texts), 16 * (1 + CHAR_FACTOR)) == expected.shape
    np.testing.assert_array_equal(got, expected)
    offset = nbchar.model_.get_layer("vectorizer").vocabulary_size()
    assert got[:, 16:].max() >= offset and (got[:, 16:][got[:, 16:] > 0] >= offset).all()  # shifted char ids
    core = nbchar.model_.get_layer("text_core_nbchar")
    ratios = core.get_layer("nb_ratios").get_weights()[0]
    assert np.all(ratios[:2] == 0) and np.all(ratios[offset:offset + 2] == 0)  # paddings and OOVs
    assert nbchar.evaluate(tiny)["accuracy"] >= 0.9


def test_nbchar_save_load_export_explain(nbchar, tiny, tmp_path):
    from toolkit.base import load

    directory = nbchar.save(tmp_path / "nbchar")
    card = json.loads((directory / "card.json").read_text())
    assert card["encoder"]["name"] == "nbchar" and card["encoder"]["char_ngrams"] == [2, 3, 4, 5]
    assert card["encoder"]["char_analyzer"] == "char_wb" and "char_wb" in card["encoder"]["tokenizer"]
    assert card["input"]["sequence_length"] == 16 * 9 and card["encoder"]["word_sequence_length"] == 16
    loaded = load(directory)
    np.testing.assert_allclose(loaded.predict_proba(tiny.test.texts), nbchar.predict_proba(tiny.test.texts),
                               atol=1e-6)
    path = nbchar.export(directory, quantization="float32", data=tiny)
    entry = json.loads((directory / "card.json").read_text())["tflite"][0]
    assert entry["agreement_with_keras"] == 1.0
    lite = TFLiteModel(path)
    np.testing.assert_allclose(lite.predict_proba(tiny.test.texts), nbchar.predict_proba(tiny.test.texts),
                               atol=1e-5)
    explanation = nbchar.explain("great phone, the cable is excellent sound", method="lime", budget=60)
    assert explanation.attributions.shape == (7,) and explanation.extra["class_index"] == 1
    via_lite = nbchar.explain("great phone, the cable is excellent sound", method="shap", budget=60, predictor=lite)
    assert via_lite.attributions.shape == (7,)


def test_cards_without_char_analyzer_keep_their_across_word_ngrams(tmp_path):
    from toolkit.nlp.charngrams import lite_tokenizer
    from toolkit.nlp.tokenizer import OOV, PAD

    # Word vocabulary (4 lines), then the character one: "a b" (across words) and " ab" (char_wb).
    (tmp_path / "vocab.txt").write_text("".join(f"{t}\n" for t in [PAD, OOV, "ab", "c", PAD, OOV, "a b", " ab"]))
    encoder = {"char_ngrams": [2, 3, 4, 5], "word_vocab_size": 4, "word_sequence_length": 2}
    old = lite_tokenizer({"encoder": encoder}, str(tmp_path))
    new = lite_tokenizer({"encoder": {**encoder, "char_analyzer": "char_wb"}}, str(tmp_path))
    assert (old.analyzer, new.analyzer) == ("char", "char_wb")
    assert old.encode("ab")[0].tolist()[:4] == [2, 0, 6, 0]  # "a b", then padding
    assert new.encode("ab")[0].tolist()[:8] == [2, 0, 5, 5, 5, 7, 5, 5]  # " a", "ab", "b ", " ab", "ab ", " ab "
