"""Convert Keras 3 models to TFLite with quantization presets, builtin ops only by default."""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..errors import ExportError
from ..storage import atomic_write_bytes, sha256_file

QUANTIZATIONS = ("float32", "float16", "dynamic", "int8")
#: what an int8 file's input and outputs may be: int8 (the default), uint8 (raw pixels, as phone
#: image APIs feed them) or float32 (the converter quantizes and dequantizes inside the file)
INT8_IO_TYPES = ("int8", "uint8", "float32")
CALIBRATION_SAMPLES = (100, 500)


def tflite_filename(quantization: str) -> str:
    return f"model_{quantization}.tflite"


def check_quantization(quantization: str) -> str:
    if quantization not in QUANTIZATIONS:
        raise ValueError(f"Unknown quantization {quantization!r}. Valid presets: {list(QUANTIZATIONS)}.")
    return quantization


def converter_settings(quantization: str = "float32", representative: np.ndarray | None = None,
                       allow_flex: bool = False, int8_io: tuple[str, str] = ("int8", "int8")) -> dict:
    """The TFLite converter's settings for a preset, as ``model.export(format="litert", **settings)``
    takes them (``target_spec`` is a dict of ``converter.target_spec`` attributes).

    ``int8_io``: (input, output) types of an int8 file, each one of :data:`INT8_IO_TYPES`; the graph
    between them is full-integer either way (e.g. a detector: uint8 pixels in, float32 boxes out)."""
    import tensorflow as tf

    check_quantization(quantization)
    for io in int8_io:
        if io not in INT8_IO_TYPES:
            raise ValueError(f"Unknown int8 input/output type {io!r}. Valid types: {list(INT8_IO_TYPES)}.")
    ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    kwargs: dict = {}
    if quantization in ("float16", "dynamic", "int8"):
        kwargs["optimizations"] = [tf.lite.Optimize.DEFAULT]
    target_spec: dict = {}
    if quantization == "float16":
        target_spec["supported_types"] = [tf.float16]
    if quantization == "int8":
        samples = calibration_samples(representative)
        kwargs["representative_dataset"] = lambda: ([s[None]] for s in samples)
        types = {"int8": tf.int8, "uint8": tf.uint8}
        for key, io in zip(("inference_input_type", "inference_output_type"), int8_io):
            if io in types:  # float32 is the converter's default: no setting
                kwargs[key] = types[io]
        ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    if allow_flex:
        ops = ops + [tf.lite.OpsSet.SELECT_TF_OPS]
    target_spec["supported_ops"] = ops
    kwargs["target_spec"] = target_spec
    return kwargs


def convert(model, quantization: str = "float32", representative: np.ndarray | None = None,
            allow_flex: bool = False, int8_io: tuple[str, str] = ("int8", "int8"),
            float_nodes: Callable[[str], bool] | None = None) -> bytes:
    """Convert a Keras model to TFLite bytes.

    ``int8`` is full-integer quantization, calibrated on ``representative`` (100-500 samples of
    training inputs; more are subsampled), with int8 input and output unless ``int8_io`` says
    otherwise (see :func:`converter_settings`). With ``float_nodes`` (a test on tensor names), int8
    keeps the ops whose outputs it picks in float32 (selective quantization: a numerically
    sensitive part, e.g. a spectrogram front end); the file's input and output are then float32.
    Only builtin TFLite ops are allowed unless ``allow_flex=True``; a model that needs Flex
    ops raises :class:`ExportError` naming them.
    """
    kwargs = converter_settings(quantization, representative, allow_flex, int8_io)
    if quantization == "int8" and float_nodes is not None:
        return convert_selective(model, kwargs, float_nodes, allow_flex)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.tflite")
        try:
            model.export(path, format="litert", verbose=False, **kwargs)
        except Exception as exc:  # the converter raises ConverterError and friends
            raise conversion_error(exc, allow_flex) from exc
        return Path(path).read_bytes()


def convert_selective(model, settings: dict, float_nodes: Callable[[str], bool], allow_flex: bool = False) -> bytes:
    """int8 with the ops whose output tensors ``float_nodes`` picks left in float32, by the TFLite
    converter's selective quantization (``tf.lite.experimental.QuantizationDebugger`` with
    denylisted nodes); ``settings`` from :func:`converter_settings`. Input and output float32."""
    import tensorflow as tf
    from ai_edge_litert.interpreter import Interpreter

    samples = list(settings["representative_dataset"]())
    with tempfile.TemporaryDirectory() as tmp:
        saved = os.path.join(tmp, "saved_model")
        spec = [tf.TensorSpec((None, *model.input_shape[1:]), tf.float32)]
        try:
            model.export(saved, format="tf_saved_model", verbose=False, input_signature=spec)

            def converter():
                conv = tf.lite.TFLiteConverter.from_saved_model(saved)
                conv.optimizations = settings["optimizations"]
                conv.representative_dataset = lambda: iter(samples)
                conv.target_spec.supported_ops = settings["target_spec"]["supported_ops"]
                return conv

            plain = Interpreter(model_content=converter().convert())
            names = [t["name"] for t in plain.get_tensor_details()]
            outputs: dict[str, list[str]] = {}
            for op in plain._get_ops_details():
                outputs.setdefault(op["op_name"], []).extend(names[i] for i in op["outputs"])
            # an op kind wholly inside the float part is denied by kind too: the node list alone
            # leaves requantized copies of some outputs (ABS)
            options = tf.lite.experimental.QuantizationDebugOptions(
                denylisted_nodes=[name for name in names if float_nodes(name)],
                denylisted_ops=[kind for kind, out in outputs.items() if all(map(float_nodes, out))])
            debugger = tf.lite.experimental.QuantizationDebugger(
                converter=converter(), debug_dataset=lambda: iter(samples[:2]), debug_options=options)
            return debugger.get_nondebug_quantized_model()
        except Exception as exc:
            raise conversion_error(exc, allow_flex) from exc


def calibration_samples(representative: np.ndarray | None, seed: int = 0) -> np.ndarray:
    low, high = CALIBRATION_SAMPLES
    if representative is None or len(representative) == 0:
        raise ExportError(
            "int8 quantization needs representative data to calibrate on: pass representative data "
            f"({low}-{high} training samples), e.g. export(..., data=...) or `toolkit export --data ...`."
        )
    representative = np.asarray(representative, dtype=np.float32)
    if len(representative) > high:
        index = np.random.default_rng(seed).choice(len(representative), high, replace=False)
        representative = representative[np.sort(index)]
    if len(representative) < low:
        import warnings

        warnings.warn(
            f"Calibrating int8 on {len(representative)} samples; {low}-{high} give more reliable scales.",
            stacklevel=3,
        )
    return representative


_FLEX_PATTERNS = (
    re.compile(r"'tf\.(\w+)' op is neither a custom op nor a flex op"),
    re.compile(r"Flex ops: ([\w, ]+)"),
    re.compile(r"tf\.(\w+)\s*\{"),
)


def conversion_error(exc: Exception, allow_flex: bool) -> ExportError:
    message = str(exc)
    ops: set[str] = set()
    for pattern in _FLEX_PATTERNS:
        for match in pattern.findall(message):
            ops.update(o.strip().removeprefix("Flex") for o in match.split(",") if o.strip())
    if ops and not allow_flex:
        return ExportError(
            f"The model needs TensorFlow (Flex) ops that builtin TFLite does not have: {sorted(ops)}. "
            "Phones' LiteRT runtimes do not carry Flex ops by default. Replace those layers, or pass "
            "allow_flex=True (`--allow-flex`) and link the Flex delegate into your app."
        )
    first = message.strip().splitlines()[0] if message.strip() else type(exc).__name__
    return ExportError(f"TFLite conversion failed: {first}")


def write_tflite(model, path: str | os.PathLike, quantization: str = "float32",
                 representative: np.ndarray | None = None, allow_flex: bool = False,
                 int8_io: tuple[str, str] = ("int8", "int8"), float_nodes: Callable[[str], bool] | None = None) -> dict:
    """Convert and write atomically; returns the card entry's file facts."""
    content = convert(model, quantization, representative, allow_flex, int8_io, float_nodes)
    return tflite_entry(atomic_write_bytes(path, content), quantization)


def tflite_entry(path: Path, quantization: str) -> dict:
    """The file facts a card entry starts with."""
    return {
        "file": path.name,
        "quantization": quantization,
        "size_bytes": path.stat().st_size,
        "sha256": sha256_file(path),
    }
