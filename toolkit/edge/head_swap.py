"""A converted classifier with another head: the frozen backbone converted to TFLite once per
process, and each new model's file made from that template by writing its own head into it.

Converting a frozen ImageNet backbone (or MiniLM) with a new head costs tens of seconds on two
cores, but the backbone's part of the file is the same for every head trained on it. Here the
first export converts the whole model once (the *template*: for ``int8``, calibrated on generic
photos, never on anyone's examples) and later exports copy it, replacing the last
``FULLY_CONNECTED`` -> ``SOFTMAX`` of the graph (the Dense head) with the new head, through the
TFLite flatbuffer schema (LiteRT's generated ``schema_py_generated``):

- the weights are quantized the way the converter quantizes that tensor in the template (int8,
  symmetric, per channel or per tensor as it did; or left float32), the bias as int32 with scale
  input scale x weight scale (full-integer files) or float32;
- in a full-integer file the head's input (the pooled features, also a ``features`` output) and
  its logits get quantization ranges from the new model's own calibration samples, as the
  converter computes them (min/max including 0, 256 levels); the softmax output keeps the fixed
  1/256 scale;
- the number of classes may differ from the template's: the head's tensors are reshaped.

The result is one ordinary ``.tflite`` file; the export's checks (agreement with the Keras
model, accuracy, latency) then run on it as on any converted file.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from ..errors import ExportError
from ..serving import Memo

MAX_TEMPLATES = 4  # an int8 EfficientNet-Lite0 is ~5 MB, a dynamic MiniLM ~23 MB
_TEMPLATES = Memo(MAX_TEMPLATES)


def template(key: tuple, convert: Callable[[], bytes]) -> bytes:
    """The converted template for ``key``, made with ``convert()`` the first time in this process."""
    return _TEMPLATES.get(key, convert)


def has_template(key: tuple) -> bool:
    return key in _TEMPLATES


def clear() -> None:
    _TEMPLATES.forget()


def _schema():
    from ai_edge_litert import schema_py_generated as schema

    return schema


def _opcode_name(model, index: int) -> str:
    schema = _schema()
    code = model.operatorCodes[index]
    builtin = max(int(code.builtinCode or 0), int(code.deprecatedBuiltinCode or 0))
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    return names.get(builtin, str(builtin))


def _head_ops(model) -> tuple[Any, Any, Any]:
    """(subgraph, the FULLY_CONNECTED op, the SOFTMAX op) of the classifier head: the softmax
    whose output is a graph output, fed by a fully connected layer."""
    graph = model.subgraphs[0]
    producers = {int(t): op for op in graph.operators for t in op.outputs}
    for out in graph.outputs:
        softmax = producers.get(int(out))
        if softmax is None or _opcode_name(model, softmax.opcodeIndex) != "SOFTMAX":
            continue
        fc = producers.get(int(softmax.inputs[0]))
        if fc is not None and _opcode_name(model, fc.opcodeIndex) == "FULLY_CONNECTED":
            return graph, fc, softmax
    raise ExportError("The template .tflite has no FULLY_CONNECTED -> SOFTMAX head at a graph output; "
                      "it cannot take another head. Export without reusing the converted backbone.")


def _quantization(scale, zero_point, dimension: int = 0):
    q = _schema().QuantizationParametersT()
    q.scale = [float(s) for s in np.atleast_1d(scale)]
    q.zeroPoint = [int(z) for z in np.atleast_1d(zero_point)]
    q.quantizedDimension = int(dimension)
    return q


def _range_params(low: float, high: float) -> tuple[float, int]:
    """Asymmetric int8 (scale, zero point) of a [low, high] range widened to hold 0, as the
    converter makes them from calibration min/max."""
    low, high = min(float(low), 0.0), max(float(high), 0.0)
    if high - low < 1e-12:
        high = low + 1e-6
    scale = (high - low) / 255.0
    zero = int(np.clip(np.round(-128 - low / scale), -128, 127))
    return scale, zero


def _symmetric(weights: np.ndarray, per_channel: bool) -> tuple[np.ndarray, np.ndarray]:
    """int8 weights (K, D) and their scales (per row, or one) as the converter quantizes weights."""
    limit = np.abs(weights).max(axis=1) if per_channel else np.array([np.abs(weights).max()])
    scales = np.where(limit > 0, limit / 127.0, 1e-8).astype(np.float32)
    q = np.round(weights / (scales[:, None] if per_channel else scales[0]))
    return np.clip(q, -127, 127).astype(np.int8), scales


def _set_shape(tensor, shape: list[int]) -> None:
    tensor.shape = np.asarray(shape, np.int32)
    signature = [] if tensor.shapeSignature is None else list(np.asarray(tensor.shapeSignature))
    if len(signature) == len(shape):  # dynamic dimensions (-1, the batch) stay dynamic
        tensor.shapeSignature = np.asarray([s if s == -1 else n for s, n in zip(signature, shape)], np.int32)


def _bias_tensor(model, graph, fc, tensor_type: int):
    """The fully connected op's bias tensor; one is added when the converter left it out (a bias of
    zeros, e.g. quantized to zeros)."""
    inputs = [int(i) for i in fc.inputs]
    if len(inputs) > 2 and inputs[2] >= 0:
        return graph.tensors[inputs[2]]
    schema = _schema()
    buffer = schema.BufferT()
    buffer.data = bytearray()
    model.buffers.append(buffer)
    tensor = schema.TensorT()
    tensor.name, tensor.type, tensor.buffer = b"head_bias", tensor_type, len(model.buffers) - 1
    tensor.shape = np.zeros(1, np.int32)
    graph.tensors.append(tensor)
    fc.inputs = np.asarray(inputs[:2] + [len(graph.tensors) - 1], np.int32)
    return tensor


def swap_head(template_bytes: bytes, kernel: np.ndarray, bias: np.ndarray,
              feature_range: tuple[float, float] | None = None,
              logit_range: tuple[float, float] | None = None) -> bytes:
    """``template_bytes`` with its Dense head replaced by ``kernel`` (D, K, as Keras stores it)
    and ``bias`` (K,). A full-integer template needs ``feature_range`` and ``logit_range`` (the
    head's input and output min/max on the new model's calibration samples)."""
    import flatbuffers

    schema = _schema()
    model = schema.ModelT.InitFromObj(schema.Model.GetRootAs(bytearray(template_bytes), 0))
    graph, fc, softmax = _head_ops(model)
    t_in, t_w, t_out, t_prob = (graph.tensors[int(fc.inputs[0])], graph.tensors[int(fc.inputs[1])],
                                graph.tensors[int(fc.outputs[0])], graph.tensors[int(softmax.outputs[0])])
    weights = np.asarray(kernel, np.float32).T  # TFLite keeps (K, D)
    bias = np.asarray(bias, np.float32)
    k, d = weights.shape
    if list(np.asarray(t_w.shape))[-1] != d:
        raise ExportError(f"The template's head takes {list(np.asarray(t_w.shape))[-1]} features; the new head "
                          f"takes {d}. Export without reusing the converted backbone.")
    int8_activations = t_out.type == schema.TensorType.INT8
    t_b = _bias_tensor(model, graph, fc, schema.TensorType.INT32 if int8_activations else schema.TensorType.FLOAT32)
    if t_w.type == schema.TensorType.INT8:
        per_channel = t_w.quantization is not None and len(t_w.quantization.scale) > 1
        q, scales = _symmetric(weights, per_channel)
        t_w.quantization = _quantization(scales, np.zeros(len(scales), np.int64), 0)
        model.buffers[t_w.buffer].data = bytearray(q.tobytes())
    elif t_w.type == schema.TensorType.FLOAT32:
        scales = None
        model.buffers[t_w.buffer].data = bytearray(weights.astype("<f4").tobytes())
    else:
        raise ExportError(f"The template's head weights are of TFLite type {t_w.type}; expected int8 or float32.")
    if int8_activations:
        if feature_range is None or logit_range is None or scales is None:
            raise ExportError("A full-integer template needs the new head's feature and logit ranges and int8 weights.")
        in_scale, in_zero = _range_params(*feature_range)
        t_in.quantization = _quantization(in_scale, in_zero)
        bias_scales = in_scale * (scales if len(scales) > 1 else np.full(k, scales[0]))
        q_bias = np.clip(np.round(bias / bias_scales), -(2**31), 2**31 - 1).astype("<i4")
        t_b.quantization = _quantization(bias_scales, np.zeros(len(bias_scales), np.int64), 0)
        model.buffers[t_b.buffer].data = bytearray(q_bias.tobytes())
        out_scale, out_zero = _range_params(*logit_range)
        t_out.quantization = _quantization(out_scale, out_zero)
    elif t_b.type == schema.TensorType.FLOAT32:
        model.buffers[t_b.buffer].data = bytearray(bias.astype("<f4").tobytes())
    else:
        raise ExportError(f"The template's head bias is of TFLite type {t_b.type}; expected float32 here.")
    _set_shape(t_w, [k, d])
    _set_shape(t_b, [k])
    for tensor in (t_out, t_prob):
        _set_shape(tensor, [*list(np.asarray(tensor.shape))[:-1], k])
    builder = flatbuffers.Builder(len(template_bytes) + 4096)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def int8_ranges(features: np.ndarray, kernel: np.ndarray, bias: np.ndarray) -> tuple[tuple, tuple]:
    """(feature range, logit range) of a Dense head on its calibration samples' features."""
    features = np.asarray(features, np.float32)
    logits = features @ np.asarray(kernel, np.float32) + np.asarray(bias, np.float32)
    return (float(features.min()), float(features.max())), (float(logits.min()), float(logits.max()))


def writer(key: tuple, model: Any, quantization: str, kernel: np.ndarray, bias: np.ndarray,
           template_samples: Callable[[], np.ndarray] | None = None, features: np.ndarray | None = None,
           allow_flex: bool = False) -> Callable:
    """An ``ExportPlan.write``: the template for ``key`` (``model`` converted once, int8
    calibrated on ``template_samples()``) with the head ``kernel``/``bias`` written into it; for
    int8, ``features`` are the head's inputs on the new model's own calibration samples."""
    if quantization not in ("int8", "dynamic"):
        raise ExportError(f"Reusing a converted backbone covers int8 and dynamic files. Received {quantization!r}.")
    if quantization == "int8" and (features is None or template_samples is None):
        raise ExportError("An int8 file with another head needs calibration features and template samples.")

    def write(path) -> dict:
        from ..storage import atomic_write_bytes
        from .export import convert, tflite_entry

        fresh = not has_template(key)
        base = template(key, lambda: convert(model, quantization, template_samples() if quantization == "int8"
                                             else None, allow_flex))
        ranges = int8_ranges(features, kernel, bias) if quantization == "int8" else (None, None)
        entry = tflite_entry(atomic_write_bytes(path, swap_head(base, kernel, bias, *ranges)), quantization)
        entry["conversion"] = ("the frozen backbone converted " + ("now" if fresh else "earlier in this process")
                               + (" (int8 calibrated on generic photos; the head's ranges on this model's samples)"
                                  if quantization == "int8" else "") + ", this model's head written into it")
        return entry

    return write
