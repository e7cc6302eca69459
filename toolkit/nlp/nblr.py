"""The ``nblr`` encoder: NB-LR (Wang & Manning, 2012, the logistic-regression form of NBSVM) over
the TF-IDF peer's features, word 1-2-grams and character 2-5-grams (the ids of
:mod:`toolkit.nlp.charngrams`, as ``nbchar``).

A text is a *set* of n-grams (binarised: each distinct id counts once; padding, unknown ids and
repeats add nothing). Per n-gram t and class c the logit gets ``r[t, c] * v[t, c]``: ``r`` is the
naive-Bayes log-count ratio of binary presence (from the training texts, fixed, set by
:func:`toolkit.nlp.encoders.prime`), ``v`` is learned from zero with an L2 penalty (the
logistic regression on NB-scaled binary features that Wang & Manning call NB-LR). Unlike
``nbchar`` (counts, a correction ``1 + w`` around naive Bayes, a trainable output layer) the
model is exactly that regression: the output layer is a fixed identity.

Settings were chosen by 5-fold cross-validation inside the 1,600 training sentences of the
shared split (the test part unseen), with a harness that trains this model with Adam and
early stopping on 10% of each fold, over word 1-2-grams and scikit-learn's ``char_wb``
2-5-grams (within words, as the TF-IDF peer): NB-LR 0.861 (L2 3.5e-4, learning rate 2e-3;
0.856 with L2 1e-3; 0.833-0.846 for the nbchar form), the TF-IDF peer 0.858 (10 folds). Over
character n-grams across word boundaries the same harness gave 0.8475, hence the word-bounded
analyzer of :mod:`toolkit.nlp.charngrams` (which also keeps punctuation: scikit-learn's NB-LR
with punctuation kept in the character n-grams 0.870 against 0.852 stripped, same folds).

The model itself, in :meth:`TextClassifier.fit`'s 5-fold cross-validation on those sentences
(folds of ``StratifiedKFold(5, shuffle=True, random_state=0)``, seed 0; the TF-IDF peer 0.855 on
them), trained on 90% of each fold (early stopping on the rest): 0.857; learning rate x3
(``NBLR_STEP`` 6) 0.849, x0.5 0.861; n-gram dropout 0.25 / 0.5 0.858 / 0.859; a 60,000-token
vocabulary 0.855. Refitted on every training text for the epochs early stopping chose: 0.861;
with learning rate x0.5 0.860, with n-gram dropout 0.5 0.855. Trained to convergence instead, on
every training text without early stopping (cfg.epochs, the learning rate decayed along a cosine,
:func:`toolkit.nlp.training.fit_converged`, now the default): 0.868 (scikit-learn's exact NB-LR
0.871 on the same folds). Averaging NB-LR's probabilities with a TF-IDF logistic regression's
(scikit-learn, same features, same folds) gave 0.868 against NB-LR's 0.871 alone; averaging this
model's probabilities with ``cnn``'s 0.863, with ``nbchar``'s 0.868, all three 0.861 (the model alone
0.868, each through :meth:`TextClassifier.fit`, seed 0): so no ensemble.

Duplicates are removed inside the model (a descending sort by TOPK_V2, then a
comparison with the neighbour), so the TFLite file keeps builtin ops and takes the same ids.
"""

from __future__ import annotations

from typing import Any

# L2 penalty on v per n-gram and class: logistic regression with C = 1 on about 1,440 texts
# (1 / (2 C n)); 1e-3 was worse by cross-validation (see the module).
NBLR_L2 = 3.5e-4
# v moves NBLR_STEP times faster than its parameter u (v = NBLR_STEP * u, the penalty scaled to stay
# NBLR_L2 * v^2): the settings were chosen at a learning rate of 2e-3, the config's default is 1e-3.
NBLR_STEP = 2.0
# nblr trains at this multiple of the config's learning rate (1e-3 by default), decayed to 0 along a cosine
# over cfg.epochs on every training text (toolkit.nlp.training.fit_converged, chosen by cross-validation).
NBLR_LR_SCALE = 5.0
# Additive smoothing of nblr's naive-Bayes counts (0.868 against 0.866 with 1.0, same folds as NBLR_LR_SCALE;
# scikit-learn's NB-LR, 5-fold x 2 repeats: 0.867 against 0.865).
NBLR_ALPHA = 0.5


def distinct_ids(ids):
    """(N, L) int32 ids -> the same ids sorted in descending order, repeats replaced by 0 (padding)."""
    import keras

    length = int(ids.shape[1])
    ordered, _ = keras.ops.top_k(ids, k=length, sorted=True)
    previous = keras.ops.concatenate([keras.ops.full_like(ordered[:, :1], -1), ordered[:, :-1]], axis=1)
    return keras.ops.where(keras.ops.not_equal(ordered, previous), ordered, keras.ops.zeros_like(ordered))


def nblr(ids, vocab_size: int, cfg: Any, unroll: bool, n_classes: int = 2):
    """Logits (N, n_classes): the sum over a text's distinct n-grams of r * v (see the module)."""
    import keras

    unique = distinct_ids(ids)
    ratios = keras.layers.Embedding(vocab_size, n_classes, embeddings_initializer="zeros", trainable=False,
                                    name="nb_ratios")(unique)
    weights = keras.layers.Embedding(vocab_size, n_classes, embeddings_initializer="zeros", name="embedding",
                                     embeddings_regularizer=keras.regularizers.L2(NBLR_L2 * NBLR_STEP ** 2))(unique)
    weights = keras.layers.Rescaling(NBLR_STEP, name="weight_scale")(weights)
    x = keras.layers.Multiply(name="nb_weighted")([ratios, weights])
    # No dropout: the L2 penalty is the regularisation (cfg.dropout is not used by nblr; n-gram dropout
    # did not help by cross-validation, see the module).
    return keras.ops.sum(x, axis=1)
