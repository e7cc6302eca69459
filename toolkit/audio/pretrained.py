"""The pretrained backbone of ``audio_classifier`` (``--backbone speech_embedding``): Google's
speech_embedding (:mod:`toolkit.audio.speech_embedding`), frozen, and a small trained head.

One Keras model, raw samples in, probabilities out, in the same two nested parts as the
from-scratch model, so ``spectrogram``, test-time speeds, occlusion, LIME and export work alike:

- ``logmel``: (N, samples) -> (N, frames, 32, 1), the embedding's own log-mel front end
  (:class:`~toolkit.audio.speech_embedding.EmbeddingLogMel`, 10 ms frames, frozen);
- ``head``: the frozen embedding net in one pass over the clip (a 96-d embedding per 775 ms
  window, every 80 ms), their mean, then the trained part: ``feature_norm`` (a Normalization
  adapted on the training features), dropout, an optional ``hidden`` layer and the softmax
  ``predictions``.

Training is fast because the backbone never changes: the 96-d features of the training clips (and,
with ``augment``, of ``copies`` augmented copies of each: shift, gain, noise, ``speed``) are
computed once by a batched predict, the trained part is fitted on them with early stopping on the
validation clips' features, and the whole model is assembled from the same layers.
"""

from __future__ import annotations

import hashlib

import numpy as np

from ..errors import DataError, WeightsUnavailableError

BACKBONES = ("scratch", "speech_embedding")
#: the embedding's window is 775 ms: shorter clips cannot hold one
MIN_DURATION = 0.8
RATES = (8000, 16000)
FEATURE_BATCH = 64
#: clean recordings' features remembered within a process (by content), at most this many
REMEMBER = 50_000
_REMEMBERED: dict[tuple, np.ndarray] = {}
#: the embedding net's layer kinds (``speech_embedding.build_speech_embedding`` names them by conv block)
BLOCK_KINDS = ("pad", "conv", "relu", "bn", "leaky", "floor", "pool")


def float_blocks(n: int, kinds: tuple[str, ...] = BLOCK_KINDS) -> tuple[str, ...]:
    """Name parts of the ops of the embedding net's first ``n`` conv blocks (all their layers)."""
    return tuple(f"speech_embedding_{kind}{i}_" for i in range(n) for kind in kinds)


#: how many of the embedding net's conv blocks an int8 file keeps in float32 (every op of them): blocks
#: 0-6, up to the second max-pooling. Chosen on the inner speaker splits (george never used; heads of
#: seeds 0-2, ``benchmarks/speech_int8_backbone.py``): Keras/int8 disagreements over the 4 x 500 held-out
#: clips, summed over the 3 seeds, 43 with the first 3 blocks' convs float (before speech11), 41 with
#: those 3 blocks whole, 37 with 4, 35 with 5, 19 with 7 (feature error 0.112 -> 0.069 std; 749 KB).
FLOAT_BLOCKS = 7
#: name parts of the ops an int8 file keeps in float32 (besides the ``logmel`` front end): the crop to
#: the frames the windows reach and the embedding net's first FLOAT_BLOCKS conv blocks, whole (their
#: pads, LeakyReLUs and pooling included, so no int8 step sits between float ops; the layers are named
#: by block since speech11, and models saved before keep their unnamed activations int8).
FLOAT_IN_INT8 = ("windows_reach",) + float_blocks(FLOAT_BLOCKS)


def check_backbone(cfg) -> None:
    """Refuse settings the pretrained backbone cannot honour, saying what to change."""
    if cfg.backbone != "speech_embedding":
        return
    if cfg.sample_rate not in RATES:
        raise ValueError(f"--backbone speech_embedding needs --sample-rate 8000 or 16000 (its front end's rates). "
                         f"Received {cfg.sample_rate}.")
    if cfg.duration < MIN_DURATION:
        raise ValueError(f"--backbone speech_embedding hears 775 ms windows: duration must be >= {MIN_DURATION} s. "
                         f"Received {cfg.duration} s; pass --duration 1.0 (or longer).")
    if cfg.members != 1:
        raise ValueError("--members is an ensemble of from-scratch conv nets; with --backbone speech_embedding "
                         f"leave it at 1. Received {cfg.members}.")
    if cfg.transfer_from:
        raise ValueError("--transfer-from copies a from-scratch conv net; --backbone speech_embedding is already "
                         "pretrained: drop --transfer-from.")


def hop_samples(sample_rate: int) -> int:
    """Samples between two spectrogram frames of the embedding's front end (10 ms)."""
    return sample_rate // 100


class PretrainedParts:
    """The frozen parts of the model (the front end ``logmel``; the embedding net over the clip's
    windows and their mean) and the features they give."""

    def __init__(self, cfg):
        import keras

        from . import speech_embedding as se

        fmt = cfg.audio_format
        self.sample_rate = cfg.sample_rate
        try:
            self.frontend = se.build_mel_frontend(cfg.sample_rate, name="logmel")
        except ImportError as exc:  # the weights' package (or onnx) is missing: say what to install, or the way round
            raise WeightsUnavailableError(f"{exc} Or train the conv net instead: --backbone scratch.") from exc
        frozen = se.build_embedding_head(cfg.sample_rate, fmt.samples)
        self.spec_in, self.pooled = frozen.input, frozen.output  # the trained layers continue this graph
        waveform = keras.Input((fmt.samples,), name="waveform")
        self.features_model = keras.Model(waveform, frozen(self.frontend(waveform)))

    def features(self, x: np.ndarray, remember: bool = False) -> np.ndarray:
        """(N, samples) -> (N, 96) mean embeddings, by batched predict. With ``remember``, each
        clip's features are kept for this process (keyed by its rate and samples' digest: the
        backbone never changes), so a clip trained on again costs nothing."""
        x = np.asarray(x, np.float32)
        if not remember:
            return self.features_model.predict(x, batch_size=FEATURE_BATCH, verbose=0)
        keys = [(self.sample_rate, hashlib.sha1(row.tobytes()).hexdigest()) for row in x]
        missing = [i for i, key in enumerate(keys) if key not in _REMEMBERED]
        if missing:
            new = self.features_model.predict(x[missing], batch_size=FEATURE_BATCH, verbose=0)
            if len(_REMEMBERED) + len(missing) > REMEMBER:
                _REMEMBERED.clear()
            _REMEMBERED.update(zip([keys[i] for i in missing], new))
        return np.stack([_REMEMBERED[key] for key in keys])

def augmented_copies(x: np.ndarray, cfg) -> list[np.ndarray]:
    """``cfg.copies`` augmented copies of the clips (shift, gain, noise, ``cfg.speed``), each drawn anew."""
    from .layers import WaveAugment

    out = []
    for k in range(cfg.copies if cfg.augment else 0):
        layer = WaveAugment(seed=cfg.seed * 1000 + k, speed=cfg.speed)
        out.append(np.concatenate([np.asarray(layer(x[i:i + 32], training=True)) for i in range(0, len(x), 32)]))
    return out


def fit_head(cfg, x: np.ndarray, y: np.ndarray, x_val: np.ndarray, y_val: np.ndarray, n_classes: int,
             verbose: int = 0, callbacks: list | None = None):
    """(layers, history): the trained part of the head (``feature_norm`` adapted on ``x``, dropout,
    optional hidden layer, softmax ``predictions``) fitted on features ``x`` (N, 96) with early
    stopping on ``x_val``; the layers are then applied to the backbone's pooled output."""
    import keras

    if not np.all(np.isfinite(x)) or not np.all(np.isfinite(x_val)):
        raise DataError("The pretrained embedding gave non-finite features: check the recordings are not corrupt.")
    keras.utils.set_random_seed(cfg.seed)
    norm = keras.layers.Normalization(name="feature_norm")
    norm.adapt(x)
    layers = [norm]
    if cfg.dropout:
        layers.append(keras.layers.Dropout(cfg.dropout, seed=cfg.seed, name="dropout"))
    if cfg.hidden:
        layers += [keras.layers.Dense(cfg.hidden, activation="relu", name="hidden")]
        if cfg.dropout:
            layers.append(keras.layers.Dropout(cfg.dropout, seed=cfg.seed + 1, name="hidden_dropout"))
    layers.append(keras.layers.Dense(n_classes, activation="softmax", name="predictions"))
    trained = keras.Sequential([keras.Input((x.shape[1],))] + layers, name="trained_head")
    one_hot = np.eye(n_classes, dtype=np.float32)
    trained.compile(optimizer=keras.optimizers.Adam(cfg.learning_rate),
                    loss=keras.losses.CategoricalCrossentropy(label_smoothing=cfg.label_smoothing),
                    metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")])
    stop = [keras.callbacks.EarlyStopping(patience=cfg.patience, restore_best_weights=True)]
    history = trained.fit(x, one_hot[y], validation_data=(x_val, one_hot[y_val]), epochs=cfg.epochs,
                          batch_size=cfg.batch_size, shuffle=True, verbose=verbose,
                          callbacks=stop + list(callbacks or []))
    return layers, history.history


def fit_pretrained(cfg, train, val, verbose: int = 0, callbacks: list | None = None):
    """(model, history): the frozen backbone's features of ``train`` (plus augmented copies) and
    ``val`` (AudioData), the head fitted on them, the whole waveform-in model assembled."""
    import keras

    parts = PretrainedParts(cfg)
    x = np.concatenate([parts.features(train.x, remember=True)] +
                       [parts.features(c) for c in augmented_copies(train.x, cfg)])
    x_val = parts.features(val.x, remember=True)
    layers, history = fit_head(cfg, x, np.tile(train.y, len(x) // len(train)), x_val, val.y, len(train.class_names),
                               verbose, callbacks)
    out = parts.pooled
    for layer in layers:
        out = layer(out)
    head = keras.Model(parts.spec_in, out, name="head")
    waveform = keras.Input((cfg.audio_format.samples,), name="waveform")
    model = keras.Model(waveform, head(parts.frontend(waveform)), name="audio_classifier")
    return model, history


#: the embedding net's layer Grad-CAM reads: its last conv block that still has 4 frequency rows
GRADCAM_LAYER = "speech_embedding_floor14"


def gradcam_map(head, spectrogram: np.ndarray, target: int) -> np.ndarray:
    """Grad-CAM of ``target`` on the frozen embedding net's :data:`GRADCAM_LAYER` (time x 4 bands),
    through the trained head; resized to the frames the windows reach, zero beyond, scaled to [0, 1]."""
    import keras
    import tensorflow as tf

    from .explain import cam_map

    net = head.get_layer("speech_embedding")
    inner = keras.Model(net.inputs, [net.get_layer(GRADCAM_LAYER).output, net.output])
    at = head.layers.index(net)
    x = tf.convert_to_tensor(np.asarray(spectrogram, np.float32)[None, ..., None])
    for layer in head.layers[1:at]:  # the crop to the frames the windows reach
        x = layer(x)
    with tf.GradientTape() as tape:
        features, out = inner(x, training=False)
        for layer in head.layers[at + 1:]:
            out = layer(out, training=False)
        score = tf.math.log(out[:, target] + 1e-12)
    return cam_map(tape.gradient(score, features), features, spectrogram.shape, int(x.shape[1]))
