"""Keras layers of the audio classifier: the log-mel front end (inside the model, so a phone feeds
raw samples) and the training-only augmentations (waveform shift/gain/noise, SpecAugment masks).

The STFT is a matrix-multiply DFT: a strided 1-D convolution whose fixed kernels are the
Hann-windowed cosines and sines of each frequency bin. It converts to builtin TFLite ops
(CONV_2D, MUL, ADD, FULLY_CONNECTED, LOG), quantizes to int8 like any convolution, and needs no
RFFT kernel on the phone.
"""

from __future__ import annotations

import numpy as np

import keras
from keras import ops

PACKAGE = "toolkit_audio"


def hz_to_mel(hz):
    return 2595.0 * np.log10(1.0 + np.asarray(hz, dtype=np.float64) / 700.0)


def mel_to_hz(mel):
    return 700.0 * (10.0 ** (np.asarray(mel, dtype=np.float64) / 2595.0) - 1.0)


def mel_matrix(n_mels: int, n_fft: int, sample_rate: int, fmin: float = 20.0, fmax: float | None = None) -> np.ndarray:
    """(n_fft // 2 + 1, n_mels) triangular HTK mel filter bank (the one ``tf.signal`` uses)."""
    fmax = fmax or sample_rate / 2
    bins = np.linspace(0, sample_rate / 2, n_fft // 2 + 1)
    edges = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))
    lower, centre, upper = edges[:-2], edges[1:-1], edges[2:]
    up = (bins[:, None] - lower) / (centre - lower)
    down = (upper - bins[:, None]) / (upper - centre)
    return np.maximum(0.0, np.minimum(up, down)).astype(np.float32)


def dft_kernel(frame_length: int) -> np.ndarray:
    """(frame_length, 1, 2 * bins) Hann-windowed real and imaginary DFT kernels (bins = n // 2 + 1)."""
    n = np.arange(frame_length)
    k = np.arange(frame_length // 2 + 1)
    window = 0.5 - 0.5 * np.cos(2 * np.pi * n / frame_length)  # periodic Hann
    angle = 2 * np.pi * np.outer(n, k) / frame_length
    kernel = np.concatenate([window[:, None] * np.cos(angle), -window[:, None] * np.sin(angle)], axis=1)
    return kernel[:, None, :].astype(np.float32)


@keras.saving.register_keras_serializable(package=PACKAGE)
class LogMelSpectrogram(keras.layers.Layer):
    """(N, samples) waveform -> (N, frames, n_mels, 1) log-mel magnitude spectrogram, log(mel + floor).

    frames = 1 + (samples - frame_length) // hop_length. The DFT and the mel bank are fixed,
    non-trainable weights (saved with the model, read by the TFLite converter as constants).
    """

    def __init__(self, sample_rate: int = 8000, frame_length: int = 256, hop_length: int = 128, n_mels: int = 40,
                 fmin: float = 20.0, fmax: float | None = None, floor: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        self.sample_rate, self.frame_length, self.hop_length = int(sample_rate), int(frame_length), int(hop_length)
        self.n_mels, self.fmin, self.fmax, self.floor = int(n_mels), float(fmin), fmax, float(floor)
        self.bins = self.frame_length // 2 + 1

    def build(self, input_shape):
        self.dft = self.add_weight(shape=(self.frame_length, 1, 2 * self.bins), name="dft", trainable=False,
                                   initializer=keras.initializers.Constant(dft_kernel(self.frame_length)))
        self.mel = self.add_weight(shape=(self.bins, self.n_mels), name="mel", trainable=False,
                                   initializer=keras.initializers.Constant(
                                       mel_matrix(self.n_mels, self.frame_length, self.sample_rate, self.fmin,
                                                  self.fmax)))

    def call(self, waveform):
        x = ops.expand_dims(waveform, -1)
        spectrum = ops.conv(x, self.dft, strides=self.hop_length, padding="valid")
        real, imag = ops.abs(spectrum[..., : self.bins]), ops.abs(spectrum[..., self.bins:])
        # |X| by "alpha max plus beta min" (within 4%): no squares, so an int8 file keeps the
        # magnitudes' 48 dB instead of the power's 24 dB. 0.96 max + 0.4 min written as
        # 0.68 (|a| + |b|) + 0.28 ||a| - |b||: no MAXIMUM/MINIMUM, whose shared-scale requantizing
        # an int8 file would keep even where the front end stays float.
        magnitude = 0.68 * (real + imag) + 0.28 * ops.abs(real - imag)
        mel = ops.matmul(magnitude, self.mel)
        return ops.expand_dims(ops.log(mel + self.floor), -1)

    def compute_output_shape(self, input_shape):
        samples = input_shape[1]
        frames = None if samples is None else 1 + (samples - self.frame_length) // self.hop_length
        return (input_shape[0], frames, self.n_mels, 1)

    def get_config(self):
        return {**super().get_config(), "sample_rate": self.sample_rate, "frame_length": self.frame_length,
                "hop_length": self.hop_length, "n_mels": self.n_mels, "fmin": self.fmin, "fmax": self.fmax,
                "floor": self.floor}


@keras.saving.register_keras_serializable(package=PACKAGE)
class WaveAugment(keras.layers.Layer):
    """Training only: speed perturbation (each clip resampled about its centre by a factor within
    1 +- ``speed``: pitch, formants and rate move together, like another speaker), random circular
    time shift (up to ``shift`` of the clip), gain (x 10^(+-gain_db/20)) and white noise at a random
    level up to ``noise`` x the clip's RMS. Identity at inference."""

    def __init__(self, shift: float = 0.1, gain_db: float = 6.0, noise: float = 0.1, seed: int | None = None,
                 speed: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.shift, self.gain_db, self.noise, self.seed = float(shift), float(gain_db), float(noise), seed
        self.speed = float(speed)
        self.generator = keras.random.SeedGenerator(seed)

    def _speed(self, waveform):
        n, samples = ops.shape(waveform)[0], waveform.shape[1]
        factor = keras.random.uniform((n, 1), 1.0 - self.speed, 1.0 + self.speed, seed=self.generator)
        centre = (samples - 1) / 2.0
        positions = centre + (ops.arange(samples, dtype="float32")[None, :] - centre) * factor
        inside = ops.cast(ops.logical_and(positions >= 0.0, positions <= samples - 1.0), "float32")
        positions = ops.clip(positions, 0.0, samples - 1.0)
        low = ops.floor(positions)
        frac = positions - low
        low = ops.cast(low, "int32")
        high = ops.minimum(low + 1, samples - 1)
        value = (ops.take_along_axis(waveform, low, axis=1) * (1.0 - frac) +
                 ops.take_along_axis(waveform, high, axis=1) * frac)
        return value * inside  # beyond the clip's ends: silence

    def call(self, waveform, training=None):
        if not training:
            return waveform
        if self.speed:
            waveform = self._speed(waveform)
        n, samples = ops.shape(waveform)[0], waveform.shape[1]
        limit = int(self.shift * samples)
        if limit > 0:
            offsets = keras.random.randint((), -limit, limit + 1, seed=self.generator)
            waveform = ops.roll(waveform, offsets, axis=1)
        gain = 10.0 ** (keras.random.uniform((n, 1), -self.gain_db, self.gain_db, seed=self.generator) / 20.0)
        rms = ops.sqrt(ops.mean(ops.square(waveform), axis=1, keepdims=True) + 1e-8)
        level = keras.random.uniform((n, 1), 0.0, self.noise, seed=self.generator) * rms
        noise = keras.random.normal(ops.shape(waveform), seed=self.generator) * level
        return ops.clip((waveform + noise) * gain, -1.0, 1.0)

    def get_config(self):
        return {**super().get_config(), "shift": self.shift, "gain_db": self.gain_db, "noise": self.noise,
                "seed": self.seed, "speed": self.speed}


@keras.saving.register_keras_serializable(package=PACKAGE)
class SpecAugment(keras.layers.Layer):
    """Training only: each example's mel axis warped by a random factor within 1 +- ``warp``
    (vocal tract length perturbation: another voice's formants) and its time axis by 1 +-
    ``stretch`` (another speaking rate), then ``masks`` time masks (up to ``time_width`` frames)
    and frequency masks (up to ``freq_width`` mel bands) filled with the example's mean
    (SpecAugment, Park et al., 2019)."""

    def __init__(self, masks: int = 2, time_width: int = 8, freq_width: int = 6, seed: int | None = None,
                 warp: float = 0.0, stretch: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.masks, self.time_width, self.freq_width, self.seed = int(masks), int(time_width), int(freq_width), seed
        self.warp, self.stretch = float(warp), float(stretch)
        self.generator = keras.random.SeedGenerator(seed)

    def _resample(self, x, axis: int, amount: float):
        """Linear interpolation of ``x`` along ``axis`` (1: time, 2: mel) at positions scaled by a
        factor per example, uniform in 1 +- amount; edges held."""
        n, length = ops.shape(x)[0], x.shape[axis]
        factor = keras.random.uniform((n, 1), 1.0 - amount, 1.0 + amount, seed=self.generator)
        centre = (length - 1) / 2.0 if axis == 1 else 0.0  # time: about the middle; frequency: scaled from 0 Hz
        positions = ops.clip(centre + (ops.arange(length, dtype="float32")[None, :] - centre) * factor, 0.0,
                             length - 1.0)
        low = ops.floor(positions)
        frac = positions - low
        low = ops.cast(low, "int32")
        high = ops.minimum(low + 1, length - 1)
        shape = (-1, length, 1, 1) if axis == 1 else (-1, 1, length, 1)
        target = ops.shape(x)

        def gather(index):
            return ops.take_along_axis(x, ops.broadcast_to(ops.reshape(index, shape), target), axis=axis)

        frac = ops.reshape(frac, shape)
        return gather(low) * (1.0 - frac) + gather(high) * frac

    def _mask(self, n, length, width):
        positions = ops.arange(length, dtype="float32")[None, :]
        keep = ops.ones((n, length))
        for _ in range(self.masks):
            size = keras.random.uniform((n, 1), 0.0, float(width + 1), seed=self.generator)
            start = keras.random.uniform((n, 1), 0.0, 1.0, seed=self.generator) * (length - size)
            inside = ops.logical_and(positions >= start, positions < start + ops.floor(size))
            keep = keep * (1.0 - ops.cast(inside, "float32"))
        return keep

    def call(self, spectrogram, training=None):
        if not training:
            return spectrogram
        if self.warp:
            spectrogram = self._resample(spectrogram, 2, self.warp)
        if self.stretch:
            spectrogram = self._resample(spectrogram, 1, self.stretch)
        if self.masks == 0:
            return spectrogram
        n = ops.shape(spectrogram)[0]
        frames, mels = spectrogram.shape[1], spectrogram.shape[2]
        keep = self._mask(n, frames, self.time_width)[:, :, None, None] * self._mask(n, mels, self.freq_width)[:, None, :, None]
        mean = ops.mean(spectrogram, axis=(1, 2, 3), keepdims=True)
        return spectrogram * keep + mean * (1.0 - keep)

    def get_config(self):
        return {**super().get_config(), "masks": self.masks, "time_width": self.time_width,
                "freq_width": self.freq_width, "seed": self.seed, "warp": self.warp, "stretch": self.stretch}


@keras.saving.register_keras_serializable(package=PACKAGE)
class BandNormalization(keras.layers.Layer):
    """Subtract each mel band's mean over time (cepstral mean normalisation): removes a
    microphone's or a voice's fixed spectral tilt, per recording. With ``scale``, then divide by
    the recording's standard deviation over all frames and bands (mean and variance
    normalisation): one dynamic range for quiet and noisy recordings alike."""

    def __init__(self, scale: bool = False, epsilon: float = 1e-3, **kwargs):
        super().__init__(**kwargs)
        self.scale, self.epsilon = bool(scale), float(epsilon)

    def call(self, spectrogram):
        centred = spectrogram - ops.mean(spectrogram, axis=1, keepdims=True)
        if not self.scale:
            return centred
        return centred / ops.sqrt(ops.mean(ops.square(centred), axis=(1, 2, 3), keepdims=True) + self.epsilon)

    def get_config(self):
        return {**super().get_config(), "scale": self.scale, "epsilon": self.epsilon}


def speed_positions(samples: int, factor: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Where a clip played ``factor`` times faster (resampled about its centre) reads its input:
    (low index, high index, weight of high) per output sample, and a 0/1 mask of positions inside
    the clip (beyond its ends: silence). The same interpolation as WaveAugment's speed perturbation."""
    centre = (samples - 1) / 2.0
    positions = centre + (np.arange(samples, dtype=np.float64) - centre) * float(factor)
    inside = ((positions >= 0.0) & (positions <= samples - 1.0)).astype(np.float32)
    positions = np.clip(positions, 0.0, samples - 1.0)
    low = np.floor(positions).astype(np.int32)
    return low, np.minimum(low + 1, samples - 1).astype(np.int32), (positions - low).astype(np.float32), inside


@keras.saving.register_keras_serializable(package=PACKAGE)
class PlaybackSpeed(keras.layers.Layer):
    """(N, samples) -> the same clips played ``factor`` times faster (pitch, formants and rate move
    together, as in another voice), at every call: a fixed linear interpolation (two GATHERs, MUL
    and ADD with constant indices and weights, so it converts to builtin TFLite ops). The model's
    test-time augmentation: predictions over a few speeds averaged."""

    def __init__(self, factor: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        self.factor = float(factor)

    def call(self, waveform):
        low, high, frac, inside = speed_positions(waveform.shape[1], self.factor)
        return (ops.take(waveform, ops.convert_to_tensor(low), axis=1) * ((1.0 - frac) * inside) +
                ops.take(waveform, ops.convert_to_tensor(high), axis=1) * (frac * inside))

    def get_config(self):
        return {**super().get_config(), "factor": self.factor}
