"""Word and character n-gram ids in one sequence, for the ``nbchar`` encoder: NBSVM (Wang &
Manning, 2012) over the features of the TF-IDF peer (:mod:`toolkit.nlp.baselines`): word 1-2-grams
and character 2-5-grams.

The model takes raw strings. Two TextVectorization layers turn a text into ids:

- ``vectorizer``: ``lower_and_strip_punctuation``, whitespace split, word 1-2-grams (words, then
  bigrams), ``sequence_length`` ids, vocabulary ids 0 (padding) .. ``Vw - 1``;
- ``char_vectorizer``: the same standardization, one token per character (spaces included), the
  character 2-, 3-, 4- and 5-grams (their characters joined by one space, all 2-grams first),
  ``CHAR_FACTOR * sequence_length`` ids; its ids are shifted by ``Vw`` (padding stays 0).

The two are concatenated: ``(1 + CHAR_FACTOR) * sequence_length`` int32 ids, which is what the
TFLite file takes. ``vocab.txt`` holds the word vocabulary (``Vw`` lines) then the character one
(its own ``[PAD]`` and ``[UNK]`` lines first): line i is id i. :class:`NgramTokenizer` makes the
ids in pure Python, as a phone does.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Iterable

import numpy as np

from ..errors import DataError
from ..storage import atomic_write_text
from .encoders import CHAR_ENCODERS, CHAR_FACTOR, NGRAMS, ids_length  # noqa: F401  (importable from here)
from .tokenizer import OOV, PAD, VOCAB_FILE, WordTokenizer, standardize
from .tokenizer import lite_tokenizer as _word_or_piece_tokenizer

CHAR_NGRAMS = (2, 3, 4, 5)
WORD_NGRAMS = 2


def uses_chars(encoder: str) -> bool:
    return encoder in CHAR_ENCODERS


def char_tokens(text: str) -> list[str]:
    """The character n-grams TextVectorization(split="character", ngrams=CHAR_NGRAMS) makes."""
    chars = list(standardize(text))
    return [" ".join(chars[i:i + n]) for n in CHAR_NGRAMS for i in range(len(chars) - n + 1)]


def build_ids(cfg, texts: list[str]):
    """(string input, int32 ids tensor, total vocabulary size) of a from-scratch encoder, its
    vectorizers adapted on ``texts``: the words (and, for :data:`CHAR_ENCODERS`, the character
    n-grams; tokens holding a newline are dropped from their vocabulary: vocab.txt is one token a
    line)."""
    import keras
    import tensorflow as tf

    chars_too = uses_chars(cfg.encoder)
    words = keras.layers.TextVectorization(max_tokens=cfg.max_tokens, output_sequence_length=cfg.sequence_length,
                                           ngrams=NGRAMS.get(cfg.encoder), name="vectorizer")  # None: words only
    words.adapt(tf.data.Dataset.from_tensor_slices(texts).batch(256))
    inputs = keras.Input((), dtype="string", name="text")
    if not chars_too:
        ids = keras.layers.Identity(name="ids")(words(inputs))
        return inputs, keras.ops.cast(ids, "int32"), words.vocabulary_size()
    chars = keras.layers.TextVectorization(max_tokens=cfg.max_tokens, split="character", ngrams=CHAR_NGRAMS,
                                           output_sequence_length=CHAR_FACTOR * cfg.sequence_length,
                                           name="char_vectorizer")
    chars.adapt(tf.data.Dataset.from_tensor_slices(texts).batch(256))
    vocabulary = [token for token in chars.get_vocabulary()[2:] if "\n" not in token]
    if len(vocabulary) < chars.vocabulary_size() - 2:
        chars.set_vocabulary(vocabulary)
    word_ids = keras.ops.cast(words(inputs), "int32")
    char_ids = keras.ops.cast(chars(inputs), "int32")
    offset = words.vocabulary_size()
    char_ids = keras.ops.where(keras.ops.greater(char_ids, 0), char_ids + offset, char_ids)
    ids = keras.layers.Identity(name="ids")(keras.ops.concatenate([word_ids, char_ids], axis=1))
    return inputs, ids, offset + chars.vocabulary_size()


def vocabulary_size(model) -> int:
    """Ids a from-scratch string model's core takes: the word vocabulary (+ the character one)."""
    names = [layer.name for layer in model.layers]
    size = model.get_layer("vectorizer").vocabulary_size()
    return size + (model.get_layer("char_vectorizer").vocabulary_size() if "char_vectorizer" in names else 0)


class NgramTokenizer:
    """Text -> int32 ids identical to the ``nbchar`` model's two vectorizers (see the module)."""

    def __init__(self, words: Iterable[str], chars: Iterable[str], sequence_length: int):
        self.words = WordTokenizer(words, sequence_length, ngrams=WORD_NGRAMS)
        chars = list(chars)
        if chars[:1] == [""]:
            chars[0] = PAD
        if chars[:2] != [PAD, OOV]:
            raise ValueError(f"A vocabulary starts with {PAD!r} and {OOV!r}. Received {chars[:2]}.")
        self.chars = chars
        self.sequence_length = int(sequence_length)
        self._char_ids = {token: i + len(self.words) for i, token in enumerate(chars) if i >= 2}

    @classmethod
    def from_model(cls, model, sequence_length: int) -> "NgramTokenizer":
        return cls(model.get_layer("vectorizer").get_vocabulary(),
                   model.get_layer("char_vectorizer").get_vocabulary(), sequence_length)

    @classmethod
    def from_file(cls, path: str | os.PathLike, sequence_length: int, word_vocab_size: int) -> "NgramTokenizer":
        lines = Path(path).read_text(encoding="utf-8").split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        return cls(lines[:word_vocab_size], lines[word_vocab_size:], sequence_length)

    @staticmethod
    def card_fields(model, sequence_length: int) -> dict:
        """What the card's ``encoder`` entry says so that a phone (and :func:`lite_tokenizer`) makes the ids."""
        return {"char_ngrams": list(CHAR_NGRAMS),
                "word_vocab_size": int(model.get_layer("vectorizer").vocabulary_size()),
                "word_sequence_length": int(sequence_length),
                "tokenizer": "two TextVectorization layers inside the model (lower_and_strip_punctuation): word "
                             f"1-2-grams ({sequence_length} ids), then character 2-5-grams "
                             f"({CHAR_FACTOR * sequence_length} ids, shifted by word_vocab_size; vocab.txt: the word "
                             "vocabulary, then the character one)"}

    @property
    def vocabulary(self) -> list[str]:
        return self.words.vocabulary + self.chars

    def save(self, path: str | os.PathLike) -> Path:
        return atomic_write_text(Path(path), "".join(f"{token}\n" for token in self.vocabulary))

    def tokens(self, text: str) -> list[str]:
        """The words and word bigrams of ``text`` (what the explanations and the demo show)."""
        return self.words.tokens(text)

    def encode(self, texts: str | Iterable[str]) -> np.ndarray:
        """Ids, shape (N, (1 + CHAR_FACTOR) * sequence_length), int32: words then characters."""
        texts = [texts] if isinstance(texts, str) else list(texts)
        length = CHAR_FACTOR * self.sequence_length
        chars = np.zeros((len(texts), length), dtype=np.int32)
        oov = len(self.words) + 1
        for row, text in enumerate(texts):
            ids = [self._char_ids.get(token, oov) for token in char_tokens(text)][:length]
            chars[row, : len(ids)] = ids
        return np.concatenate([self.words.encode(texts), chars], axis=1)

    def __len__(self) -> int:
        return len(self.words) + len(self.chars)


@functools.lru_cache(maxsize=8)
def _ngram_tokenizer_cached(path: str, word_length: int, word_vocab_size: int) -> NgramTokenizer:
    return NgramTokenizer.from_file(path, word_length, word_vocab_size)


def lite_tokenizer(card: dict, directory: str):
    """The tokenizer a text classifier's TFLite file takes ids from: :class:`NgramTokenizer` for the
    character n-gram encoders (the card's ``encoder`` names ``char_ngrams``), else
    :func:`toolkit.nlp.tokenizer.lite_tokenizer` (words or word pieces)."""
    encoder = card.get("encoder") or {}
    if not encoder.get("char_ngrams"):
        return _word_or_piece_tokenizer(card, directory)
    vocab = Path(directory) / VOCAB_FILE
    if not vocab.is_file():
        raise DataError(f"{vocab} is missing: the TFLite file takes token ids made with it. Re-export the model.")
    return _ngram_tokenizer_cached(str(vocab), int(encoder["word_sequence_length"]), int(encoder["word_vocab_size"]))
