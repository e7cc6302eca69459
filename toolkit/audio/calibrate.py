"""Honest answers of an ``audio_classifier``: a temperature and the "not sure" rule, fitted by
:func:`toolkit.calibration.calibrate` at the end of ``fit`` on its held-out validation recordings
(never a test split), against generated sounds that are not speech (:func:`generated_sounds`).

Scores: the top temperature-scaled probability, and, where the model is one front end and one
head (the default), the distance of the head's features (the input of its ``predictions`` layer:
the pretrained backbone's normalised 96-d embedding, or the conv net's pooled features) from the
training recordings' (:class:`toolkit.calibration.FeatureDensity`). A ``.tflite`` file returns
only probabilities: it checks the top probability alone, with the threshold calibrated for that.
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: generated recordings per kind of non-speech sound
N_GENERATED = 40
UNLIKE = "sounds unlike the training recordings (noise, music, or a voice or microphone unlike theirs)"


def generated_sounds(fmt: Any, n: int = N_GENERATED, seed: int = 0) -> dict[str, list[np.ndarray]]:
    """Sounds a microphone picks up that are no word: white and brown noise, steady tones with
    harmonics, sweeps, mains hum and clicks (``n`` of each, random levels and pitches, ``fmt``'s
    rate and duration, before the model's own preparation)."""
    rng = np.random.default_rng(seed)
    rate, size = fmt.sample_rate, fmt.samples
    t = np.arange(size) / rate
    top = rate / 2.5  # keep pitches under the Nyquist frequency

    def level(x: np.ndarray) -> np.ndarray:
        return (x / (np.abs(x).max() + 1e-9) * rng.uniform(0.05, 0.9)).astype(np.float32)

    def tone() -> np.ndarray:
        f = rng.uniform(100, top / 4)
        return sum(rng.uniform(0.2, 1) * np.sin(2 * np.pi * f * k * t + rng.uniform(0, 6.3)) for k in range(1, 4))

    def sweep() -> np.ndarray:
        f0, f1 = rng.uniform(80, top, 2)
        return np.sin(2 * np.pi * (f0 * t + (f1 - f0) * t ** 2 / (2 * t[-1])))

    def hum() -> np.ndarray:
        f = rng.choice([50.0, 60.0])
        return sum(np.sin(2 * np.pi * f * k * t) / k for k in range(1, 8)) + rng.normal(0, 0.02, size)

    def brown() -> np.ndarray:
        x = np.cumsum(rng.normal(0, 1, size))
        return x - np.linspace(x[0], x[-1], size)  # no drift: it starts and ends at 0

    def clicks() -> np.ndarray:
        x = np.zeros(size)
        k = int(rng.integers(3, 30))
        x[rng.choice(size, k, replace=False)] = rng.uniform(0.3, 1, k) * rng.choice([-1, 1], k)
        return np.convolve(x, np.exp(-np.arange(64) / 8.0))[:size] + rng.normal(0, 1e-3, size)

    makers = {"white_noise": lambda: rng.normal(0, 1, size), "brown_noise": brown,
              "tones": tone, "sweeps": sweep, "hum": hum, "clicks": clicks}
    return {kind: [level(make()) for _ in range(n)] for kind, make in makers.items()}


def features_model(model: Any, n_classes: int) -> Any:
    """A Keras model: waveform in, [probabilities, the head's features] out, or None where the
    model is not one front end and one head (several conv nets or playback speeds averaged)."""
    import keras

    names = [layer.name for layer in model.layers]
    if names[1:] != ["logmel", "head"]:
        return None
    head = model.get_layer("head")
    made_by = getattr(head.output, "_keras_history", None)  # (layer, call, output) that made the head's output
    if made_by is None or made_by.operation.name != "predictions" or tuple(head.output.shape[1:]) != (n_classes,):
        return None
    # the call in the head's graph (the pretrained head's layers were called before, in a training model)
    features = made_by.operation._inbound_nodes[made_by.node_index].input_tensors[0]
    inner = keras.Model(head.inputs, [head.output, features])
    waveform = keras.Input(tuple(model.inputs[0].shape[1:]), name="waveform")
    probs, features = inner(model.get_layer("logmel")(waveform))
    return keras.Model(waveform, [probs, features])


def serving_function(task: Any) -> Any:
    """``task``'s model traced for serving: (N, samples) in, the probabilities then, where
    :func:`features_model` gives them, the head's features (concatenated) out."""
    import tensorflow as tf

    from ..serving import traced

    both = features_model(task.model_, len(task.class_names_))
    model = task.model_ if both is None else (lambda x: tf.concat(both(x, training=False), -1))
    return traced(model, tf.TensorSpec((None, task.config.audio_format.samples), tf.float32))


def calibrate_audio(task: Any, val: Any, reference: np.ndarray, seed: int = 0) -> Any:
    """The :class:`toolkit.calibration.Calibration` of a fitted ``AudioClassifier``: ``val`` its
    held-out validation recordings (AudioData), ``reference`` prepared training recordings (their
    features, grouped by the predicted class, are the in-domain reference)."""
    from ..calibration import calibrate

    generated = {}
    for kind, sounds in generated_sounds(task.config.audio_format, seed=seed).items():
        batch = task.prepare(sounds)
        generated[kind] = (batch, *task.probabilities_and_features(batch))
    val_probs, val_features = task.probabilities_and_features(val.x)
    reference_features = None
    if val_features is not None:
        probs, features = task.probabilities_and_features(reference)
        reference_features = (features, probs.argmax(axis=-1))
    calibration = calibrate(val_probs, val.y, val.x, None, generated, val_features=val_features,
                            reference_features=reference_features, ood_goal=0.9, what="recordings", unlike=UNLIKE)
    calibration.report["measured_on"] = ("held-out validation recordings (not the test split) and generated "
                                         "non-speech sounds: " + ", ".join(generated))
    return calibration
