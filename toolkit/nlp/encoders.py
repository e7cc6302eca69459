"""The from-scratch text encoders: token ids (N, L) -> class probabilities, the part that runs on
phones. Looked up by name in :data:`BUILDERS`; :data:`NGRAMS` says which word n-grams the
model's TextVectorization (and so ``vocab.txt`` and :class:`~toolkit.nlp.tokenizer.WordTokenizer`)
turns a text into.

- ``fasttext``: fastText-style bag of word and word-bigram embeddings, averaged over the real
  tokens (Joulin et al., 2016); a text's ids are its words, then its bigrams.
- ``bigru``: embedding + bidirectional GRU (unrolled in the exported copy: builtin TFLite ops).
- ``cnn``: embedding + 1-D convolution + max pooling.
- ``transformer``: KerasHub token-and-position embedding + one transformer encoder block.
"""

from __future__ import annotations

from typing import Any, Callable

# Word n-gram widths per encoder (1: words only); ids come in TextVectorization's order.
NGRAMS = {"fasttext": 2}


def ngrams_of(encoder: str) -> int:
    return NGRAMS.get(encoder, 1)


def _fasttext(ids, vocab_size: int, cfg: Any, unroll: bool):
    import keras

    x = keras.layers.Embedding(vocab_size, cfg.embedding_dim, mask_zero=True, name="embedding")(ids)
    return keras.layers.GlobalAveragePooling1D(name="pool")(x)


def _bigru(ids, vocab_size: int, cfg: Any, unroll: bool):
    import keras

    # Phones' builtin TFLite ops have no TensorList: the exported copy unrolls the GRU.
    x = keras.layers.Embedding(vocab_size, cfg.embedding_dim, mask_zero=True, name="embedding")(ids)
    return keras.layers.Bidirectional(keras.layers.GRU(cfg.units, unroll=unroll), name="bigru")(x)


def _cnn(ids, vocab_size: int, cfg: Any, unroll: bool):
    import keras

    x = keras.layers.Embedding(vocab_size, cfg.embedding_dim, name="embedding")(ids)
    x = keras.layers.Conv1D(cfg.units * 2, 5, padding="same", activation="relu", name="conv")(x)
    return keras.layers.GlobalMaxPooling1D(name="pool")(x)


def _transformer(ids, vocab_size: int, cfg: Any, unroll: bool):
    import keras
    import keras_hub

    x = keras_hub.layers.TokenAndPositionEmbedding(
        vocab_size, cfg.sequence_length, cfg.embedding_dim, mask_zero=True, name="embedding"
    )(ids)
    x = keras_hub.layers.TransformerEncoder(cfg.units * 4, num_heads=4, dropout=cfg.dropout / 2, name="transformer")(x)
    return keras.layers.GlobalAveragePooling1D(name="pool")(x)


BUILDERS: dict[str, Callable] = {"bigru": _bigru, "cnn": _cnn, "transformer": _transformer, "fasttext": _fasttext}


def scratch_core(cfg: Any, vocab_size: int, n_classes: int, unroll: bool = False):
    """Token ids (N, cfg.sequence_length) -> class probabilities, for ``cfg.encoder``."""
    import keras

    if cfg.encoder not in BUILDERS:
        raise ValueError(f"Unknown from-scratch encoder {cfg.encoder!r}. Valid names: {sorted(BUILDERS)}.")
    ids = keras.Input((cfg.sequence_length,), dtype="int32", name="token_ids")
    x = BUILDERS[cfg.encoder](ids, vocab_size, cfg, unroll)
    x = keras.layers.Dropout(cfg.dropout, seed=cfg.seed, name="dropout")(x)
    outputs = keras.layers.Dense(n_classes, activation="softmax", name="predictions")(x)
    return keras.Model(ids, outputs, name=f"text_core_{cfg.encoder}")
