"""The audio classifier's conv net (the nested model ``head``: spectrogram in, probabilities out),
with ``members`` > 1 an ensemble of such nets inside the one model, and its training batches.

An ensemble's members share the band and input normalisation and each has its own conv blocks
and output layer; member 0 keeps the single net's layer names (``conv0`` ... ``relu{n}``,
``predictions``: Grad-CAM and transfer read them), member k's are prefixed ``m{k}_``. While
training, the head outputs every member's probabilities stacked, (N, members, classes), and
each member learns from its own cross-entropy (:func:`member_loss`): the members stay
independent, as separately trained seeds would. :func:`averaged_head` then makes the head that
is saved and exported: the members' probabilities averaged (one file, one call).
"""

from __future__ import annotations

import numpy as np

import keras
from keras import ops

PACKAGE = "toolkit_audio"


def build_head(cfg, frames: int, n_classes: int):
    """The conv net for ``cfg`` (an AudioClassifierConfig); with ``cfg.members`` > 1 its output is
    the members' stacked probabilities (see the module's docstring)."""
    from .layers import BandNormalization

    spec_in = keras.Input((frames, cfg.n_mels, 1), name="spectrogram")
    x = BandNormalization(scale=cfg.normalization == "meanvar", name="band_norm")(spec_in)
    normalised = keras.layers.BatchNormalization(name="input_norm")(x)
    outputs = []
    for k in range(cfg.members):
        prefix = f"m{k}_" if k else ""
        x = normalised
        for i, filters in enumerate(cfg.filters):
            for j in range(cfg.convs_per_block):  # the block's last conv keeps the names Grad-CAM and transfer read
                suffix = f"{i}" if j == cfg.convs_per_block - 1 else f"{i}_{j}"
                x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{prefix}conv{suffix}")(x)
                x = keras.layers.BatchNormalization(name=f"{prefix}bn{suffix}")(x)
                x = keras.layers.ReLU(name=f"{prefix}relu{suffix}")(x)
            if min(x.shape[1], x.shape[2]) >= 2:
                x = keras.layers.MaxPooling2D(2, name=f"{prefix}pool{i}")(x)
        x = (keras.layers.Flatten(name=f"{prefix}flatten") if cfg.pooling == "flatten" else
             keras.layers.GlobalAveragePooling2D(name=f"{prefix}gap"))(x)
        if cfg.dropout:
            x = keras.layers.Dropout(cfg.dropout, seed=cfg.seed + k, name=f"{prefix}dropout")(x)
        outputs.append(keras.layers.Dense(n_classes, activation="softmax", name=f"{prefix}predictions")(x))
    if len(outputs) == 1:
        return keras.Model(spec_in, outputs[0], name="head")
    stacked = keras.layers.Concatenate(axis=1, name="members")(
        [keras.layers.Reshape((1, n_classes), name=f"m{k}_row")(p) for k, p in enumerate(outputs)])
    return keras.Model(spec_in, stacked, name="head")


def averaged_head(head):
    """The trained ensemble head (stacked members) as the head that is saved: the same layers, the
    members' probabilities averaged (layer ``member_average``)."""
    members = [head.get_layer("predictions").output] + [
        layer.output for layer in head.layers if layer.name.startswith("m") and layer.name.endswith("_predictions")]
    return keras.Model(head.input, keras.layers.Average(name="member_average")(members), name="head")


@keras.saving.register_keras_serializable(package=PACKAGE)
def member_loss(y_true, y_pred, label_smoothing: float = 0.0):
    """Mean over members of each member's cross-entropy: ``y_pred`` (N, members, classes)."""
    y = ops.repeat(ops.expand_dims(y_true, 1), ops.shape(y_pred)[1], axis=1)
    return ops.mean(keras.losses.categorical_crossentropy(y, y_pred, label_smoothing=label_smoothing), axis=1)


def member_average_accuracy(y_true, y_pred):
    """Accuracy of the members' averaged probabilities (what the saved model answers)."""
    return keras.metrics.categorical_accuracy(y_true, ops.mean(y_pred, axis=1))


def loss_and_metric(cfg):
    """(loss, accuracy metric) to compile the training model with, one net or an ensemble."""
    if cfg.members == 1:
        return (keras.losses.CategoricalCrossentropy(label_smoothing=cfg.label_smoothing),
                keras.metrics.CategoricalAccuracy(name="accuracy"))
    smoothing = cfg.label_smoothing
    return (lambda y_true, y_pred: member_loss(y_true, y_pred, smoothing),
            keras.metrics.MeanMetricWrapper(member_average_accuracy, name="accuracy"))


def training_batches(x: np.ndarray, y: np.ndarray, batch_size: int, mixup: float, seed: int):
    """Shuffled batches of (waveforms, one-hot labels); with ``mixup`` > 0 each recording is blended
    with another of its batch by a Beta(mixup, mixup) weight, and so are their labels."""
    import tensorflow as tf

    data = tf.data.Dataset.from_tensor_slices((x.astype(np.float32), y)).shuffle(len(x), seed=seed)
    data = data.batch(batch_size)
    if mixup > 0:
        def blend(waves, labels):
            n = tf.shape(waves)[0]
            a = tf.random.gamma((n, 1), mixup)
            b = tf.random.gamma((n, 1), mixup)
            weight = a / (a + b + 1e-8)
            other = tf.random.shuffle(tf.range(n))
            return (weight * waves + (1 - weight) * tf.gather(waves, other),
                    weight * labels + (1 - weight) * tf.gather(labels, other))

        data = data.map(blend)
    return data.prefetch(2)
