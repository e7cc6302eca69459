"""Which time-frequency regions drove an audio classifier's answer: occlusion and Grad-CAM on the
log-mel spectrogram, drawn over it; plus the waveform/spectrogram figure a demo shows.

Plain functions of arrays: ``spectrogram`` (waveform -> log-mel, the model's own front end),
``occlusion_map`` and ``gradcam_map`` (spectrogram -> (frames, mels) attributions) and
``spectrogram_image`` (an RGB picture, with an attribution overlay when given).
"""

from __future__ import annotations

import io

import numpy as np

from ..plotting import figure_png, pyplot


def occlusion_map(head, spectrogram: np.ndarray, target: int, patch: tuple[int, int] = (6, 5),
                  stride: tuple[int, int] | None = None, batch: int = 128) -> tuple[np.ndarray, int]:
    """Drop in the target's probability when each (frames x mels) patch of ``spectrogram`` (F, M)
    is replaced by the spectrogram's mean; averaged over the patches covering each cell.
    ``head`` maps (N, F, M, 1) spectrograms to probabilities. Returns (map (F, M), evaluations)."""
    spec = np.asarray(spectrogram, dtype=np.float32)
    frames, mels = spec.shape
    stride = stride or patch
    fill = float(spec.mean())
    boxes = [(t, m) for t in range(0, max(1, frames - patch[0] + stride[0]), stride[0])
             for m in range(0, max(1, mels - patch[1] + stride[1]), stride[1])]
    copies = np.repeat(spec[None], len(boxes), axis=0)
    for i, (t, m) in enumerate(boxes):
        copies[i, t : t + patch[0], m : m + patch[1]] = fill
    base = float(np.asarray(head(spec[None, ..., None]))[0, target])
    probs = np.concatenate([np.asarray(head(copies[i : i + batch, ..., None]))[:, target]
                            for i in range(0, len(copies), batch)])
    total, count = np.zeros_like(spec), np.zeros_like(spec)
    for (t, m), p in zip(boxes, probs):
        total[t : t + patch[0], m : m + patch[1]] += base - p
        count[t : t + patch[0], m : m + patch[1]] += 1
    return total / np.maximum(count, 1), len(boxes) + 1


def gradcam_map(head, spectrogram: np.ndarray, target: int, feature_layer: str) -> np.ndarray:
    """Grad-CAM of ``target`` on ``head``'s layer ``feature_layer`` (a conv block's output),
    resized to the spectrogram's (frames, mels) and scaled to [0, 1]."""
    import keras
    import tensorflow as tf

    grad_model = keras.Model(head.inputs, [head.get_layer(feature_layer).output, head.output])
    x = tf.convert_to_tensor(np.asarray(spectrogram, np.float32)[None, ..., None])
    with tf.GradientTape() as tape:
        features, probs = grad_model(x, training=False)
        score = tf.math.log(probs[:, target] + 1e-12)
    return cam_map(tape.gradient(score, features), features, spectrogram.shape)


def cam_map(grads, features, shape: tuple[int, int], rows: int | None = None) -> np.ndarray:
    """Grad-CAM's map from a conv layer's ``features`` (1, T, B, C) and the score's ``grads`` on
    them: channels weighted by their mean gradient, ReLU, resized to the first ``rows`` (default
    all) of a ``shape`` (frames, mels) map (zero beyond), scaled to [0, 1]."""
    import cv2
    import tensorflow as tf

    weights = tf.reduce_mean(grads, axis=(1, 2), keepdims=True)
    cam = tf.nn.relu(tf.reduce_sum(weights * features, axis=-1))[0].numpy().astype(np.float32)
    frames, mels = shape
    rows = frames if rows is None else rows
    full = np.zeros((frames, mels), np.float32)
    full[:rows] = cv2.resize(cam, (mels, rows), interpolation=cv2.INTER_LINEAR)
    low, high = float(full.min()), float(full.max())
    return (full - low) / (high - low) if high > low else np.zeros_like(full)


def spectrogram_image(spectrogram: np.ndarray, attributions: np.ndarray | None = None, *,
                      waveform: np.ndarray | None = None, sample_rate: int = 8000, hop_length: int = 128,
                      title: str | None = None, signed: bool = True) -> np.ndarray:
    """RGB (uint8) picture of a log-mel spectrogram (F, M): time across, mel bands up; with
    ``attributions`` (F, M) drawn over it (red supports the answer, blue speaks against it; or a
    heat map when ``signed=False``), and the waveform above when given."""
    from PIL import Image

    plt = pyplot()
    rows = 2 if waveform is not None else 1
    fig, axes = plt.subplots(rows, 1, figsize=(6, 2.2 * rows + 0.6), squeeze=False,
                             gridspec_kw={"height_ratios": [1, 2] if rows == 2 else [1]})
    seconds = spectrogram.shape[0] * hop_length / sample_rate
    extent = (0, seconds, 0, spectrogram.shape[1])
    if waveform is not None:
        ax = axes[0, 0]
        ax.plot(np.arange(len(waveform)) / sample_rate, waveform, lw=0.5, color="#333")
        ax.set_xlim(0, len(waveform) / sample_rate)
        ax.set_ylabel("amplitude")
        ax.set_xticks([])
    ax = axes[-1, 0]
    ax.imshow(np.asarray(spectrogram).T, origin="lower", aspect="auto", cmap="gray_r" if attributions is not None
              else "magma", extent=extent)
    if attributions is not None:
        heat = np.asarray(attributions, dtype=np.float32).T
        if signed:
            scale = float(np.max(np.abs(heat))) or 1.0
            ax.imshow(heat / scale, origin="lower", aspect="auto", cmap="bwr", vmin=-1, vmax=1, alpha=0.55,
                      extent=extent)
        else:
            ax.imshow(np.maximum(heat, 0), origin="lower", aspect="auto", cmap="jet", alpha=0.45, extent=extent)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("mel band")
    if title:
        axes[0, 0].set_title(title)
    fig.tight_layout()
    return np.asarray(Image.open(io.BytesIO(figure_png(fig))).convert("RGB"))


def lime_segments(probabilities, waveform: np.ndarray, target: int, segments: int = 10, budget: int = 300,
                  seed: int = 0) -> np.ndarray:
    """LIME on time segments: ``budget`` copies of ``waveform`` with random segments silenced,
    the target's probability of each (``probabilities((N, samples)) -> (N, classes)``, so a
    TFLite file can answer), and LIME's weighted linear fit (``lime.lime_base.LimeBase``, cosine
    distance to the untouched recording, exponential kernel). Returns one weight per segment."""
    from lime.lime_base import LimeBase
    from sklearn.metrics.pairwise import cosine_distances

    wave = np.asarray(waveform, dtype=np.float32)
    edges = np.linspace(0, len(wave), segments + 1).astype(int)
    rng = np.random.default_rng(seed)
    masks = rng.integers(0, 2, (max(2, budget), segments))
    masks[0] = 1  # the recording itself
    copies = np.repeat(wave[None], len(masks), axis=0)
    for i, mask in enumerate(masks):
        for s in np.flatnonzero(mask == 0):
            copies[i, edges[s] : edges[s + 1]] = 0.0
    probs = np.concatenate([np.asarray(probabilities(copies[i : i + 128])) for i in range(0, len(copies), 128)])
    distances = cosine_distances(masks, masks[:1]).ravel() * 100
    base = LimeBase(lambda d: np.sqrt(np.exp(-(d ** 2) / 25 ** 2)), random_state=seed)
    _, weights, _, _ = base.explain_instance_with_data(masks.astype(float), probs, distances, target, segments,
                                                       feature_selection="none")
    out = np.zeros(segments, np.float32)
    for index, weight in weights:
        out[index] = weight
    return out


def quick_picture(spectrogram: np.ndarray, waveform: np.ndarray, width: int = 600, wave_height: int = 100,
                  spec_height: int = 200) -> np.ndarray:
    """A fast RGB (uint8) picture for a live demo, without matplotlib's layout (a few ms instead of
    hundreds): the waveform's min/max envelope per column on top, the log-mel spectrogram below
    (time across, mel bands up, magma colours), each scaled to its own range."""
    from matplotlib import colormaps

    spec = np.asarray(spectrogram, dtype=np.float32)
    wave = np.asarray(waveform, dtype=np.float32)
    # waveform: per column, the min and max of its samples
    columns = np.array_split(wave, width)
    low = np.array([c.min() if len(c) else 0.0 for c in columns])
    high = np.array([c.max() if len(c) else 0.0 for c in columns])
    scale = max(float(np.max(np.abs(wave))), 1e-6)
    rows = np.arange(wave_height)[:, None]
    top = ((1 - high / scale) / 2 * (wave_height - 1)).astype(int)
    bottom = ((1 - low / scale) / 2 * (wave_height - 1)).astype(int)
    ink = (rows >= top[None, :]) & (rows <= bottom[None, :])
    upper = np.where(ink[..., None], np.array([51, 51, 51], np.uint8), np.array([255, 255, 255], np.uint8))
    # spectrogram: (frames, mels) -> (spec_height, width), low mel bands at the bottom
    lo, hi = float(spec.min()), float(spec.max())
    norm = (spec - lo) / (hi - lo) if hi > lo else np.zeros_like(spec)
    t = np.minimum((np.arange(width) * spec.shape[0]) // width, spec.shape[0] - 1)
    m = np.minimum((np.arange(spec_height) * spec.shape[1]) // spec_height, spec.shape[1] - 1)[::-1]
    lut = (colormaps["magma"](np.linspace(0, 1, 256))[:, :3] * 255).astype(np.uint8)
    lower = lut[(norm[t][:, m].T * 255).astype(int)]
    gap = np.full((4, width, 3), 255, np.uint8)
    return np.concatenate([upper.astype(np.uint8), gap, lower], axis=0)
