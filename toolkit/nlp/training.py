"""How a text classifier's Keras model is trained (:meth:`TextClassifier.fit`): Adam and early
stopping on the validation part's loss (best weights restored); :data:`CONVERGED_ENCODERS` instead
go to the optimum of their penalised loss on every training text (:func:`fit_converged`).

Converged: ``nblr`` is a logistic regression whose L2 penalty (chosen by cross-validation) is the
regularisation, so early stopping only stops it short and costs it the validation part. Measured
in 5-fold cross-validation inside the 1,600 training sentences of the shared split (folds of
``StratifiedKFold(5, shuffle=True, random_state=0)``, seed 0; the TF-IDF peer 0.856 on them,
scikit-learn's NB-LR solved exactly with ``LogisticRegression(C=1)`` 0.871): the former recipe
(early stopping on 10% of the fold, then a refit on all of it for the epochs chosen) 0.861;
every text of the fold, a fixed number of epochs, Adam at a learning rate decayed to 0 along a
cosine: 20 epochs at 2e-3 0.859, 40 at 2e-3 0.864, 20 at 5e-3 0.864, 40 at 5e-3 0.866, 60 at
5e-3 0.868, 40 at 1e-2 0.867; 40 at 5e-3 with naive-Bayes smoothing 0.5 (:data:`.nblr.NBLR_ALPHA`)
0.868, the setting kept (the config's 40 epochs, :data:`.nblr.NBLR_LR_SCALE` x its 1e-3).
"""

from __future__ import annotations

import warnings
from typing import Any, Callable

import numpy as np

from ..distributed import shard
from .nblr import NBLR_LR_SCALE

# From-scratch encoders trained for cfg.epochs on every training text, at this multiple of cfg.learning_rate
# decayed along a cosine.
CONVERGED_ENCODERS = {"nblr": NBLR_LR_SCALE}


def train_model(model, train, val, epochs: int, learning_rate: Any, cfg: Any, verbose: int, class_weight,
                callbacks: list, patience: int | None = None, early_stopping: bool = True,
                loss: str = "sparse_categorical_crossentropy") -> dict:
    """Fit ``model`` on ``train`` ((x, y) arrays or a dataset of pairs) with Adam (``learning_rate``: a
    number or a Keras schedule); with ``val`` and ``early_stopping``, early stopping on its loss (best
    weights restored), else ``epochs`` epochs. Returns the history. ``loss="categorical_crossentropy"``
    takes class probabilities as targets (a teacher's soft labels, :mod:`toolkit.nlp.distill`)."""
    import keras
    import tensorflow as tf

    if isinstance(train, tuple):
        train = tf.data.Dataset.from_tensor_slices(train)
        val = tf.data.Dataset.from_tensor_slices(val) if val is not None else None
    n = int(train.cardinality())
    train = train.shuffle(n, seed=cfg.seed, reshuffle_each_iteration=True).batch(cfg.batch_size)
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate), loss=loss,
        metrics=["accuracy" if loss.startswith("sparse") else "categorical_accuracy"],
    )
    stop = [keras.callbacks.EarlyStopping("val_loss", patience=patience or cfg.patience, restore_best_weights=True)]
    with warnings.catch_warnings():
        # BERT's pooler is not used (we mean-pool the token vectors), so it gets no gradients.
        warnings.filterwarnings("ignore", message="Gradients do not exist for variables .*pooled_dense")
        return model.fit(  # in-memory texts/features: sharded by element (toolkit.distributed.shard)
            shard(train.prefetch(tf.data.AUTOTUNE)), validation_data=None if val is None else shard(val.batch(256)),
            epochs=epochs, callbacks=(stop if val is not None and early_stopping else []) + list(callbacks),
            verbose=verbose, class_weight=class_weight, shuffle=False,  # the dataset shuffles itself
        ).history


def fit_converged(cfg: Any, train, val, build: Callable, dataset: Callable, fit_args: dict, lr_scale: float):
    """(model, history) of a :data:`CONVERGED_ENCODERS` model: ``build(texts, y)`` -> a fresh primed model
    on ``train`` (every training text), trained for ``cfg.epochs`` epochs at ``lr_scale * cfg.learning_rate``
    decayed to 0 along a cosine; ``val`` (given validation data, or None) is only measured."""
    import keras

    keras.utils.set_random_seed(cfg.seed)
    model = build(train.texts, train.y)
    steps = int(np.ceil(len(train.y) / cfg.batch_size)) * cfg.epochs
    schedule = keras.optimizers.schedules.CosineDecay(cfg.learning_rate * lr_scale, steps)
    history = train_model(model, dataset(train), None if val is None else dataset(val), cfg.epochs, schedule, cfg,
                          early_stopping=False, **fit_args)
    return model, history
