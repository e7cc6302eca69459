"""Text explanations: LIME and SHAP over the words of one text, rendered as HTML and as an image.

Model-agnostic: the classifier is any ``predict_proba(list[str]) -> (N, n_classes)`` array.
Both methods return one weight per word token of :func:`word_spans`, in text order; positive
weights support the target class. Predictor calls are batched (LIME: one call with all its
samples; SHAP: up to ``budget`` texts per call).

The predictor sees the text with some words masked: LIME puts ``UNKWORDZ`` in their place,
SHAP removes them (punctuation and spacing stay), so it must accept texts with few or no words
left, including an empty string: pass the model's raw ``predict_proba``, not one that rejects
empty input.

SHAP's Partition explainer compiles numba code on its first call in a process (a few seconds);
:func:`warm_up_shap` does that ahead of time, e.g. when an app starts.
"""

from __future__ import annotations

import functools
import html as _html
import re
import time
import warnings
from typing import Callable, Sequence

import numpy as np

from .base import Explanation

WORD_PATTERN = re.compile(r"\w+(?:['\u2019]\w+)*")
TEXT_METHODS = ("lime", "shap")
POSITIVE_RGB = (220, 38, 38)  # red: supports the target
NEGATIVE_RGB = (37, 99, 235)  # blue: speaks against it
MAX_ALPHA = 0.85
LIME_MASK = "UNKWORDZ"  # what LIME puts in place of a masked word (its default)

Predictor = Callable[[list], np.ndarray]


def word_spans(text: str) -> list[tuple[int, int]]:
    """Character ``(start, end)`` of each word token (``\\w+`` with inner apostrophes: "don't")."""
    return [m.span() for m in WORD_PATTERN.finditer(text)]


def _proba(predict_proba: Predictor, texts: list[str], target: int) -> np.ndarray:
    """Call the predictor and check it returned (N, n_classes) with ``target`` in range."""
    probs = np.asarray(predict_proba(list(texts)), dtype=np.float64)
    if probs.ndim != 2 or probs.shape[0] != len(texts):
        raise ValueError(
            f"Expected predict_proba to return an array of shape (n_texts, n_classes) = ({len(texts)}, k). "
            f"Received shape={probs.shape}."
        )
    if not 0 <= int(target) < probs.shape[1]:
        raise ValueError(f"Target class index {target} is out of range for a predictor with {probs.shape[1]} classes.")
    return probs


def _mask_words(text: str, spans: Sequence[tuple[int, int]], keep: np.ndarray, mask: str = "") -> str:
    """``text`` with the words whose ``keep`` is False replaced by ``mask``; all else verbatim."""
    pieces, pos = [], 0
    for (start, end), kept in zip(spans, keep):
        pieces.append(text[pos:start])
        pieces.append(text[start:end] if kept else mask)
        pos = end
    pieces.append(text[pos:])
    return "".join(pieces)


# --------------------------------------------------------------------------- LIME


def lime_text(predict_proba: Predictor, text: str, target: int, budget: int = 500, seed: int = 0) -> np.ndarray:
    """LIME weights of ``target``, one per word of ``word_spans(text)``.

    Words are features by position (``bow=False``): a masked word is replaced by LIME's
    ``UNKWORDZ``. The ``budget`` perturbed texts go to the predictor in one call.
    """
    from lime.lime_text import LimeTextExplainer

    spans = word_spans(text)
    if not spans:
        return np.zeros(0, dtype=np.float32)
    if len(spans) == 1:  # LIME's kernel degenerates with one feature: the exact effect of masking it
        probs = _proba(predict_proba, [text, _mask_words(text, spans, [False], LIME_MASK)], target)
        return np.array([probs[0, int(target)] - probs[1, int(target)]], dtype=np.float32)
    explainer = LimeTextExplainer(
        split_expression=lambda s: [s[a:b] for a, b in word_spans(s)],
        bow=False,
        mask_string=LIME_MASK,
        feature_selection="none",
        random_state=int(seed),
    )
    explanation = explainer.explain_instance(
        text,
        lambda texts: _proba(predict_proba, list(texts), target),
        labels=(int(target),),
        num_features=len(spans),
        num_samples=max(int(budget), 2),
    )
    indexed = explanation.domain_mapper.indexed_string
    by_start = {start: i for i, (start, _) in enumerate(spans)}
    weights = np.zeros(len(spans), dtype=np.float32)
    for feature, weight in explanation.local_exp[int(target)]:
        start = int(indexed.string_start[indexed.positions[feature]])
        weights[by_start[start]] = weight
    return weights


# --------------------------------------------------------------------------- SHAP


class _WordTokenizer:
    """The minimal tokenizer API shap's Text masker needs: token ids are word positions."""

    def __call__(self, s: str, return_offsets_mapping: bool = True) -> dict:
        spans = word_spans(s)
        out = {"input_ids": list(range(len(spans)))}
        if return_offsets_mapping:
            out["offset_mapping"] = spans
        return out


def align_to_spans(text: str, spans: Sequence[tuple[int, int]], tokens: Sequence[str],
                   values: Sequence[float]) -> np.ndarray:
    """Map per-token values (shap's token strings, in text order) onto word spans.

    Each token is located in ``text`` after the previous one; its value goes to the words it
    overlaps (split evenly), so sub-word pieces add up and whitespace/separator tokens or
    punctuation that covers no word are dropped. Tokens not found in the text are skipped.
    """
    weights = np.zeros(len(spans), dtype=np.float64)
    starts = np.array([s for s, _ in spans], dtype=np.int64)
    ends = np.array([e for _, e in spans], dtype=np.int64)
    cursor = 0
    for token, value in zip(tokens, values):
        key = str(token).replace("\u2581", " ").strip()
        if key.startswith("##"):
            key = key[2:]
        if not key:
            continue
        found = text.find(key, cursor)
        if found < 0:
            continue
        lo, hi = found, found + len(key)
        cursor = hi
        hit = np.nonzero((starts < hi) & (ends > lo))[0]
        if len(hit):
            weights[hit] += float(value) / len(hit)
    return weights.astype(np.float32)


def shap_text(predict_proba: Predictor, text: str, target: int, budget: int = 500, seed: int = 0) -> np.ndarray:
    """SHAP (Partition explainer over shap's Text masker) weights of ``target``, one per word.

    A masked word is removed from the text; everything else (punctuation, spacing) stays
    verbatim. ``budget`` is shap's ``max_evals``; the predictor gets up to ``budget`` texts a call.
    """
    with warnings.catch_warnings():  # shap's colour maps warn about matplotlib deprecations on import
        warnings.simplefilter("ignore")
        import shap

    spans = word_spans(text)
    if not spans:
        return np.zeros(0, dtype=np.float32)
    if len(spans) == 1:  # shap's clustering needs 2 tokens; one word's Shapley value is exact
        probs = _proba(predict_proba, [text, _mask_words(text, spans, [False])], target)
        return np.array([probs[0, int(target)] - probs[1, int(target)]], dtype=np.float32)

    def model(token_ids: np.ndarray) -> np.ndarray:
        ids = np.atleast_2d(np.asarray(token_ids))
        texts = [_mask_words(text, spans, row >= 0) for row in ids]
        return _proba(predict_proba, texts, target)[:, int(target)]

    masker = shap.maskers.Text(_WordTokenizer(), mask_token=-1, output_type="token_ids")
    explainer = shap.Explainer(model, masker, algorithm="partition", seed=int(seed))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        values = explainer([text], max_evals=max(int(budget), 2), batch_size=max(int(budget), 2), silent=True)
    return align_to_spans(text, spans, list(values.data[0]), np.asarray(values.values[0], dtype=np.float64))


def warm_up_shap() -> float:
    """Run a tiny SHAP explanation so that shap's numba code is compiled; returns the seconds taken."""
    started = time.perf_counter()
    shap_text(lambda texts: np.full((len(texts), 2), 0.5), "warm up", 1, budget=8)
    return time.perf_counter() - started


# --------------------------------------------------------------------------- rendering


def _alphas(weights: np.ndarray) -> tuple[np.ndarray, float]:
    w = np.nan_to_num(np.asarray(weights, dtype=np.float64))
    scale = float(np.max(np.abs(w))) if w.size else 0.0
    return (np.abs(w) / scale * MAX_ALPHA if scale > 0 else np.zeros_like(w)), scale


def _check(spans: Sequence, weights: np.ndarray) -> np.ndarray:
    weights = np.asarray(weights, dtype=np.float64).reshape(-1)
    if len(weights) != len(spans):
        raise ValueError(f"Expected one weight per word span. Received {len(weights)} weights for {len(spans)} spans.")
    return weights


def text_html(text: str, spans: Sequence[tuple[int, int]], weights: np.ndarray, target_label: object) -> str:
    """The text verbatim with each word on a red (supports ``target_label``) or blue (against)
    background, opacity by |weight| / max; the weight in each word's tooltip. Inline styles only."""
    weights = _check(spans, weights)
    alphas, scale = _alphas(weights)
    esc = _html.escape
    parts, pos = [], 0
    for (start, end), weight, alpha in zip(spans, weights, alphas):
        parts.append(esc(text[pos:start]))
        rgb = POSITIVE_RGB if weight > 0 else NEGATIVE_RGB
        style = f"background-color: rgba({rgb[0]}, {rgb[1]}, {rgb[2]}, {alpha:.3f}); border-radius: 3px; padding: 0 1px"
        parts.append(f'<span style="{style}" title="weight {weight:+.4f}">{esc(text[start:end])}</span>')
        pos = end
    parts.append(esc(text[pos:]))
    label = esc(str(target_label))

    def swatch(rgb: tuple) -> str:
        return (f'<span style="display: inline-block; width: 0.9em; height: 0.9em; vertical-align: middle; '
                f'border-radius: 2px; background-color: rgba({rgb[0]}, {rgb[1]}, {rgb[2]}, {MAX_ALPHA})"></span>')

    legend = (
        f'<div style="font-size: 0.85em; color: #555; margin-top: 0.6em">{swatch(POSITIVE_RGB)} supports '
        f"<b>{label}</b> &nbsp; {swatch(NEGATIVE_RGB)} speaks against <b>{label}</b> &nbsp; "
        f"stronger colour = larger weight (max |weight| {scale:.3g}; hover a word for its weight)</div>"
    )
    body = (
        '<div style="white-space: pre-wrap; line-height: 1.9; font-size: 1.05em; color: #111; '
        f'font-family: system-ui, sans-serif">{"".join(parts)}</div>'
    )
    return f'<div class="toolkit-text-explanation">{body}{legend}</div>'


def _wrap(text: str, width: int) -> list[tuple[int, int]]:
    """Character ranges of display lines: wrap at spaces to ``width``, break at newlines."""
    lines, offset = [], 0
    for paragraph in text.split("\n"):
        start, end = offset, offset + len(paragraph)
        if start == end:
            lines.append((start, end))
        while start < end:
            if end - start <= width:
                lines.append((start, end))
                break
            cut = text.rfind(" ", start, start + width + 1)
            if cut <= start:
                lines.append((start, start + width))
                start += width
            else:
                lines.append((start, cut))
                start = cut + 1
        offset = end + 1
    return lines


@functools.lru_cache(maxsize=8)
def _char_width(font_pt: int, dpi: int) -> float:
    """Advance width in pixels of one character of the monospace font, as Agg draws it."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(20, 1), dpi=dpi)
    FigureCanvasAgg(fig)
    sample = fig.text(0, 0.5, "M" * 100, family="DejaVu Sans Mono", fontsize=font_pt, parse_math=False)
    return sample.get_window_extent(renderer=fig.canvas.get_renderer()).width / 100


def text_image(text: str, spans: Sequence[tuple[int, int]], weights: np.ndarray, width: int = 64,
               max_lines: int = 30) -> np.ndarray:
    """A uint8 RGB picture of the text, wrapped to ``width`` characters, words highlighted as in
    :func:`text_html`; texts over ``max_lines`` lines are cut with an ellipsis."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    weights = _check(spans, weights)
    alphas, _ = _alphas(weights)
    lines = _wrap(text, width)
    cut = len(lines) > max_lines
    lines = lines[:max_lines]
    dpi, font_pt = 100, 13
    char_w = _char_width(font_pt, dpi)
    line_h, margin = 1.75 * font_pt * dpi / 72, 12
    n_rows = len(lines) + (1 if cut else 0) + 1  # + the legend line
    w_px = int(2 * margin + char_w * max([width] + [e - s for s, e in lines]))
    h_px = int(2 * margin + line_h * n_rows)
    fig = Figure(figsize=(w_px / dpi, h_px / dpi), dpi=dpi, facecolor="white")
    FigureCanvasAgg(fig)
    ax = fig.add_axes([0, 0, 1, 1])
    ax.set_xlim(0, w_px)
    ax.set_ylim(h_px, 0)
    ax.axis("off")
    display = "".join(c if c.isprintable() else " " for c in text)
    for row, (ls, le) in enumerate(lines):
        top = margin + row * line_h
        for (start, end), weight, alpha in zip(spans, weights, alphas):
            lo, hi = max(start, ls), min(end, le)
            if lo >= hi or alpha <= 0:
                continue
            rgb = np.array(POSITIVE_RGB if weight > 0 else NEGATIVE_RGB) / 255.0
            ax.add_patch(Rectangle((margin + (lo - ls) * char_w, top + 0.08 * line_h), (hi - lo) * char_w,
                                   0.84 * line_h, facecolor=(*rgb, float(alpha)), edgecolor="none"))
        ax.text(margin, top + line_h / 2, display[ls:le], family="DejaVu Sans Mono", fontsize=font_pt,
                va="center", ha="left", color="#111111", parse_math=False)
    row = len(lines)
    if cut:
        ax.text(margin, margin + (row + 0.5) * line_h, "\u2026", family="DejaVu Sans Mono", fontsize=font_pt,
                va="center", parse_math=False)
        row += 1
    ax.text(margin, margin + (row + 0.5) * line_h, "red: supports the class   blue: against it",
            fontsize=font_pt - 3, va="center", color="#555555", parse_math=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # glyphs missing from the font are drawn as boxes
        fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()


# --------------------------------------------------------------------------- one call


def explain_text(predict_proba: Predictor, text: str, target: int, method: str = "lime", budget: int = 500,
                 seed: int = 0, target_label: object = None) -> Explanation:
    """Explain one text: weights per word (``attributions``), an image and HTML."""
    from ..data.text import prepare_texts

    if method not in TEXT_METHODS:
        raise ValueError(f"Unknown explanation method {method!r} for texts. Expected one of {list(TEXT_METHODS)}.")
    text = prepare_texts(text)[0]
    spans = word_spans(text)
    started = time.perf_counter()
    weights = (lime_text if method == "lime" else shap_text)(predict_proba, text, int(target), budget, seed)
    seconds = time.perf_counter() - started
    label = target if target_label is None else target_label
    return Explanation(
        attributions=np.asarray(weights, dtype=np.float32),
        method=method,
        target=label,
        seconds=seconds,
        image=text_image(text, spans, weights),
        budget=int(budget),
        extra={"words": [text[a:b] for a, b in spans], "spans": [[a, b] for a, b in spans]},
        html=text_html(text, spans, weights, label),
    )


__all__ = [
    "TEXT_METHODS",
    "align_to_spans",
    "explain_text",
    "lime_text",
    "shap_text",
    "text_html",
    "text_image",
    "warm_up_shap",
    "word_spans",
]
