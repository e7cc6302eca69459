"""How a text classifier's Keras model is trained (:meth:`TextClassifier.fit`): Adam, early stopping
on the validation part's loss (best weights restored) and, for :data:`REFIT_ENCODERS`, a refit on
every training text.

Refit: early stopping needs a validation part cut from the training texts (10% by default), and
that part is then lost to the model. For the linear n-gram models (``nblr``) it was worth about a
point: NB-LR trained on 90% of each fold scored 0.858 against 0.870 on all of it (scikit-learn's
``LogisticRegression``, 5-fold cross-validation inside the 1,600 training sentences of the shared
split; the Keras model on 90% scored 0.857, as the 90% regression). So once early stopping has
chosen the number of epochs (the best validation loss), such a model is built again on all the
training texts (vocabulary, naive-Bayes ratios and weights, same seed) and trained for that many
epochs without a validation part. ``history["refit_epochs"]`` records it.
"""

from __future__ import annotations

import warnings
from typing import Any, Callable

import numpy as np

from ..distributed import shard

# From-scratch encoders refitted on all the training texts for the epochs early stopping chose.
REFIT_ENCODERS = frozenset({"nblr"})


def train_model(model, train, val, epochs: int, learning_rate: float, cfg: Any, verbose: int, class_weight,
                callbacks: list, patience: int | None = None) -> dict:
    """Fit ``model`` on ``train`` ((x, y) arrays or a dataset of pairs) with Adam; with ``val``, early
    stopping on its loss (best weights restored), without, ``epochs`` epochs. Returns the history."""
    import keras
    import tensorflow as tf

    if isinstance(train, tuple):
        train = tf.data.Dataset.from_tensor_slices(train)
        val = tf.data.Dataset.from_tensor_slices(val) if val is not None else None
    n = int(train.cardinality())
    train = train.shuffle(n, seed=cfg.seed, reshuffle_each_iteration=True).batch(cfg.batch_size)
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate), loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    stop = [keras.callbacks.EarlyStopping("val_loss", patience=patience or cfg.patience, restore_best_weights=True)]
    with warnings.catch_warnings():
        # BERT's pooler is not used (we mean-pool the token vectors), so it gets no gradients.
        warnings.filterwarnings("ignore", message="Gradients do not exist for variables .*pooled_dense")
        return model.fit(  # in-memory texts/features: sharded by element (toolkit.distributed.shard)
            shard(train.prefetch(tf.data.AUTOTUNE)), validation_data=None if val is None else shard(val.batch(256)),
            epochs=epochs, callbacks=(stop if val is not None else []) + list(callbacks), verbose=verbose,
            class_weight=class_weight, shuffle=False,  # the dataset shuffles itself
        ).history


def refit_on_all(cfg: Any, model, history: dict, whole, build: Callable, dataset: Callable, fit_args: dict):
    """(model, history): for :data:`REFIT_ENCODERS` trained with a validation part cut from ``whole`` (the
    training texts), ``build(texts, y)`` -> a fresh primed model, trained on all of ``whole`` for the epochs
    early stopping chose (see the module); else ``model`` and ``history`` unchanged."""
    import keras

    if cfg.encoder not in REFIT_ENCODERS or whole is None or not history.get("val_loss"):
        return model, history
    epochs = int(np.argmin(history["val_loss"])) + 1
    keras.utils.set_random_seed(cfg.seed)
    model = build(whole.texts, whole.y)
    train_model(model, dataset(whole), None, epochs, cfg.learning_rate, cfg, **fit_args)
    return model, {**history, "refit_epochs": [epochs]}
