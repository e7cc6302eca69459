"""Text explanations: LIME and SHAP find the words that drive a keyword classifier; rendering."""

from __future__ import annotations

import re
import time

import numpy as np
import pytest

from toolkit.explain import (
    Explanation,
    align_to_spans,
    explain_text,
    lime_text,
    shap_text,
    text_html,
    text_image,
    word_spans,
)
from toolkit.explain.text import warm_up_shap

TEXT = "The food was good and the staff were great, but the parking was bad."


class KeywordModel:
    """P(positive) rises with "good"/"great" and falls with "bad"; costs ~1 ms per call."""

    def __init__(self, delay: float = 0.001):
        self.delay = delay
        self.calls = 0
        self.texts = 0

    def __call__(self, texts: list[str]) -> np.ndarray:
        assert isinstance(texts, list) and all(isinstance(t, str) for t in texts)
        self.calls += 1
        self.texts += len(texts)
        time.sleep(self.delay)
        scores = []
        for t in texts:
            words = re.findall(r"\w+", t.lower())
            scores.append(2.0 * words.count("good") + 1.5 * words.count("great") - 3.0 * words.count("bad"))
        p = 1.0 / (1.0 + np.exp(-np.array(scores)))
        return np.stack([1 - p, p], axis=1)


@pytest.fixture(scope="module")
def warm():
    """Compile shap's numba code once, so per-test timings are for the explanation alone."""
    return warm_up_shap()


def words_of(text: str) -> list[str]:
    return [text[a:b] for a, b in word_spans(text)]


def test_word_spans_keep_offsets_into_the_original_text():
    text = '  "Don\'t" buy it — it\'s 2x worse!\n'
    spans = word_spans(text)
    assert words_of(text) == ["Don't", "buy", "it", "it's", "2x", "worse"]
    assert spans[0] == (3, 8) and all(text[a:b].strip() == text[a:b] for a, b in spans)
    assert word_spans("!!! ...") == []


@pytest.mark.parametrize("method", [lime_text, shap_text])
def test_the_driving_words_get_the_largest_weights(method, warm):
    model = KeywordModel()
    words = words_of(TEXT)
    weights = method(model, TEXT, target=1, budget=500, seed=0)
    assert weights.shape == (len(word_spans(TEXT)),)
    order = np.argsort(weights)
    assert words[order[0]] == "bad" and weights[order[0]] < 0
    assert {words[order[-1]], words[order[-2]]} == {"good", "great"} and weights[order[-2]] > 0
    others = [abs(w) for w, word in zip(weights, words) if word not in ("good", "great", "bad")]
    assert max(others) < 0.25 * min(abs(weights[words.index(w)]) for w in ("good", "great", "bad"))
    # The other class sees the same words with the opposite sign.
    against = method(model, TEXT, target=0, budget=500, seed=0)
    assert words[int(np.argmax(against))] == "bad" and against[words.index("good")] < 0


@pytest.mark.parametrize("method", [lime_text, shap_text])
def test_explainers_batch_the_predictor(method, warm):
    model = KeywordModel(delay=0.001)
    method(model, TEXT, target=1, budget=500)
    assert model.calls <= 12, model.calls  # LIME: 2 calls (check + all samples); SHAP: a few batches
    assert model.texts <= 510


@pytest.mark.parametrize("method", [lime_text, shap_text])
def test_edge_texts(method, warm):
    model = KeywordModel(delay=0)
    assert method(model, "... !!!", target=1).shape == (0,)
    single = method(model, "good", target=1)
    probs = model(["good", ""])[:, 1]
    assert single.shape == (1,) and single[0] > 0.3 and single[0] <= probs[0] - 0.5 + 1e-6
    small = method(model, TEXT, target=1, budget=10)
    assert small.shape == (len(word_spans(TEXT)),) and np.all(np.isfinite(small))
    with pytest.raises(ValueError, match="out of range for a predictor with 2 classes"):
        method(model, TEXT, target=2)
    with pytest.raises(ValueError, match=r"shape \(n_texts, n_classes\)"):
        method(lambda texts: np.zeros(len(texts)), TEXT, target=0)


def test_shap_masks_words_and_keeps_everything_else_verbatim(warm):
    seen = []

    def model(texts):
        seen.extend(texts)
        return KeywordModel(delay=0)(texts)

    shap_text(model, '"Good" food!', target=1, budget=20)
    assert '"Good" food!' in seen and '"" food!' in seen and '"" !' in seen


def test_align_to_spans_handles_separators_and_subword_tokens():
    text = "Great food, bad service"
    spans = word_spans(text)
    # shap-like segments: words with trailing separators, a pure-whitespace token, a punctuation token.
    tokens = ["Great ", " ", "food", ", ", "bad ", "serv", "##ice"]
    values = [1.0, 9.0, 0.5, 7.0, -2.0, 0.25, 0.25]
    weights = align_to_spans(text, spans, tokens, values)
    assert weights.tolist() == [1.0, 0.5, -2.0, 0.5]
    # A token spanning two words splits its value; unknown tokens are skipped.
    assert align_to_spans(text, spans, ["Great food", "zzz", "bad"], [2.0, 5.0, -1.0]).tolist() == [1.0, 1.0, -1.0, 0.0]


def test_html_escapes_and_colours_by_sign():
    text = 'I <script>alert("x")</script> love & hate it'
    spans = word_spans(text)
    weights = np.zeros(len(spans))
    words = words_of(text)
    weights[words.index("love")] = 0.8
    weights[words.index("hate")] = -0.4
    page = text_html(text, spans, weights, target_label="<b>positive</b>")
    assert "<script" not in page and "</script" not in page and "&amp;" in page
    plain = re.sub(r"<span[^>]*>|</span>", "", page)
    assert "I &lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; love &amp; hate it" in plain
    assert "&lt;b&gt;positive&lt;/b&gt;" in page and "<b>positive</b>" not in page
    assert 'rgba(220, 38, 38, 0.850)' in page and 'title="weight +0.8000">love</span>' in page
    assert 'rgba(37, 99, 235, 0.425)' in page and 'title="weight -0.4000">hate</span>' in page
    assert "supports" in page and "against" in page
    with pytest.raises(ValueError, match="one weight per word span"):
        text_html(text, spans, weights[:2], "x")


def test_text_image_is_an_rgb_rendering_with_highlights():
    text = "good " * 40 + "\nbad ending with $math$ and a\ttab"
    spans = word_spans(text)
    weights = np.array([1.0 if text[a:b] == "good" else -1.0 if text[a:b] == "bad" else 0.0 for a, b in spans])
    image = text_image(text, spans, weights)
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[-1] == 3 and image.shape[0] > 60
    red = (image[..., 0] > 200) & (image[..., 1] < 120) & (image[..., 2] < 120)
    blue = (image[..., 2] > 200) & (image[..., 0] < 120)
    assert red.sum() > 500 and blue.sum() > 50
    tall = text_image("word " * 5000, word_spans("word " * 5000), np.ones(5000))
    assert tall.shape[0] < 1200  # cut after max_lines


def test_explain_text_builds_an_explanation_with_html(tmp_path, warm):
    model = KeywordModel(delay=0)
    exp = explain_text(model, TEXT, target=1, method="shap", budget=200, target_label="positive")
    assert isinstance(exp, Explanation) and exp.method == "shap" and exp.target == "positive"
    assert exp.attributions.shape == (len(word_spans(TEXT)),) and exp.budget == 200 and exp.seconds > 0
    assert exp.extra["words"] == words_of(TEXT) and exp.image.dtype == np.uint8
    page = exp.save(tmp_path / "why.html").read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and '<meta charset="utf-8">' in page and "great" in page
    assert exp.save(tmp_path / "why.png").read_bytes()[:4] == b"\x89PNG"
    assert '"words"' in exp.save(tmp_path / "why.json").read_text()
    with pytest.raises(ValueError, match="Unknown explanation method 'gradcam'"):
        explain_text(model, TEXT, target=1, method="gradcam")


def test_explanation_without_html_says_which_formats_it_supports(tmp_path):
    exp = Explanation(np.zeros((4, 4)), "gradcam", "1", 0.1, np.zeros((4, 4, 3), np.uint8))
    assert exp.html is None
    with pytest.raises(ValueError, match=r"no HTML rendering.*\.png, \.jpg, \.npy or \.json"):
        exp.save(tmp_path / "why.html")
    assert not (tmp_path / "why.html").exists()
