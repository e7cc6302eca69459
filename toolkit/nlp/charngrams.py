"""Word and character n-gram ids in one sequence, for the ``nbchar`` and ``nblr`` encoders: NBSVM
(Wang & Manning, 2012) over the features of the TF-IDF peer (:mod:`toolkit.nlp.baselines`): word
1-2-grams and character 2-5-grams.

The model takes raw strings. Two TextVectorization layers turn a text into ids:

- ``vectorizer``: ``lower_and_strip_punctuation``, whitespace split, word 1-2-grams (words, then
  bigrams), ``sequence_length`` ids, vocabulary ids 0 (padding) .. ``Vw - 1``;
- ``char_vectorizer``: word-bounded character 2-5-grams like scikit-learn's ``char_wb`` analyzer
  (:func:`char_wb_tokens`): the text is lowercased (ASCII, punctuation kept), split on whitespace,
  each word padded with one space on both sides, and the 2-, 3-, 4- and 5-grams taken inside each
  padded word (a word's 2-grams, then its 3-grams, ...; word after word),
  ``CHAR_FACTOR * sequence_length`` ids; its ids are shifted by ``Vw`` (padding stays 0).
  Models saved before this analyzer (``split="character"``: n-grams across words, punctuation
  stripped, characters joined by a space, :func:`char_tokens`) load and tokenize as before.

The two are concatenated: ``(1 + CHAR_FACTOR) * sequence_length`` int32 ids, which is what the
TFLite file takes. ``vocab.txt`` holds the word vocabulary (``Vw`` lines) then the character one
(its own ``[PAD]`` and ``[UNK]`` lines first): line i is id i. :class:`NgramTokenizer` makes the
ids in pure Python, as a phone does (the card's ``char_analyzer`` says which analyzer).
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
from .tokenizer import OOV, PAD, VOCAB_FILE, WordTokenizer, lower, split, standardize
from .tokenizer import lite_tokenizer as _word_or_piece_tokenizer

CHAR_NGRAMS = (2, 3, 4, 5)
WORD_NGRAMS = 2
# The character analyzers: "char_wb" (word-bounded, punctuation kept; new models) and "char" (across
# words, punctuation stripped; models saved before char_wb).
CHAR_WB, CHAR_ACROSS = "char_wb", "char"
_SPLIT: dict = {}


def uses_chars(encoder: str) -> bool:
    return encoder in CHAR_ENCODERS


def char_tokens(text: str) -> list[str]:
    """The character n-grams TextVectorization(split="character", ngrams=CHAR_NGRAMS) makes."""
    chars = list(standardize(text))
    return [" ".join(chars[i:i + n]) for n in CHAR_NGRAMS for i in range(len(chars) - n + 1)]


def char_wb_tokens(text: str) -> list[str]:
    """scikit-learn's ``char_wb`` 2-5-grams of the ASCII-lowercased text, in the model's order."""
    grams: list[str] = []
    for word in split(lower(text)):
        padded = f" {word} "
        grams += [padded[i:i + n] for n in CHAR_NGRAMS for i in range(len(padded) - n + 1)]
    return grams


def char_wb_split():
    """The char vectorizer's split (:func:`char_wb_tokens` in TensorFlow ops), registered with Keras so
    that model.keras loads; defined on first use (importing this module stays light)."""
    if "fn" not in _SPLIT:
        import keras
        import tensorflow as tf

        @keras.saving.register_keras_serializable(package="toolkit", name="char_wb_ngrams")
        def char_wb_ngrams(texts):
            words = tf.strings.split(texts)  # ASCII whitespace, as tokenizer.split
            padded = tf.strings.unicode_split(tf.strings.join([" ", words.flat_values, " "]), "UTF-8")
            grams = tf.strings.ngrams(padded, ngram_width=CHAR_NGRAMS, separator="")  # per word: 2-grams, 3-grams..
            return words.with_flat_values(grams).merge_dims(1, 2)

        _SPLIT["fn"] = char_wb_ngrams
    return _SPLIT["fn"]


def char_analyzer(model) -> str:
    """The analyzer of a model's char vectorizer: :data:`CHAR_WB` or (older models) :data:`CHAR_ACROSS`."""
    return CHAR_ACROSS if model.get_layer("char_vectorizer").get_config()["split"] == "character" else CHAR_WB


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
    chars = keras.layers.TextVectorization(max_tokens=cfg.max_tokens, standardize="lower", split=char_wb_split(),
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

    def __init__(self, words: Iterable[str], chars: Iterable[str], sequence_length: int, analyzer: str = CHAR_WB):
        if analyzer not in (CHAR_WB, CHAR_ACROSS):
            raise ValueError(f"char analyzer must be {CHAR_WB!r} or {CHAR_ACROSS!r}. Received {analyzer!r}.")
        self.analyzer = analyzer
        self._char_tokens = char_wb_tokens if analyzer == CHAR_WB else char_tokens
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
                   model.get_layer("char_vectorizer").get_vocabulary(), sequence_length, char_analyzer(model))

    @classmethod
    def from_file(cls, path: str | os.PathLike, sequence_length: int, word_vocab_size: int,
                  analyzer: str = CHAR_WB) -> "NgramTokenizer":
        lines = Path(path).read_text(encoding="utf-8").split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        return cls(lines[:word_vocab_size], lines[word_vocab_size:], sequence_length, analyzer)

    @staticmethod
    def card_fields(model, sequence_length: int) -> dict:
        """What the card's ``encoder`` entry says so that a phone (and :func:`lite_tokenizer`) makes the ids."""
        analyzer = char_analyzer(model)
        chars = ("word-bounded character 2-5-grams (lowercase, punctuation kept, each whitespace-split word padded "
                 "with a space on both sides, n-grams inside it: scikit-learn's char_wb)" if analyzer == CHAR_WB
                 else "character 2-5-grams across words (lower_and_strip_punctuation, characters joined by a space)")
        return {"char_ngrams": list(CHAR_NGRAMS), "char_analyzer": analyzer,
                "word_vocab_size": int(model.get_layer("vectorizer").vocabulary_size()),
                "word_sequence_length": int(sequence_length),
                "tokenizer": "two TextVectorization layers inside the model: word 1-2-grams "
                             f"(lower_and_strip_punctuation, {sequence_length} ids), then {chars} "
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
            ids = [self._char_ids.get(token, oov) for token in self._char_tokens(text)][:length]
            chars[row, : len(ids)] = ids
        return np.concatenate([self.words.encode(texts), chars], axis=1)

    def __len__(self) -> int:
        return len(self.words) + len(self.chars)


@functools.lru_cache(maxsize=8)
def _ngram_tokenizer_cached(path: str, word_length: int, word_vocab_size: int, analyzer: str) -> NgramTokenizer:
    return NgramTokenizer.from_file(path, word_length, word_vocab_size, analyzer)


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
    # Cards written before char_wb name no analyzer: theirs ran across words.
    return _ngram_tokenizer_cached(str(vocab), int(encoder["word_sequence_length"]), int(encoder["word_vocab_size"]),
                                   str(encoder.get("char_analyzer", CHAR_ACROSS)))
