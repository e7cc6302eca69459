"""A pure-Python tokenizer that reproduces keras.layers.TextVectorization exactly.

Phones and the TFLite files take token ids, not strings; this is how an app (or the
:class:`~toolkit.edge.TFLiteModel` runner) turns text into those ids without TensorFlow.
It mirrors TextVectorization with ``standardize="lower_and_strip_punctuation"``,
``split="whitespace"``, ``output_mode="int"`` and ``output_sequence_length``:

1. lower-case ASCII letters only (``tf.strings.lower`` leaves other letters alone);
2. delete ASCII punctuation ``!"#$%&()*+,-./:;<=>?@[\\]^_`{|}~'``;
3. split on runs of the six ASCII whitespace characters (space, \\t, \\n, \\v, \\f, \\r);
4. with ``ngrams=2`` (the ``fasttext`` encoder), append the word bigrams joined by one space
   (``tf.strings.ngrams`` order: all words, then all bigrams);
5. look each token up: id 0 is padding, id 1 is out-of-vocabulary, id i is line i of vocab.txt;
6. cut to the first ``sequence_length`` ids, or pad with 0 at the end.

``vocab.txt`` holds one token per line (split on ``\\n`` only: tokens may contain other line
separators such as U+2028); line 0 is ``[PAD]`` and line 1 ``[UNK]``.
"""

from __future__ import annotations

import functools
import os
import re
import string
from pathlib import Path
from typing import Iterable

import numpy as np

from ..errors import DataError
from ..storage import atomic_write_text
from .pretrained import load_pretrained

PAD, OOV = "[PAD]", "[UNK]"
VOCAB_FILE = "vocab.txt"
_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)
_PUNCTUATION = re.compile(r'[!"#$%&()\*\+,\-\./:;<=>?@\[\\\]^_`{|}~\']')
_WHITESPACE = re.compile(r"[ \t\n\v\f\r]+")


def lower(text: str) -> str:
    """ASCII lowercase, as tf.strings.lower (TextVectorization's "lower")."""
    return text.translate(_ASCII_LOWER)


def standardize(text: str) -> str:
    return _PUNCTUATION.sub("", text.translate(_ASCII_LOWER))


def split(text: str) -> list[str]:
    return [token for token in _WHITESPACE.split(text) if token]


class WordTokenizer:
    """Text -> int32 token ids, identical to the model's TextVectorization layer."""

    def __init__(self, vocabulary: Iterable[str], sequence_length: int, ngrams: int = 1):
        vocabulary = list(vocabulary)
        if vocabulary[:1] == [""]:
            vocabulary[0] = PAD  # TextVectorization.get_vocabulary() names padding ""
        if vocabulary[:2] != [PAD, OOV]:
            raise ValueError(f"A vocabulary starts with {PAD!r} and {OOV!r}. Received {vocabulary[:2]}.")
        self.vocabulary = vocabulary
        self.sequence_length = int(sequence_length)
        self.ngrams = int(ngrams)
        self._ids = {token: i for i, token in enumerate(vocabulary) if i >= 2}

    @classmethod
    def from_file(cls, path: str | os.PathLike, sequence_length: int, ngrams: int = 1) -> "WordTokenizer":
        lines = Path(path).read_text(encoding="utf-8").split("\n")
        if lines and lines[-1] == "":
            lines.pop()  # the file ends with a newline
        return cls(lines, sequence_length, ngrams)

    def save(self, path: str | os.PathLike) -> Path:
        return atomic_write_text(Path(path), "".join(f"{token}\n" for token in self.vocabulary))

    def tokens(self, text: str) -> list[str]:
        """The words of ``text``, then (``ngrams`` > 1) its word n-grams of each width up to ``ngrams``."""
        words = split(standardize(text))
        return words + [" ".join(words[i:i + n]) for n in range(2, self.ngrams + 1) for i in range(len(words) - n + 1)]

    def encode(self, texts: str | Iterable[str]) -> np.ndarray:
        """Token ids, shape (N, sequence_length), int32."""
        texts = [texts] if isinstance(texts, str) else list(texts)
        out = np.zeros((len(texts), self.sequence_length), dtype=np.int32)
        for row, text in enumerate(texts):
            ids = [self._ids.get(token, 1) for token in self.tokens(text)][: self.sequence_length]
            out[row, : len(ids)] = ids
        return out

    def __len__(self) -> int:
        return len(self.vocabulary)


@functools.lru_cache(maxsize=8)
def _lite_tokenizer_cached(kind: str, source: str, sequence_length: int, ngrams: int = 1):
    if kind == "words":
        return WordTokenizer.from_file(source, sequence_length, ngrams)
    return PieceTokenizer(source, sequence_length)


def lite_tokenizer(card: dict, directory: str):
    """The tokenizer a text classifier's TFLite file takes ids from: its ``vocab.txt`` (scratch
    encoders) or the pretrained encoder's word pieces."""
    encoder = card.get("encoder") or {}
    length = int(card["input"]["sequence_length"])
    if not encoder.get("pretrained"):
        vocab = Path(directory) / VOCAB_FILE
        if not vocab.is_file():
            raise DataError(f"{vocab} is missing: the TFLite file takes token ids made with it. Re-export the model.")
        return _lite_tokenizer_cached("words", str(vocab), length, int(encoder.get("ngrams", 1)))
    return _lite_tokenizer_cached("pieces", encoder["name"], length)


class PieceTokenizer:
    """Word-piece token ids for the TFLite file of a pretrained encoder (padding mask made in-model)."""

    def __init__(self, encoder: str, sequence_length: int):
        _, self.preprocessor = load_pretrained(encoder, sequence_length)

    def encode(self, texts: list[str]) -> np.ndarray:
        import tensorflow as tf

        return self.preprocessor(tf.constant(list(texts)))["token_ids"].numpy().astype(np.int32)
