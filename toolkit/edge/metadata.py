"""TFLite metadata inside the ``.tflite``: labels, input and output description, for phone tooling.

The TFLite metadata format (MediaPipe's / tflite-support's ``metadata_schema.fbs``, file
identifier ``M001``) is a flatbuffer stored in one of the model's buffers and named
``TFLITE_METADATA`` in the model's ``metadata`` list; associated files (the labels) are a zip
archive appended to the end of the ``.tflite``, as the official writers do. MediaPipe's
``metadata_writers`` need MediaPipe's native library (and pull opencv-contrib into the
environment), so the few tables a classifier needs are written and read here with the
``flatbuffers`` package; the model itself is re-packed with LiteRT's generated schema module.

Field numbers follow metadata_schema.fbs (a union takes two slots: its type, then its value).
Everything written here exists since metadata version 1.0.0.
"""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

from ..errors import ModelFormatError
from ..storage import atomic_write_bytes, sha256_file

METADATA_NAME = "TFLITE_METADATA"
METADATA_IDENTIFIER = b"M001"
MODEL_IDENTIFIER = b"TFL3"
MIN_PARSER_VERSION = "1.0.0"
LABELS_FILE = "labels.txt"
DESCRIPTIONS, TENSOR_AXIS_LABELS, TENSOR_VALUE_LABELS = 1, 2, 3  # AssociatedFileType
FEATURE_REFERENCE = "ood_features.npz"  # toolkit.calibration.FEATURE_FILE
COLOR_SPACES = {1: "GRAYSCALE", 3: "RGB"}
_COLOR_CODES = {"RGB": 1, "GRAYSCALE": 2}
_IMAGE_PROPERTIES, _NORMALIZATION = 2, 1  # ContentProperties / ProcessUnitOptions union codes
_FEATURE_PROPERTIES, _BOUNDING_BOX_PROPERTIES = 1, 3  # ContentProperties union codes
BOX_TYPES = {0: "UNKNOWN", 1: "BOUNDARIES", 2: "UPPER_LEFT", 3: "CENTER"}  # BoundingBoxType
COORDINATE_TYPES = {0: "RATIO", 1: "PIXEL"}  # CoordinateType
#: the four outputs of a detector, as TFLite detection APIs name them (the Task Library's ObjectDetector)
DETECTION_OUTPUTS = ("location", "category", "score", "number of detections")


# ---------------------------------------------------------------------- writing


def classifier_metadata(card: dict, name: str = "ImageClassifier", version: str = "",
                        outputs: tuple[str, ...] = ("probabilities",)) -> bytes:
    """The metadata flatbuffer of a classifier from its card: ``labels``, ``input`` (shape, range,
    description) and ``output``. Image inputs get their colour space, size, value range and an
    identity normalization (the model rescales raw pixels itself). ``version``: default the
    toolkit version in the card. ``outputs``: the file's output names in its order; a
    ``features`` output (pooled features for the "not sure" check) is described with the card's
    feature-distance threshold and the reference file packed beside the labels."""
    import flatbuffers

    version = version or str(card.get("versions", {}).get("toolkit", ""))

    b = flatbuffers.Builder(1024)
    labels_file = _table(b, [(0, b.CreateString(LABELS_FILE)),
                             (1, b.CreateString("Labels of the output's classes, one a line, in index order.")),
                             (2, ("int8", TENSOR_AXIS_LABELS))])
    inp, out = card.get("input", {}), card.get("output", {})
    input_fields = [(0, b.CreateString("image" if len(inp.get("shape", [])) == 3 else "input")),
                    (1, b.CreateString(str(inp.get("description", ""))))]
    shape = inp.get("shape", [])
    low, high = (inp.get("range") or [0, 255])[:2]
    if len(shape) == 3:
        size = _table(b, [(0, ("uint32", shape[1])), (1, ("uint32", shape[0]))])
        colour = COLOR_SPACES.get(int(shape[2]), "UNKNOWN")
        props = _table(b, [(0, ("int8", _COLOR_CODES.get(colour, 0))), (1, size)])
        value_range = _table(b, [(0, ("int32", int(low))), (1, ("int32", int(high)))])
        content = _table(b, [(0, ("uint8", _IMAGE_PROPERTIES)), (1, props), (2, value_range)])
        norm = _table(b, [(0, _floats(b, [0.0])), (1, _floats(b, [1.0]))])
        unit = _table(b, [(0, ("uint8", _NORMALIZATION)), (1, norm)])
        input_fields += [(3, content), (4, _vector(b, [unit]))]
    stats = _table(b, [(0, _floats(b, [float(high)])), (1, _floats(b, [float(low)]))])
    input_meta = _table(b, input_fields + [(5, stats)])
    output_meta = _table(b, [(0, b.CreateString("probability")),
                             (1, b.CreateString(str(out.get("description", "class probabilities")))),
                             (5, _table(b, [(0, _floats(b, [1.0])), (1, _floats(b, [0.0]))])),
                             (6, _vector(b, [labels_file]))])
    metas = {"features": _features_meta(b, card)} if "features" in outputs else {}
    output_metas = [metas.get(o, output_meta) for o in outputs]
    subgraph = _table(b, [(2, _vector(b, [input_meta])), (3, _vector(b, output_metas))])
    labels = card.get("labels", [])
    description = f"{card.get('task', 'classifier')}: {len(labels)} classes ({', '.join(map(str, labels[:10]))}" + (
        ", ...)" if len(labels) > 10 else ")")
    root = _table(b, [(0, b.CreateString(name)), (1, b.CreateString(description)),
                      (2, b.CreateString(version)), (3, _vector(b, [subgraph])),
                      (4, b.CreateString("keras-app-toolkit")),
                      (7, b.CreateString(MIN_PARSER_VERSION))])
    b.Finish(root, file_identifier=METADATA_IDENTIFIER)
    return bytes(b.Output())


def _image_input_meta(b, card: dict, note: str = "") -> int:
    """An image input's TensorMetadata: colour space, size, value range, identity normalization
    (``note``: added to the card's description)."""
    inp = card.get("input", {})
    shape = inp.get("shape", [])
    low, high = (inp.get("range") or [0, 255])[:2]
    size = _table(b, [(0, ("uint32", shape[1])), (1, ("uint32", shape[0]))])
    props = _table(b, [(0, ("int8", _COLOR_CODES.get(COLOR_SPACES.get(int(shape[2]), "UNKNOWN"), 0))), (1, size)])
    value_range = _table(b, [(0, ("int32", int(low))), (1, ("int32", int(high)))])
    content = _table(b, [(0, ("uint8", _IMAGE_PROPERTIES)), (1, props), (2, value_range)])
    unit = _table(b, [(0, ("uint8", _NORMALIZATION)),
                      (1, _table(b, [(0, _floats(b, [0.0])), (1, _floats(b, [1.0]))]))])
    stats = _table(b, [(0, _floats(b, [float(high)])), (1, _floats(b, [float(low)]))])
    return _table(b, [(0, b.CreateString("image")), (1, b.CreateString(str(inp.get("description", "")) + note)),
                      (3, content), (4, _vector(b, [unit])), (5, stats)])


def detection_metadata(card: dict, order: tuple[str, ...] = ("boxes", "classes", "scores", "count"),
                       name: str = "ObjectDetector", version: str = "", input_dtype: str = "float32") -> bytes:
    """The metadata flatbuffer of a detector with decoding and NMS inside, as the TFLite
    detection APIs read it: the image input (as :func:`classifier_metadata` writes it) and four
    outputs named :data:`DETECTION_OUTPUTS`: ``location`` (1, K, 4) boxes [ymin, xmin, ymax, xmax]
    as ratios of the image (BoundingBoxProperties: BOUNDARIES, index [1, 0, 3, 2], RATIO),
    ``category`` (1, K) class indices as floats (the labels file, one class a line, as
    TENSOR_VALUE_LABELS), ``score`` (1, K) in [0, 1] (0 = padding) and ``number of detections``
    (1,), all four float32 (as the Task Library requires). ``order``: the file's outputs in its order,
    by the names boxes/classes/scores/count. ``input_dtype``: the file's input, ``uint8`` (an int8 file:
    raw pixels 0-255 as they are; normalization is for float inputs only) or ``float32`` (identity
    normalization, which the Task Library requires of a float input: the model rescales itself)."""
    import flatbuffers

    version = version or str(card.get("versions", {}).get("toolkit", ""))
    labels = [str(label) for label in card.get("labels", [])]
    if not labels:
        raise ModelFormatError("Expected class labels to write into the detector's .tflite metadata. Received none "
                               "in the card. Export a detector fitted on labelled boxes.")
    if sorted(order) != sorted(("boxes", "classes", "scores", "count")):
        raise ModelFormatError(f"Expected the detector's outputs boxes, classes, scores and count. Received {order}.")
    b = flatbuffers.Builder(1024)
    axis = _table(b, [(0, ("int32", 2)), (1, ("int32", 2))])  # the objects' values lie on axis 2

    def feature_content():
        return _table(b, [(0, ("uint8", _FEATURE_PROPERTIES)), (1, _table(b, [])), (2, axis)])

    box_props = _table(b, [(0, _uints(b, [1, 0, 3, 2])), (1, ("int8", 1)), (2, ("int8", 0))])
    box_content = _table(b, [(0, ("uint8", _BOUNDING_BOX_PROPERTIES)), (1, box_props), (2, axis)])
    labels_file = _table(b, [(0, b.CreateString(LABELS_FILE)),
                             (1, b.CreateString("Class names, one a line: line i names category value i.")),
                             (2, ("int8", TENSOR_VALUE_LABELS))])
    k = int(card.get("config", {}).get("max_detections", 0)) or "K"
    metas = {
        "boxes": _table(b, [(0, b.CreateString(DETECTION_OUTPUTS[0])), (1, b.CreateString(
            f"Boxes (1, {k}, 4) of the detections, sorted by score: [ymin, xmin, ymax, xmax] as ratios of the "
            "input image's height and width (0 to 1, not pixels); padding rows are [0, 0, 0, 0].")),
                            (3, box_content),
                            (5, _table(b, [(0, _floats(b, [1.0])), (1, _floats(b, [0.0]))]))]),
        "classes": _table(b, [(0, b.CreateString(DETECTION_OUTPUTS[1])), (1, b.CreateString(
            f"Class of each box (1, {k}) as a float index into {LABELS_FILE} (0-based; {len(labels)} classes: "
            f"{', '.join(labels[:10])}{', ...' if len(labels) > 10 else ''}).")),
                              (3, feature_content()), (6, _vector(b, [labels_file]))]),
        "scores": _table(b, [(0, b.CreateString(DETECTION_OUTPUTS[2])), (1, b.CreateString(
            f"Score of each box (1, {k}), 0 to 1, descending; 0 marks padding after the last detection.")),
                             (3, feature_content()),
                             (5, _table(b, [(0, _floats(b, [1.0])), (1, _floats(b, [0.0]))]))]),
        "count": _table(b, [(0, b.CreateString(DETECTION_OUTPUTS[3])), (1, b.CreateString(
            "Number of valid detections (1,) as a float: the first rows of the other outputs.")),
                            (3, _table(b, [(0, ("uint8", _FEATURE_PROPERTIES)), (1, _table(b, []))]))]),
    }
    if input_dtype not in ("uint8", "float32"):
        raise ModelFormatError(f"Expected a detector file with a uint8 or float32 input. Received {input_dtype!r}: "
                               "phone detection APIs take no other; export it again.")
    note = {"uint8": "; uint8 0-255 as they are (scale 1, zero point 0)",
            "float32": "; float32 0-255 (normalization: mean 0, std 1)"}[input_dtype]
    subgraph = _table(b, [(2, _vector(b, [_image_input_meta(b, card, note)])),
                          (3, _vector(b, [metas[o] for o in order]))])
    description = (f"object_detector: {len(labels)} classes ({', '.join(labels[:10])}{', ...' if len(labels) > 10 else ''})"
                   "; decoding and non-maximum suppression inside the file (builtin ops).")
    root = _table(b, [(0, b.CreateString(name)), (1, b.CreateString(description)), (2, b.CreateString(version)),
                      (3, _vector(b, [subgraph])), (4, b.CreateString("keras-app-toolkit")),
                      (7, b.CreateString(MIN_PARSER_VERSION))])
    b.Finish(root, file_identifier=METADATA_IDENTIFIER)
    return bytes(b.Output())


def feature_rule(card: dict) -> str:
    """How the "not sure" check reads the ``features`` output, from the card's calibration."""
    cal = card.get("calibration") or {}
    threshold = (cal.get("threshold") or {}).get("feature_distance")
    return ("Pooled backbone features. 'Not sure / looks unlike the training images' when the Mahalanobis "
            "distance of the L2-normalised features to the nearest class mean (class means, PPCA components, "
            f"variances and noise variance in {FEATURE_REFERENCE}), divided by the number of features, is above "
            f"{threshold if threshold is not None else 'the card threshold'}; also when the top probability, "
            f"softmax(log(p) / {cal.get('temperature', 1.0)}), is below "
            f"{(cal.get('threshold') or {}).get('max_probability', 0.0)}.")


def _features_meta(b, card: dict) -> int:
    reference = _table(b, [(0, b.CreateString(FEATURE_REFERENCE)),
                           (1, b.CreateString("numpy .npz: class_means (C, D), components (k, D), variances (k,), "
                                              "noise_variance")),
                           (2, ("int8", DESCRIPTIONS))])
    return _table(b, [(0, b.CreateString("features")), (1, b.CreateString(feature_rule(card))),
                      (6, _vector(b, [reference]))])


def embed_metadata(path: str | os.PathLike, metadata: bytes, files: dict[str, bytes]) -> Path:
    """Write ``metadata`` into the ``.tflite`` at ``path`` (replacing earlier metadata) and append
    ``files`` (name -> bytes) as the zip the metadata's associated files name; atomic."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    path = Path(path)
    raw = _model_bytes(path.read_bytes())
    model = schema.ModelT.InitFromObj(schema.Model.GetRootAs(raw, 0))
    buffer = schema.BufferT()
    buffer.data = bytearray(metadata)
    model.metadata = list(model.metadata or [])
    old = [m for m in model.metadata if m.name in (METADATA_NAME, METADATA_NAME.encode())]
    if old:
        model.buffers[old[0].buffer] = buffer
    else:
        model.buffers = list(model.buffers or []) + [buffer]
        entry = schema.MetadataT()
        entry.name, entry.buffer = METADATA_NAME, len(model.buffers) - 1
        model.metadata.append(entry)
    builder = flatbuffers.Builder(len(raw) + len(metadata) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=MODEL_IDENTIFIER)
    out = io.BytesIO(bytes(builder.Output()))
    out.seek(0, io.SEEK_END)
    with zipfile.ZipFile(out, "a") as archive:  # stored, not compressed, as the official writers do
        for name, data in files.items():
            archive.writestr(name, data)
    return atomic_write_bytes(path, out.getvalue())


def write_classifier_metadata(path: str | os.PathLike, card: dict, version: str = "",
                              files: dict[str, bytes] | None = None) -> dict:
    """Embed a classifier's metadata and labels (and ``files``, e.g. the "not sure" feature
    reference of a file with a ``features`` output) into its ``.tflite``; returns the card
    entry's updated facts (``metadata``, ``size_bytes``, ``sha256``)."""
    from .runner import LiteRTSession

    labels = [str(label) for label in card.get("labels", [])]
    if not labels:
        raise ModelFormatError("Expected class labels to write into the .tflite metadata. Received none in the "
                               "card. Export a classifier that was fitted on labelled data.")
    name = "ImageClassifier" if card.get("input", {}).get("shape") and len(card["input"]["shape"]) == 3 else \
        "Classifier"
    outputs = tuple(LiteRTSession(path).signature_output_names)
    path = embed_metadata(path, classifier_metadata(card, name, version, outputs),
                          {LABELS_FILE: "\n".join(labels) + "\n", **(files or {})})
    return {"metadata": True, "size_bytes": path.stat().st_size, "sha256": sha256_file(path)}


def _table(b, fields: list) -> int:
    """A table of (slot, value) fields: offsets, or (scalar type, value)."""
    b.StartObject(max(slot for slot, _ in fields) + 1 if fields else 0)
    for slot, value in fields:
        if isinstance(value, tuple):
            kind, number = value
            {"int8": b.PrependInt8Slot, "uint8": b.PrependUint8Slot, "int32": b.PrependInt32Slot,
             "uint32": b.PrependUint32Slot}[kind](slot, int(number), 0)
        else:
            b.PrependUOffsetTRelativeSlot(slot, value, 0)
    return b.EndObject()


def _vector(b, offsets: list[int]) -> int:
    b.StartVector(4, len(offsets), 4)
    for offset in reversed(offsets):
        b.PrependUOffsetTRelative(offset)
    return b.EndVector()


def _uints(b, values: list[int]) -> int:
    b.StartVector(4, len(values), 4)
    for v in reversed(values):
        b.PrependUint32(int(v))
    return b.EndVector()


def _floats(b, values: list[float]) -> int:
    b.StartVector(4, len(values), 4)
    for v in reversed(values):
        b.PrependFloat32(float(v))
    return b.EndVector()


def _model_bytes(data: bytes) -> bytes:
    if data[4:8] != MODEL_IDENTIFIER:
        raise ModelFormatError(f"Expected a TFLite flatbuffer (identifier {MODEL_IDENTIFIER!r}). Received a file "
                               f"with {data[4:8]!r}. Export the model again.")
    return data


# ---------------------------------------------------------------------- reading


def read_metadata(path: str | os.PathLike) -> dict | None:
    """The TFLite metadata of a ``.tflite`` as a dict (None when it has none): name, description,
    version, author, min_parser_version, and per input/output tensor its name, description,
    content (colour space, size, value range), normalization, stats and associated files; plus
    ``files`` (the names in the appended zip) and ``labels`` (the output's label file's lines)."""
    from ai_edge_litert import schema_py_generated as schema

    data = Path(path).read_bytes()
    model = schema.Model.GetRootAs(_model_bytes(data), 0)
    buffer_index = next((model.Metadata(i).Buffer() for i in range(model.MetadataLength())
                         if model.Metadata(i).Name() == METADATA_NAME.encode()), None)
    if buffer_index is None:
        return None
    raw = model.Buffers(buffer_index).DataAsNumpy().tobytes()
    if raw[4:8] != METADATA_IDENTIFIER:
        raise ModelFormatError(f"The {METADATA_NAME} buffer of {path} is not TFLite metadata (identifier "
                               f"{raw[4:8]!r}, expected {METADATA_IDENTIFIER!r}).")
    root = _root(raw)
    subgraph = _tables(root, 3)[0]
    out = {"name": _string(root, 0), "description": _string(root, 1), "version": _string(root, 2),
           "author": _string(root, 4), "min_parser_version": _string(root, 7),
           "inputs": [_tensor(t) for t in _tables(subgraph, 2)],
           "outputs": [_tensor(t) for t in _tables(subgraph, 3)]}
    files = associated_files(data)
    out["files"] = sorted(files)
    label_files = [f["name"] for t in out["outputs"] for f in t["associated_files"]
                   if f["type"] in (TENSOR_AXIS_LABELS, TENSOR_VALUE_LABELS)]
    out["labels"] = files[label_files[0]].decode("utf-8").splitlines() if label_files and label_files[0] in files \
        else []
    return out


def associated_files(data: bytes) -> dict[str, bytes]:
    """The files zipped onto the end of a ``.tflite`` (name -> bytes; empty when there are none)."""
    buffer = io.BytesIO(data)
    if not zipfile.is_zipfile(buffer):
        return {}
    with zipfile.ZipFile(buffer) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def _root(raw: bytes):
    import flatbuffers

    return flatbuffers.table.Table(bytearray(raw), flatbuffers.encode.Get(flatbuffers.packer.uoffset, raw, 0))


def _field(tab, slot: int) -> int:
    return tab.Offset(4 + 2 * slot)


def _string(tab, slot: int) -> str:
    o = _field(tab, slot)
    return tab.String(o + tab.Pos).decode("utf-8") if o else ""


def _scalar(tab, slot: int, flags, default=0):
    o = _field(tab, slot)
    return tab.Get(flags, o + tab.Pos) if o else default


def _sub(tab, slot: int):
    import flatbuffers

    o = _field(tab, slot)
    return flatbuffers.table.Table(tab.Bytes, tab.Indirect(o + tab.Pos)) if o else None


def _tables(tab, slot: int) -> list:
    import flatbuffers

    o = _field(tab, slot)
    if not o:
        return []
    start = tab.Vector(o)
    return [flatbuffers.table.Table(tab.Bytes, tab.Indirect(start + 4 * i)) for i in range(tab.VectorLen(o))]


def _float_list(tab, slot: int) -> list[float]:
    import flatbuffers

    o = _field(tab, slot)
    if not o:
        return []
    start = tab.Vector(o)
    return [tab.Get(flatbuffers.number_types.Float32Flags, start + 4 * i) for i in range(tab.VectorLen(o))]


def _uint_list(tab, slot: int) -> list[int]:
    import flatbuffers

    o = _field(tab, slot)
    if not o:
        return []
    start = tab.Vector(o)
    return [tab.Get(flatbuffers.number_types.Uint32Flags, start + 4 * i) for i in range(tab.VectorLen(o))]


def _tensor(tab) -> dict:
    from flatbuffers import number_types as n

    out = {"name": _string(tab, 0), "description": _string(tab, 1), "content": None, "normalization": None,
           "stats": None, "associated_files": []}
    content = _sub(tab, 3)
    if content is not None and _scalar(content, 0, n.Uint8Flags) == _IMAGE_PROPERTIES:
        props, value_range = _sub(content, 1), _sub(content, 2)
        size = _sub(props, 1)
        code = _scalar(props, 0, n.Int8Flags)
        out["content"] = {
            "color_space": {v: k for k, v in _COLOR_CODES.items()}.get(code, "UNKNOWN"),
            "size": [_scalar(size, 1, n.Uint32Flags), _scalar(size, 0, n.Uint32Flags)] if size else None,
            "range": [_scalar(value_range, 0, n.Int32Flags), _scalar(value_range, 1, n.Int32Flags)]
            if value_range else None}
    if content is not None and _scalar(content, 0, n.Uint8Flags) == _BOUNDING_BOX_PROPERTIES:
        props = _sub(content, 1)
        out["content"] = {"bounding_box": {"index": _uint_list(props, 0),
                                           "type": BOX_TYPES.get(_scalar(props, 1, n.Int8Flags), "UNKNOWN"),
                                           "coordinate_type": COORDINATE_TYPES.get(_scalar(props, 2, n.Int8Flags))}}
    elif content is not None and _scalar(content, 0, n.Uint8Flags) == _FEATURE_PROPERTIES:
        out["content"] = {"feature": True}
    value_range = _sub(content, 2) if content is not None else None
    if value_range is not None and out["content"] and "color_space" not in out["content"]:
        out["content"]["range"] = [_scalar(value_range, 0, n.Int32Flags), _scalar(value_range, 1, n.Int32Flags)]
    for unit in _tables(tab, 4):
        if _scalar(unit, 0, n.Uint8Flags) == _NORMALIZATION:
            options = _sub(unit, 1)
            out["normalization"] = {"mean": _float_list(options, 0), "std": _float_list(options, 1)}
    stats = _sub(tab, 5)
    if stats is not None:
        out["stats"] = {"max": _float_list(stats, 0), "min": _float_list(stats, 1)}
    out["associated_files"] = [{"name": _string(f, 0), "description": _string(f, 1),
                                "type": _scalar(f, 2, n.Int8Flags)} for f in _tables(tab, 6)]
    return out
