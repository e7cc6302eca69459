"""The NLP tab: handlers called directly, and the launched app through gradio_client.

The from-scratch sentiment model is the shipped one (saved_models/nlp/sentiment_bigru). The
MiniLM and dates models are the shipped ones when `make models` has built them; otherwise a
small MiniLM head and a tiny date translator are trained here, and the checks that need a
good model (the exact ISO date) are skipped.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from conftest import REPO, SHARED_DATA

gr = pytest.importorskip("gradio")

from apps import nlp  # noqa: E402

SHIPPED_BIGRU = REPO / "saved_models" / "nlp" / "sentiment_bigru"
SHIPPED_MINILM = REPO / "saved_models" / "nlp" / "sentiment_minilm"
SHIPPED_DATES = REPO / "saved_models" / "nlp" / "dates_seq2seq"
SENTIMENT_DATA = SHARED_DATA / "sentiment_sentences"
POSITIVE, NEGATIVE = "great phone, works perfectly", "terrible, broke after a day"
BIGRU_FILES = ["Keras", "model_float32.tflite", "model_dynamic.tflite"]


def _has_model(directory) -> bool:
    return (directory / "card.json").is_file()


@pytest.fixture(scope="module")
def bigru_dir():
    if not _has_model(SHIPPED_BIGRU):
        pytest.skip("saved_models/nlp/sentiment_bigru is missing; run `make models`")
    return SHIPPED_BIGRU


@pytest.fixture(scope="module")
def minilm_dir(tmp_path_factory):
    """The shipped MiniLM model, or a head trained here on 400 sentences (about 15 s)."""
    if _has_model(SHIPPED_MINILM):
        return SHIPPED_MINILM
    if not SENTIMENT_DATA.is_dir():
        pytest.skip(f"no shipped MiniLM model and no {SENTIMENT_DATA} to train one on; run `make models`")
    from toolkit.data.text import load_text
    from toolkit.errors import WeightsUnavailableError
    from toolkit.nlp.classifier import TextClassifier, TextClassifierConfig

    data = load_text(SENTIMENT_DATA, label_names=["negative", "positive"])
    pick = np.random.default_rng(0).permutation(len(data.texts))[:400]
    pairs = ([data.texts[i] for i in pick], [data.class_names[data.y[i]] for i in pick])
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            task = TextClassifier(TextClassifierConfig(encoder="minilm", epochs=20)).fit(pairs)
    except WeightsUnavailableError as exc:
        pytest.skip(f"the MiniLM weights are not installed: {exc}")
    return task.save(tmp_path_factory.mktemp("nlp") / "sentiment_minilm")


@pytest.fixture(scope="module")
def dates_dir(tmp_path_factory):
    """The shipped date translator, or a tiny one trained here (its answers are poor guesses)."""
    if _has_model(SHIPPED_DATES):
        return SHIPPED_DATES
    try:
        from toolkit.nlp.dates import DateTranslator
    except ImportError as exc:
        pytest.skip(f"toolkit.nlp.dates is not importable yet: {exc}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        task = DateTranslator(n_train=300, epochs=1, units=16, embedding_dim=8).fit()
    return task.save(tmp_path_factory.mktemp("nlp") / "dates_tiny")


@pytest.fixture(scope="module")
def service(bigru_dir):
    return nlp.NLPService({nlp.SCRATCH: bigru_dir})


@pytest.fixture(scope="module")
def full_service(bigru_dir, minilm_dir, dates_dir):
    return nlp.NLPService({nlp.MINILM: minilm_dir, nlp.SCRATCH: bigru_dir}, dates_dir)


@pytest.fixture(scope="module")
def dates_service(dates_dir, tmp_path_factory):
    return nlp.NLPService({}, dates_dir)


def test_import_is_light():
    import subprocess
    import sys

    code = "import sys, apps.nlp; print('tensorflow' in sys.modules, 'gradio' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


# ---------------------------------------------------------------------- sentiment


def test_bigru_with_every_file(service):
    assert service.backends(nlp.SCRATCH) == BIGRU_FILES
    for backend in BIGRU_FILES:
        for text, expected in ((POSITIVE, "positive"), (NEGATIVE, "negative")):
            scores, latency = nlp.classify_text(service, text, nlp.SCRATCH, backend)
            assert set(scores) == {"negative", "positive"}
            assert abs(sum(scores.values()) - 1) < 1e-3
            assert max(scores, key=scores.get) == expected, (backend, text, scores)
            assert backend in latency and "ms" in latency


def test_minilm(full_service):
    assert full_service.backends(nlp.MINILM) == ["Keras"]  # no TFLite file is shipped with MiniLM
    for text in (POSITIVE, NEGATIVE):
        scores, latency = nlp.classify_text(full_service, text, nlp.MINILM, "Keras")
        assert abs(sum(scores.values()) - 1) < 1e-3 and "MiniLM" in latency
    scores, _ = nlp.classify_text(full_service, "absolutely wonderful, I love it, the best purchase ever",
                                  nlp.MINILM, "Keras")
    assert max(scores, key=scores.get) == "positive"
    with pytest.raises(gr.Error, match="no model file 'model_float32.tflite'.*only Keras"):
        nlp.classify_text(full_service, POSITIVE, nlp.MINILM, "model_float32.tflite")


def test_minilm_is_not_sure_of_texts_that_are_no_sentence(full_service):
    """The "not sure" rule fit calibrated (the encoder's feature distance): keyboard mash, code and
    numbers are marked, reviews are not; the card keeps the rule and its feature file."""
    from toolkit.nlp.calibrate import generated_texts

    task = full_service.sentiment(nlp.MINILM)
    assert task.calibration_ is not None and task.calibration_.uses_features
    scores, note = nlp.classify_text(full_service, "asdf qwer zxcv", nlp.MINILM, "Keras")
    assert all(label.endswith("(unsure)") for label in scores) and "Not sure: this text reads unlike" in note
    texts = [t for kind in ("keyboard_mash", "code", "numbers") for t in generated_texts(n=5, seed=11)[kind]]
    assert np.mean([a["not_sure"] for a in task.assess(texts)]) >= 0.8
    reviews = [POSITIVE, NEGATIVE, "the battery died after two days, very disappointed",
               "friendly staff and the pasta was delicious"]
    assert not any(a["not_sure"] for a in task.assess(reviews))
    scores, note = nlp.classify_text(full_service, POSITIVE, nlp.MINILM, "Keras")
    assert set(scores) == {"positive", "negative"} and "Not sure" not in note


@pytest.mark.parametrize("method", ["lime", "shap"])
@pytest.mark.parametrize("backend", ["Keras", "model_dynamic.tflite"])
def test_explain_bigru(service, method, backend):
    text = "the battery died after a day"
    html, note = nlp.explain_text(service, text, nlp.SCRATCH, method, backend)
    for word in text.split():
        assert word in html
    assert "<span" in html and "negative" in note and method.upper() in note and backend in note


@pytest.mark.parametrize("method", ["lime", "shap"])
def test_explain_minilm(full_service, method):
    html, note = nlp.explain_text(full_service, "the screen is lovely but the battery is bad", nlp.MINILM,
                                  method, "Keras")
    assert "battery" in html and "screen" in html and "MiniLM" in note


def test_long_text_is_cut_with_a_note(service):
    text = "the screen is lovely and the battery is bad " * 2500  # 110 kB
    scores, latency = nlp.classify_text(service, text, nlp.SCRATCH, "Keras")
    assert abs(sum(scores.values()) - 1) < 1e-3
    assert "110,000 characters" in latency and "first 10,000" in latency and "first 64 words" in latency
    html, note = nlp.explain_text(service, text, nlp.SCRATCH, "lime", "Keras")
    assert "first 64 words" in note and len(html) < 20_000


BAD_TEXTS = {
    "empty": ("", "Enter"),
    "whitespace": ("   \n\t", "Enter"),
    "none": (None, "Enter"),
    "nul-bytes": ("\x00\x01\xff\xfe" * 20, "binary data"),
    "control-chars": ("".join(chr(c) for c in range(1, 32)) * 4, "binary data"),
    "undecodable-bytes": (b"\xff\xfe\xfa\x80 not utf-8", "not valid UTF-8"),
    "empty-bytes": (b"", "Enter"),
}


@pytest.mark.parametrize("name", list(BAD_TEXTS))
def test_bad_sentiment_input_gets_a_clear_message(service, name):
    text, message = BAD_TEXTS[name]
    with pytest.raises(gr.Error, match=message):
        nlp.classify_text(service, text, nlp.SCRATCH, "model_float32.tflite")
    with pytest.raises(gr.Error, match=message):
        nlp.explain_text(service, text, nlp.SCRATCH, "lime", "Keras")


def test_bad_choices_get_a_clear_message(service):
    with pytest.raises(gr.Error, match="Unknown model 'GPT'"):
        nlp.classify_text(service, POSITIVE, "GPT", "Keras")
    with pytest.raises(gr.Error, match="no model file 'model.onnx'"):
        nlp.classify_text(service, POSITIVE, nlp.SCRATCH, "model.onnx")
    with pytest.raises(gr.Error, match="Unknown explanation method 'gradcam'"):
        nlp.explain_text(service, POSITIVE, nlp.SCRATCH, "gradcam", "Keras")
    # No model chosen: the first one that is there.
    scores, _ = nlp.classify_text(service, POSITIVE, None, None)
    assert max(scores, key=scores.get) == "positive"


# ---------------------------------------------------------------------- dates


def test_translate_date_shipped_model():
    if not _has_model(SHIPPED_DATES):
        pytest.skip("saved_models/nlp/dates_seq2seq is missing; run `make models`")
    service = nlp.NLPService({}, SHIPPED_DATES)
    for text in ("Sunday, 22 November 2026", "11/22/26", "november 22nd, 2026"):
        iso, image, note = nlp.translate_date(service, text)
        assert iso == "2026-11-22", text
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[-1] == 3
        assert "best guess" in note and "not a valid calendar date" not in note


def test_translate_date_always_answers(dates_service):
    iso, image, note = nlp.translate_date(dates_service, "Sunday, 22 November 2026")
    assert isinstance(iso, str) and image.dtype == np.uint8 and image.shape[-1] == 3
    assert "best guess" in note
    # Not a date at all: still a date-shaped guess, the heatmap, and a note that says so.
    iso, image, note = nlp.translate_date(dates_service, "the cat sat on the mat")
    assert image.dtype == np.uint8 and "always writes a date-shaped answer" in note
    # Characters it never saw, and 100 kB of text: read as unknown / cut, with notes.
    iso, image, note = nlp.translate_date(dates_service, "\u20ac\u00bd 22 nov 2026 " + "x" * 100_000)
    assert "never seen in training" in note and "first 32 characters" in note


@pytest.mark.parametrize("name", list(BAD_TEXTS))
def test_bad_date_input_gets_a_clear_message(dates_service, name):
    text, message = BAD_TEXTS[name]
    with pytest.raises(gr.Error, match=message):
        nlp.translate_date(dates_service, text)


# ---------------------------------------------------------------------- facts, missing models


def test_facts(full_service):
    facts = nlp.model_facts(full_service)
    for expected in ("From scratch", "MiniLM", "bigru", "Keras test accuracy", "model_float32.tflite",
                     "model_dynamic.tflite", "agreement with Keras", "Made by `toolkit train nlp", "Dates",
                     "attention"):
        assert expected in facts, expected
    assert nlp.missing_models(full_service) == ""


def test_missing_models_are_reported_not_raised(tmp_path):
    service = nlp.NLPService({nlp.MINILM: tmp_path / "none", nlp.SCRATCH: tmp_path / "nothing"}, tmp_path / "no")
    service.warm_up()  # nothing to load, nothing raised
    assert "make models" in nlp.model_facts(service) and "make models" in nlp.missing_models(service)
    assert service.backends(nlp.SCRATCH) == ["Keras"]
    with pytest.raises(gr.Error, match="not available.*make models"):
        nlp.classify_text(service, POSITIVE, nlp.SCRATCH, "Keras")
    with pytest.raises(gr.Error, match="not available.*make models"):
        nlp.explain_text(service, POSITIVE, nlp.MINILM, "lime", "Keras")
    with pytest.raises(gr.Error, match="not available.*make models"):
        nlp.translate_date(service, "22 Nov 2026")
    demo = nlp.build_demo(service=service)
    assert demo is not None


# ---------------------------------------------------------------------- the launched app


def test_launched_app_through_gradio_client(bigru_dir, minilm_dir, dates_dir):
    from gradio_client import Client
    from gradio_client.exceptions import AppError

    from apps.main import serve_in_background

    app = serve_in_background(sentiment_dirs={nlp.MINILM: str(minilm_dir), nlp.SCRATCH: str(bigru_dir)},
                              dates_dir=str(dates_dir))
    try:
        client = Client(app.local_url, verbose=False, ssl_verify=False)
        label, latency = client.predict(POSITIVE, nlp.SCRATCH, "model_float32.tflite", api_name="/classify_text")
        assert label["label"] == "positive" and "model_float32.tflite" in latency
        label, _ = client.predict(NEGATIVE, nlp.SCRATCH, "Keras", api_name="/classify_text")
        assert label["label"] == "negative"
        label, _ = client.predict(POSITIVE, nlp.MINILM, "Keras", api_name="/classify_text")
        assert {c["label"] for c in label["confidences"]} == {"negative", "positive"}
        html, note = client.predict("the battery died after a day", nlp.SCRATCH, "shap", "Keras",
                                    api_name="/explain_text")
        assert "battery" in html and "SHAP" in note
        iso, heatmap, note = client.predict("Sunday, 22 November 2026", api_name="/translate_date")
        assert isinstance(iso, str) and heatmap and "best guess" in note
        if dates_dir == SHIPPED_DATES:
            assert iso == "2026-11-22"
        with pytest.raises(AppError, match="Enter some text to classify"):
            client.predict("", nlp.SCRATCH, "Keras", api_name="/classify_text")
        with pytest.raises(AppError, match="binary data"):
            client.predict("\x00\x01\xff" * 10, nlp.SCRATCH, "Keras", api_name="/classify_text")
        with pytest.raises(AppError, match="Enter a date"):
            client.predict("   ", api_name="/translate_date")
        # ...and the server keeps serving (the latency targets are measured by `make bench`).
        for model in (nlp.SCRATCH, nlp.MINILM):
            scores, _ = client.predict(POSITIVE, model, "Keras", api_name="/classify_text")
            assert scores
    finally:
        app.close()


def test_each_component_is_rendered_once(bigru_dir, tmp_path):
    from apps.main import build_app

    ids = []

    def walk(node):
        ids.append(node["id"])
        for child in node.get("children", []):
            walk(child)

    app = build_app(tmp_path / "no_vision_model", sentiment_dirs={nlp.SCRATCH: bigru_dir}, dates_dir=tmp_path / "no")
    walk(app.config["layout"])
    assert len(ids) == len(set(ids)), "a component appears twice in the page"
    api = app.get_api_info()["named_endpoints"] if hasattr(app, "get_api_info") else {}
    for name in ("/classify_text", "/explain_text", "/translate_date"):
        assert not api or name in api, name


def test_concurrent_texts_share_one_pass_and_keep_their_own_errors(service):
    """Classify is batched (Gradio's batch=True): one model pass per model and file, and an empty
    text in the batch gets its own message while the others are answered."""
    batch = nlp.classify_batch(service)
    labels, notes = batch([POSITIVE, "  ", NEGATIVE], [nlp.SCRATCH] * 3, ["Keras"] * 3)
    assert max(labels[0], key=labels[0].get) == "positive" and max(labels[2], key=labels[2].get) == "negative"
    assert "one pass for 2 requests" in notes[0]
    assert labels[1] is None and notes[1].startswith("**Error:**") and "Enter some text" in notes[1]
    with pytest.raises(gr.Error, match="Enter some text"):
        batch(["  "], [nlp.SCRATCH], ["Keras"])
    with pytest.raises(gr.Error, match="Expected the model"):
        batch([POSITIVE], [["a list"]], ["Keras"])


def test_a_text_that_is_not_a_date_is_flagged():
    assert nlp.looks_like_date("22 nov 2026") and nlp.looks_like_date("11/22/26")
    assert not nlp.looks_like_date("hello world") and not nlp.looks_like_date("[]")
