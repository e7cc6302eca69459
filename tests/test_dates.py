"""Date translation: the generator, the seq2seq task, save/load, bad inputs, attention, TFLite."""

from __future__ import annotations

import datetime as dt
import json
import re
import warnings

import numpy as np
import pytest

from toolkit.errors import DataError
from toolkit.nlp.dates import (
    DATE_FORMATS,
    DateTranslator,
    DateTranslatorConfig,
    TFLiteDateTranslator,
    format_date,
    generate_dates,
    heldout_dates,
    normalize_text,
    read_vocab,
)

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
TINY = DateTranslatorConfig(n_train=2000, epochs=2, units=32, embedding_dim=16, batch_size=64)


@pytest.fixture(scope="module")
def translator():
    """A tiny model: 2,000 generated dates, two epochs (accuracy is not the point here)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return DateTranslator(TINY).fit()


@pytest.fixture(scope="module")
def saved(translator, tmp_path_factory):
    return translator.save(tmp_path_factory.mktemp("dates") / "model")


@pytest.fixture(scope="module")
def exported(translator, saved):
    """The saved model exported to float32 TFLite, checked on 200 held-out dates."""
    check = translator.heldout(200)
    return translator.export(saved, quantization="float32", data=check), check


# ---------------------------------------------------------------------------------- generator
def test_generator_is_reproducible_and_valid():
    a, b = generate_dates(500, seed=3), generate_dates(500, seed=3)
    assert a == b
    assert generate_dates(500, seed=4) != a
    inputs, targets = a
    assert len(inputs) == len(targets) == 500
    for target in targets:
        day = dt.date.fromisoformat(target)
        assert dt.date(1950, 1, 1) <= day <= dt.date(2049, 12, 31)
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", target)


def test_generator_writes_the_documented_formats():
    day = dt.date(2026, 11, 22)
    assert format_date(day, "d_mon_yyyy") == "22 Nov 2026"
    assert format_date(day, "month_dth_yyyy", case="lower") == "november 22nd, 2026"
    assert format_date(day, "us_short") == "11/22/26"
    assert format_date(day, "weekday_d_month_yyyy") == "Sunday, 22 November 2026"
    assert format_date(day, "mon_d_yyyy") == "Nov 22, 2026"
    assert format_date(day, "d_month_yyyy", case="upper") == "22 NOVEMBER 2026"
    assert format_date(day, "iso") == "2026-11-22"
    assert format_date(day, "dotted") == "22.11.2026"
    assert format_date(day, "wkd_d_mon_yyyy") == "Sun 22 Nov 2026"
    assert format_date(day, "the_dth_of_month_yyyy") == "the 22nd of November 2026"
    assert format_date(dt.date(1975, 3, 4), "us_short", seed=1).endswith("/75")
    with pytest.raises(ValueError, match="1950-2049"):
        format_date(dt.date(2060, 1, 1), "us_short")
    with pytest.raises(ValueError, match="Valid formats"):
        format_date(day, "dd/mm/yy")


def test_generated_dates_cover_formats_cases_weekdays_and_the_us_pivot():
    inputs, targets = generate_dates(4000, seed=0)
    patterns = {
        "22 Nov 2026": r"\d{1,2} [a-z]{3,4} \d{4}",
        "november 22nd, 2026": r"[a-z]+ \d{1,2}(st|nd|rd|th), \d{4}",
        "11/22/26": r"\d{1,2}/\d{1,2}/\d{2}",
        "Sunday, 22 November 2026": r"[a-z]+day, \d{1,2} [a-z]+ \d{4}",
        "2026-11-22": r"\d{4}-\d{2}-\d{2}",
        "22.11.2026": r"\d{1,2}\.\d{1,2}\.\d{4}",
        "Sun 22 Nov 2026": r"(mon|tue|wed|thu|fri|sat|sun) \d{1,2} [a-z]{3,4} \d{4}",
        "the 22nd of November 2026": r"the \d{1,2}(st|nd|rd|th) of [a-z]+ \d{4}",
    }
    lowered = [text.lower() for text in inputs]
    for example, pattern in patterns.items():
        assert any(re.fullmatch(pattern, text) for text in lowered), example
    assert any(t.isupper() for t in inputs) and any(t.islower() for t in inputs)
    assert any(t != t.lower() and t != t.upper() for t in inputs)
    us_short = 0
    for text, target in zip(lowered, targets):
        day = dt.date.fromisoformat(target)
        match = re.fullmatch(r"(\d{1,2})/(\d{1,2})/(\d{2})", text)
        if match:  # US month/day/two-digit year, 00-49 -> 20xx, 50-99 -> 19xx
            us_short += 1
            month, mday, yy = (int(g) for g in match.groups())
            assert dt.date(2000 + yy if yy < 50 else 1900 + yy, month, mday) == day
        elif re.fullmatch(r"\d{1,2}/\d{1,2}/\d{4}", text):
            month, mday, year = (int(g) for g in text.split("/"))
            assert dt.date(year, month, mday) == day
        if text[:3] in {w[:3] for w in WEEKDAYS}:  # "Sunday, 22 November 2026", "Sun 22 Nov 2026"
            assert WEEKDAYS[day.weekday()][:3] == text[:3]
    assert us_short > 50
    early, _ = generate_dates(300, seed=0, start=dt.date(1900, 1, 1), end=dt.date(1940, 12, 31))
    assert not any(re.fullmatch(r"\d{1,2}/\d{1,2}/\d{2}", t) for t in early)
    assert set(DATE_FORMATS) >= {"d_mon_yyyy", "us_short", "weekday_d_month_yyyy", "month_dth_yyyy"}


def test_heldout_dates_exclude_training_inputs():
    train, _ = generate_dates(3000, seed=0)
    inputs, targets = heldout_dates(500, seed=2, exclude=train)
    assert len(inputs) == len(targets) == 500
    seen = {normalize_text(t) for t in train}
    assert not seen & {normalize_text(t) for t in inputs}
    assert heldout_dates(50, seed=2, exclude=train) == (inputs[:50], targets[:50])


# ---------------------------------------------------------------------------------- task
def test_translate_predict_and_evaluate_shapes(translator):
    one = translator.translate("Sunday, 22 November 2026")
    assert isinstance(one, list) and len(one) == 1 and isinstance(one[0], str)
    many = translator.translate(["22 Nov 2026", "11/22/26", "NOVEMBER 22ND, 2026"])
    assert len(many) == 3 and all(isinstance(t, str) for t in many)
    assert translator.translate("22 NOVEMBER 2026") == translator.translate("22 november 2026")
    predicted = translator.predict(np.array(["22 Nov 2026", "2026-11-22"]))
    assert isinstance(predicted, np.ndarray) and predicted.shape == (2,)
    scores = translator.evaluate((["22 Nov 2026", "2026-11-22"], ["2026-11-22", "2026-11-22"]))
    assert set(scores) == {"exact_match", "char_accuracy", "n"} and scores["n"] == 2
    scores = translator.evaluate()
    assert scores["n"] == 2000 and 0 <= scores["exact_match"] <= scores["char_accuracy"] <= 1
    assert scores["char_accuracy"] > 0.3  # two epochs already get most characters
    assert translator.metrics_["heldout_exact_match"] == scores["exact_match"]
    assert translator.evaluate(translator.reload_data()) == scores  # what `toolkit evaluate` passes


def test_fit_on_lists_with_variable_length_targets():
    inputs = [f"{i} apples" for i in range(1, 61)]
    targets = [str(i * 2) for i in range(1, 61)]
    small = DateTranslator(TINY, units=8, embedding_dim=4, epochs=1, max_input_length=12).fit((inputs, targets))
    assert small.output_length_ == 3 and small.output_vocab_[:2] == ["<start>", "<end>"]
    out = small.translate(["7 apples", "pears?"])
    assert len(out) == 2 and all(isinstance(t, str) and len(t) <= 3 for t in out)
    with pytest.raises(DataError, match="as many targets"):
        small.fit((["a", "b"], ["1"]))
    with pytest.raises(DataError, match=r"\(inputs, targets\)"):
        small.fit("dates.csv")


def test_save_load_round_trip_and_safe_mode(translator, saved):
    import keras

    import toolkit.base

    texts = ["22 Nov 2026", "november 22nd, 2026", "11/22/26", "Sunday, 22 November 2026", "zzz"]
    loaded = toolkit.base.load(saved)
    assert isinstance(loaded, DateTranslator)
    assert loaded.translate(texts) == translator.translate(texts)
    assert loaded.input_vocab_ == translator.input_vocab_ and loaded.output_vocab_ == translator.output_vocab_
    i1, o1, m1 = translator.attention(texts[3])
    i2, o2, m2 = loaded.attention(texts[3])
    assert (i1, o1) == (i2, o2) and np.allclose(m1, m2, atol=1e-5)
    keras.saving.load_model(saved / "model.keras", safe_mode=True)
    card = json.loads((saved / "card.json").read_text())
    assert card["task"] == "date_translator" and card["class"] == "DateTranslator"
    assert card["input"]["vocabulary"][:2] == ["<pad>", "<oov>"] and card["input"]["max_length"] == 32
    assert card["output"]["length"] == 10 and card["config"]["cell"] == "gru"
    assert card["data"]["source"] == "generated"
    # A fresh load regenerates the training inputs to keep the held-out set unseen.
    assert loaded.heldout(100) == translator.heldout(100)


@pytest.mark.parametrize("bad", ["", "   \n\t", None, 5, b"22 Nov 2026", [], ["22 Nov 2026", None], {"a": 1}])
def test_bad_inputs_raise_data_error(translator, bad):
    with pytest.raises(DataError):
        translator.translate(bad)


def test_odd_inputs_get_a_best_guess(translator):
    garbage = "\x00\xff\ufffd\u200b\x07" * 20
    with pytest.warns(UserWarning, match="truncated"):
        out = translator.translate(["x" * 100_000, garbage, "Ω≈ç√", "32/13/99", "22 Nov 2026" + " " * 5000])
    assert len(out) == 5 and all(isinstance(t, str) and t for t in out)
    with pytest.warns(UserWarning, match="truncated"):
        tokens, outputs, matrix = translator.attention(garbage)
    assert len(tokens) == translator.config.max_input_length and matrix.shape == (len(outputs), len(tokens))
    assert set(translator._encode(["Ω≈"])[0][:2].tolist()) == {1}  # unseen characters -> OOV id


def test_attention_matrix(translator):
    text = "  Sunday,   22 NOVEMBER 2026 "
    tokens, outputs, matrix = translator.attention(text)
    assert tokens == list("sunday, 22 november 2026")
    assert "".join(outputs) == translator.translate(text)[0]
    assert matrix.shape == (len(outputs), len(tokens)) == (10, len(tokens))
    assert np.allclose(matrix.sum(axis=1), 1.0, atol=1e-4) and (matrix >= 0).all()
    with pytest.raises(DataError):
        translator.attention(["a", "b"])


def test_explain_renders_the_attention(translator, tmp_path):
    explanation = translator.explain("the 22nd of November 2026")
    assert explanation.method == "attention" and isinstance(explanation.target, str)
    assert explanation.image.dtype == np.uint8 and explanation.image.ndim == 3 and explanation.image.shape[2] == 3
    assert explanation.attributions.shape == (10, len("the 22nd of november 2026"))
    assert explanation.extra["input_tokens"][0] == "t"
    assert explanation.save(tmp_path / "attention.png").stat().st_size > 1000
    with pytest.raises(ValueError, match="attention"):
        translator.explain("22 Nov 2026", method="lime")
    with pytest.raises(DataError, match="no target"):
        translator.explain("22 Nov 2026", target="2026-11-22")
    assert translator.explain("22 Nov 2026", budget=5, seed=1).target == translator.translate("22 Nov 2026")[0]


# ---------------------------------------------------------------------------------- TFLite
def test_tflite_export_is_builtin_only_and_matches_keras(translator, saved, exported):
    file, (inputs, targets) = exported
    runner = TFLiteDateTranslator(file)
    assert not [op for op in runner.ops if op.startswith("Flex")]
    assert runner.translate(inputs) == translator.translate(inputs)
    detail = runner.interpreter.get_input_details()[0]
    assert list(detail["shape"]) == [1, 32] and np.dtype(detail["dtype"]) == np.int32
    vocab = read_vocab(file.parent / "vocab.txt")
    assert vocab == translator.input_vocab_ and vocab[:2] == ["<pad>", "<oov>"]
    assert "<space>" in (file.parent / "vocab.txt").read_text().split("\n")
    tokens, outputs, matrix = runner.attention("22 Nov 2026")
    k_tokens, k_outputs, k_matrix = translator.attention("22 Nov 2026")
    assert (tokens, outputs) == (k_tokens, k_outputs) and np.allclose(matrix, k_matrix, atol=1e-4)
    card = json.loads((saved / "card.json").read_text())
    entry = card["tflite"][-1]
    assert entry["file"] == file.name and entry["quantization"] == "float32"
    assert entry["vocab_file"] == "vocab.txt" and entry["builtin_ops_only"] is True
    assert entry["agreement_with_keras"] == 1.0 and entry["n_heldout"] == 200
    assert {"size_bytes", "sha256", "heldout_exact_match", "input", "outputs", "latency_ms_p50"} <= set(entry)
    with pytest.raises(ValueError, match="float16"):
        translator.export(saved, quantization="int8")


# ---------------------------------------------------------------------------------- config
@pytest.mark.parametrize(
    "field, value, message",
    [
        ("cell", "rnn", "Unknown cell"),
        ("attention", "multihead", "Unknown attention"),
        ("units", 0, "units must be >= 1"),
        ("units", 1.5, "units must be an int"),
        ("epochs", True, "epochs must be an int"),
        ("n_train", 5, "n_train must be >= 20"),
        ("learning_rate", 0.0, "learning_rate"),
        ("max_input_length", 4, "max_input_length"),
        ("patience", 0, "patience must be >= 1"),
    ],
)
def test_config_validation(field, value, message):
    with pytest.raises(ValueError, match=message):
        DateTranslatorConfig(**{field: value})
