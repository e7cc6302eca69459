"""Date translation without Keras or TensorFlow: the character encoding of texts (the same in
Keras, in the TFLite runner and on a phone; see :mod:`toolkit.nlp.dates`), the vocabulary files,
the scores, the attention heatmap and :class:`TFLiteDateTranslator`, the ``.tflite`` runner."""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..data.dates import normalize_text
from ..edge.runner import LiteRTSession, median_ms
from ..errors import DataError, ModelFormatError
from ..storage import atomic_write_text

PAD_ID, OOV_ID = 0, 1
PAD_TOKEN, OOV_TOKEN, SPACE_TOKEN = "<pad>", "<oov>", "<space>"
START_ID, END_ID = 0, 1
START_TOKEN, END_TOKEN = "<start>", "<end>"
VOCAB_FILE = "vocab.txt"
OUTPUT_VOCAB_FILE = "output_vocab.txt"


def check_texts(texts: Any, what: str = "texts") -> tuple[list[str], bool]:
    """One string or a sequence of strings -> (list of strings, was it one string).

    Raises :class:`DataError` for non-strings and for empty or whitespace-only strings.
    """
    single = isinstance(texts, str)
    if single:
        items = [texts]
    elif isinstance(texts, np.ndarray) and texts.ndim <= 1:
        items = texts.reshape(-1).tolist()
    elif isinstance(texts, (list, tuple)):
        items = list(texts)
    else:
        raise DataError(
            f"Expected a date as a string or a list of strings for {what}. Received {type(texts).__name__}"
            + (" (decode bytes to str first)." if isinstance(texts, (bytes, bytearray)) else ".")
        )
    if not items:
        raise DataError(f"Expected at least one date in {what}. Received an empty list.")
    for i, item in enumerate(items):
        where = "" if single else f" at index {i}"
        if not isinstance(item, str):
            raise DataError(
                f"Expected every date in {what} to be a str. Received {type(item).__name__}{where}: {item!r:.60}."
            )
        if not item.strip():
            raise DataError(
                f"Expected a non-empty date in {what}. Received an empty or whitespace-only string{where}. "
                "Pass text such as '22 Nov 2026'."
            )
    return items, single


def encode_texts(texts: Sequence[str], vocab: Sequence[str], max_length: int) -> tuple[np.ndarray, int]:
    """Normalised, truncated, id-mapped and right-padded texts: int32 (N, max_length), and how many
    texts were truncated. ``vocab`` is the id -> token list (``vocab.txt``); pure Python/numpy."""
    index = {token: i for i, token in enumerate(vocab) if i > OOV_ID}
    out = np.zeros((len(texts), max_length), dtype=np.int32)
    truncated = 0
    for row, text in enumerate(texts):
        chars = normalize_text(text)
        if len(chars) > max_length:
            truncated += 1
            chars = chars[:max_length]
        out[row, : len(chars)] = [index.get(c, OOV_ID) for c in chars]
    return out, truncated


def decode_ids(ids: np.ndarray, vocab: Sequence[str]) -> list[str]:
    """Output ids (N, T) -> strings: characters up to the first ``<end>``; ``<start>`` is skipped."""
    out = []
    for row in np.asarray(ids):
        chars = []
        for i in row.tolist():
            if i == END_ID:
                break
            if 0 <= i < len(vocab) and i != START_ID:
                chars.append(vocab[i])
        out.append("".join(chars))
    return out


def _vocab_line(token: str) -> str:
    return SPACE_TOKEN if token == " " else token


def _vocab_from_line(line: str) -> str:
    return " " if line == SPACE_TOKEN else line


def write_vocab(path: str | os.PathLike, vocab: Sequence[str]) -> Path:
    """One token a line, line i = id i; the space character is written as ``<space>``."""
    return atomic_write_text(path, "".join(_vocab_line(t) + "\n" for t in vocab))


def read_vocab(path: str | os.PathLike) -> list[str]:
    path = Path(path)
    if not path.is_file():
        raise ModelFormatError(f"Vocabulary file not found: {str(path)!r}. Export the model again to write it.")
    lines = path.read_text(encoding="utf-8").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [_vocab_from_line(line) for line in lines]


def warn_truncated(count: int, max_length: int) -> None:
    if count:
        warnings.warn(
            f"{count} input(s) longer than max_input_length={max_length} characters (after normalising "
            f"whitespace) were truncated to their first {max_length} characters.",
            stacklevel=3,
        )


def score_translations(predictions: Sequence[str], targets: Sequence[str]) -> dict:
    exact = sum(p == t for p, t in zip(predictions, targets))
    right = total = 0
    for p, t in zip(predictions, targets):
        length = max(len(p), len(t))
        total += length
        right += sum(a == b for a, b in zip(p, t))
    n = len(targets)
    return {
        "exact_match": float(exact / n) if n else 0.0,
        "char_accuracy": float(right / total) if total else 0.0,
        "n": int(n),
    }


def render_attention(matrix: np.ndarray, input_tokens: Sequence[str], output_tokens: Sequence[str],
                     title: str | None = None) -> np.ndarray:
    """The attention matrix as a heatmap (input characters on x, output characters on y), uint8 RGB."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    matrix = np.asarray(matrix, dtype=np.float32)
    rows, cols = matrix.shape if matrix.ndim == 2 and matrix.size else (1, 1)
    if not matrix.size:
        matrix = np.zeros((1, 1), np.float32)
    fig = Figure(figsize=(max(4.0, 0.3 * cols + 1.5), max(3.0, 0.3 * rows + 1.2)), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    image = ax.imshow(matrix, cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto", interpolation="nearest")
    ax.set_xticks(range(len(input_tokens)))
    ax.set_xticklabels(["\u2423" if t == " " else t for t in input_tokens], fontsize=8)
    ax.set_yticks(range(len(output_tokens)))
    ax.set_yticklabels(list(output_tokens), fontsize=8)
    ax.set_xlabel("input characters")
    ax.set_ylabel("output characters")
    if title:
        ax.set_title(title, fontsize=9)
    fig.colorbar(image, ax=ax, fraction=0.04, pad=0.02)
    fig.tight_layout()
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()


def attention_tokens(text, ids, out, att, input_vocab, output_vocab, max_length):
    chars = list(normalize_text(text)[:max_length])
    n_in = int(np.count_nonzero(ids))
    outputs = decode_ids(out[None], output_vocab)[0]
    # One row per written character; an empty translation keeps the row that chose <end>.
    tokens = list(outputs) or [END_TOKEN]
    matrix = np.asarray(att[: len(tokens), :n_in], dtype=np.float32)
    return chars[:n_in], tokens, matrix


class TFLiteDateTranslator:
    """A date-translator ``.tflite`` file run by LiteRT, with no Keras or TensorFlow.

    Reads ``vocab.txt`` and ``output_vocab.txt`` beside the file and encodes text in pure
    Python/numpy exactly like :class:`DateTranslator` (see the module docstring), so it is
    what an app on a phone does.
    """

    def __init__(self, path: str | os.PathLike, num_threads: int | None = None, card: dict | None = None):
        self.session = LiteRTSession(path, num_threads, "Export it with DateTranslator.export.")
        self.path = self.session.path
        self.card = card or {}
        self.input_vocab = read_vocab(self.path.parent / VOCAB_FILE)
        self.output_vocab = read_vocab(self.path.parent / OUTPUT_VOCAB_FILE)
        kinds = [np.dtype(o["dtype"]).kind for o in self.session.outputs]
        self._ids = next((i for i, kind in enumerate(kinds) if kind in "iu"), None)
        self._attention = next((i for i, kind in enumerate(kinds) if kind == "f"), None)
        if self._ids is None or len(self.session.input()["shape"]) != 2:
            raise ModelFormatError(f"{self.path} is not a date-translator TFLite file (no int output ids).")
        self.max_input_length = self.session.input_shape()[0]

    @property
    def interpreter(self):
        return self.session.interpreter

    @property
    def ops(self) -> list[str]:
        """The operators in the file (builtin TFLite ops unless exported with allow_flex)."""
        return self.session.ops

    def _invoke(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        outputs = self.session.run_all(ids[None])
        return outputs[self._ids][0], outputs[self._attention][0] if self._attention is not None else None

    def translate(self, texts: Any) -> list[str]:
        """One string or a list of strings -> a list of ISO dates (best guesses)."""
        items, _ = check_texts(texts)
        ids, truncated = encode_texts(items, self.input_vocab, self.max_input_length)
        warn_truncated(truncated, self.max_input_length)
        return decode_ids(np.stack([self._invoke(row)[0] for row in ids]), self.output_vocab)

    def predict(self, texts: Any) -> np.ndarray:
        return np.asarray(self.translate(texts), dtype=object)

    def attention(self, text: str) -> tuple[list[str], list[str], np.ndarray]:
        """Like :meth:`DateTranslator.attention`, from the file's attention output."""
        items, single = check_texts(text, "text")
        if not single and len(items) != 1:
            raise DataError(f"attention() takes one text. Received {len(items)}.")
        ids, _ = encode_texts(items, self.input_vocab, self.max_input_length)
        out, att = self._invoke(ids[0])
        if att is None:
            raise ModelFormatError(f"{self.path} has no attention output.")
        return attention_tokens(items[0], ids[0], out, att, self.input_vocab, self.output_vocab,
                                 self.max_input_length)

    def latency_ms(self, text: str, runs: int = 50, warmup: int = 5) -> float:
        """Median wall time of one sentence (encode, invoke, decode), in ms."""
        return median_ms(lambda: self.translate(text), runs, warmup)
