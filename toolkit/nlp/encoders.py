"""The from-scratch text encoders: token ids (N, L) -> class probabilities, the part that runs on
phones. Looked up by name in :data:`BUILDERS`; :data:`NGRAMS` says which word n-grams the
model's TextVectorization (and so ``vocab.txt`` and :class:`~toolkit.nlp.tokenizer.WordTokenizer`)
turns a text into.

- ``fasttext``: fastText-style bag of word and word-bigram embeddings, averaged over the real
  tokens (Joulin et al., 2016); a text's ids are its words, then its bigrams.
- ``bigru``: embedding + bidirectional GRU (unrolled in the exported copy: builtin TFLite ops).
- ``cnn``: embedding + 1-D convolution + max pooling.
- ``transformer``: KerasHub token-and-position embedding + one transformer encoder block.
- ``nbchar``: the ``nbsvm`` model over the TF-IDF peer's features, word 1-2-grams and character
  2-5-grams (:mod:`toolkit.nlp.charngrams` makes the ids: ``(1 + CHAR_FACTOR) * sequence_length``).
- ``nbsvm``: NBSVM-style bag of word 1-3-grams (Wang & Manning, 2012): each token's naive-Bayes
  log-count ratio per class (from the training texts, :func:`prime`, fixed) times a learned
  per-token correction ``1 + w`` (``w`` starts at 0 with an L2 penalty, so the model starts as
  naive Bayes and moves away only where the data says so), averaged over the real tokens.
- ``nblr``: NB-LR over ``nbchar``'s ids, binarised (:mod:`toolkit.nlp.nblr`): each distinct n-gram's
  ratio times a weight learned from zero with an L2 penalty; a fixed identity output layer.
"""

from __future__ import annotations

from typing import Any, Callable

from .nblr import NBLR_ALPHA, nblr

# Word n-gram widths per encoder (1: words only); ids come in TextVectorization's order.
NGRAMS = {"fasttext": 2, "nbsvm": 3, "nbchar": 2, "nblr": 2}
# Encoders whose ids are word 1-2-grams, then CHAR_FACTOR * sequence_length character n-gram ids.
CHAR_ENCODERS = frozenset({"nbchar", "nblr"})
CHAR_FACTOR = 8  # 8 x 64 = 512 ids: every 2-5-gram of a sentence of up to about 130 characters
# L2 penalty on the nbsvm correction w (per token and class).
NB_L2 = 1e-6
# Additive smoothing of the naive-Bayes counts.
NB_ALPHA = 1.0
# How much faster the correction w moves than its parameter (see _nbsvm).
NB_STEP = 10.0
# The classification layer starts as NB_START x the naive-Bayes scores (tempered: sums of log-ratios over
# dozens of n-grams are over-confident).
NB_START = 0.03
# nbchar's texts hold about 10 times more ids (character n-grams): tempered more. Chosen on a validation part
# cut from the training part of the shared split (0.864 vs 0.853 with 0.03, seeds 0-1; the test part unseen).
NB_START_CHARS = 0.01
# Encoders that apply cfg.dropout themselves (no dropout before the classification layer).
OWN_DROPOUT = {"nbsvm", "nbchar", "nblr"}


def ngrams_of(encoder: str) -> int:
    return NGRAMS.get(encoder, 1)


def ids_length(encoder: str, sequence_length: int) -> int:
    """Ids per text the encoder's core takes (``nbchar``: the words', then the characters')."""
    return sequence_length * (1 + CHAR_FACTOR) if encoder in CHAR_ENCODERS else sequence_length


def _fasttext(ids, vocab_size: int, cfg: Any, unroll: bool, **_):
    import keras

    x = keras.layers.Embedding(vocab_size, cfg.embedding_dim, mask_zero=True, name="embedding")(ids)
    return keras.layers.GlobalAveragePooling1D(name="pool")(x)


def _bigru(ids, vocab_size: int, cfg: Any, unroll: bool, **_):
    import keras

    # Phones' builtin TFLite ops have no TensorList: the exported copy unrolls the GRU.
    x = keras.layers.Embedding(vocab_size, cfg.embedding_dim, mask_zero=True, name="embedding")(ids)
    return keras.layers.Bidirectional(keras.layers.GRU(cfg.units, unroll=unroll), name="bigru")(x)


def _cnn(ids, vocab_size: int, cfg: Any, unroll: bool, **_):
    import keras

    x = keras.layers.Embedding(vocab_size, cfg.embedding_dim, name="embedding")(ids)
    x = keras.layers.Conv1D(cfg.units * 2, 5, padding="same", activation="relu", name="conv")(x)
    return keras.layers.GlobalMaxPooling1D(name="pool")(x)


def _transformer(ids, vocab_size: int, cfg: Any, unroll: bool, **_):
    import keras
    import keras_hub

    x = keras_hub.layers.TokenAndPositionEmbedding(
        vocab_size, cfg.sequence_length, cfg.embedding_dim, mask_zero=True, name="embedding"
    )(ids)
    x = keras_hub.layers.TransformerEncoder(cfg.units * 4, num_heads=4, dropout=cfg.dropout / 2, name="transformer")(x)
    return keras.layers.GlobalAveragePooling1D(name="pool")(x)


def _nbsvm(ids, vocab_size: int, cfg: Any, unroll: bool, n_classes: int = 2):
    import keras

    # Per token and class: r (naive-Bayes log-count ratio, set by prime(), fixed) * (1 + w). Padding
    # has r = 0, so summing over every position sums over the real tokens (a bag of counts).
    ratios = keras.layers.Embedding(vocab_size, n_classes, embeddings_initializer="zeros", trainable=False,
                                    name="nb_ratios")(ids)
    correction = keras.layers.Embedding(vocab_size, n_classes, embeddings_initializer="zeros",
                                        embeddings_regularizer=keras.regularizers.L2(NB_L2), name="embedding")(ids)
    # w moves NB_STEP times faster than its parameter: Adam's default step suits the other encoders.
    correction = keras.layers.Rescaling(NB_STEP, name="correction_scale")(correction)
    weighted = keras.layers.Multiply(name="nb_correction")([ratios, correction])
    x = keras.layers.Add(name="nb_weighted")([ratios, weighted])
    # Token dropout: a dropped token adds nothing to any class.
    x = keras.layers.Dropout(cfg.dropout, noise_shape=(None, ids.shape[1], 1), seed=cfg.seed,
                             name="token_dropout")(x)
    # Mean over all positions = sum over the real tokens / sequence_length (a constant scale).
    return keras.layers.GlobalAveragePooling1D(name="pool")(x)


def nb_ratios(ids: Any, y: Any, vocab_size: int, n_classes: int, alpha: float = NB_ALPHA):
    """(vocab_size, n_classes) one-vs-rest naive-Bayes log-count ratios of binary token presence:
    r[t, c] = log(p_c[t] / |p_c|_1) - log(q_c[t] / |q_c|_1), p_c (q_c) = alpha + texts of class c
    (of the other classes) holding token t. Padding (0) and out-of-vocabulary (1) get 0."""
    import numpy as np

    ids, y = np.asarray(ids), np.asarray(y)
    ratios = np.zeros((vocab_size, n_classes), np.float32)
    for c in range(n_classes):
        p = alpha + _presence(ids[y == c], vocab_size)[2:]  # real tokens only: no padding, no OOV
        q = alpha + _presence(ids[y != c], vocab_size)[2:]
        ratios[2:, c] = np.log(p / p.sum()) - np.log(q / q.sum())
    return ratios


def _presence(ids, vocab_size: int):
    """How many rows of ``ids`` hold each token id (once per row)."""
    import numpy as np

    unique = [np.unique(row) for row in ids]
    return np.bincount(np.concatenate(unique) if unique else np.zeros(0, np.int64), minlength=vocab_size)


def prime(model, texts: list, y):
    """Set the data-dependent weights of a freshly built scratch model (``nbsvm``: its naive-Bayes
    ratios, from the training texts; nothing for the other encoders) and return it."""
    import numpy as np

    core = next((layer for layer in model.layers if layer.name.startswith("text_core_")), None)
    if core is None or "nb_ratios" not in [layer.name for layer in core.layers]:
        return model
    import keras

    ids = np.asarray(keras.Model(model.input, model.get_layer("ids").output)(np.asarray(texts, dtype=object)))
    table = core.get_layer("nb_ratios")
    vocab_size, n_classes = table.embeddings.shape
    alpha = NBLR_ALPHA if cfg_encoder(core) == "nblr" else NB_ALPHA
    ratios = nb_ratios(ids, np.asarray(y), int(vocab_size), int(n_classes), alpha)
    if cfg_encoder(core) in CHAR_ENCODERS:  # the character vocabulary's own padding and OOV rows
        offset = model.get_layer("vectorizer").vocabulary_size()
        ratios[offset:offset + 2] = 0
    table.set_weights([ratios])
    # The classification layer starts as the identity on the summed ratios: the model starts as
    # naive Bayes (the pooling's mean over sequence_length positions is undone by that scale).
    if cfg_encoder(core) == "nblr":  # the model is the regression: a fixed identity output, no bias
        predictions = core.get_layer("predictions")
        predictions.set_weights([np.eye(n_classes, dtype=np.float32), np.zeros(n_classes, np.float32)])
        predictions.trainable = False
        return model
    length = int(core.inputs[0].shape[1])
    start = NB_START_CHARS if cfg_encoder(core) in CHAR_ENCODERS else NB_START
    core.get_layer("predictions").set_weights([np.eye(n_classes, dtype=np.float32) * length * start,
                                               np.zeros(n_classes, np.float32)])
    return model


def cfg_encoder(core) -> str:
    """The encoder name of a ``text_core_<name>`` model."""
    return core.name[len("text_core_"):]


BUILDERS: dict[str, Callable] = {"bigru": _bigru, "cnn": _cnn, "transformer": _transformer, "fasttext": _fasttext,
                                 "nbsvm": _nbsvm, "nbchar": _nbsvm, "nblr": nblr}


def scratch_core(cfg: Any, vocab_size: int, n_classes: int, unroll: bool = False):
    """Token ids (N, cfg.sequence_length) -> class probabilities, for ``cfg.encoder``."""
    import keras

    if cfg.encoder not in BUILDERS:
        raise ValueError(f"Unknown from-scratch encoder {cfg.encoder!r}. Valid names: {sorted(BUILDERS)}.")
    ids = keras.Input((ids_length(cfg.encoder, cfg.sequence_length),), dtype="int32", name="token_ids")
    x = BUILDERS[cfg.encoder](ids, vocab_size, cfg, unroll, n_classes=n_classes)
    if cfg.encoder not in OWN_DROPOUT:
        x = keras.layers.Dropout(cfg.dropout, seed=cfg.seed, name="dropout")(x)
    outputs = keras.layers.Dense(n_classes, activation="softmax", name="predictions")(x)
    return keras.Model(ids, outputs, name=f"text_core_{cfg.encoder}")
