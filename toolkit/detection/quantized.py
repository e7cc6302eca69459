"""int8-aware head training without TFMOT (which does not take Keras 3 models): the backbone's
features as the phone's int8 ``.tflite`` computes them.

The detector's head trains on cached backbone features (see :mod:`.detector`). With
``quantized_features`` > 0, that share of the cached training examples is computed by the backbone
converted to int8 (calibrated on the same training photos the exported file is calibrated on, so
its tensors get the same scales) and dequantized: the head then learns on the features the int8
file feeds it, rounding included, while the Keras model keeps its float backbone.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np


def pixel_features(image_size: int, features):
    """Raw 0-255 pixels -> the backbone's [stride-16, stride-32] maps, rescaling inside (the front
    of :func:`.model.build_detector`, so int8 conversion quantizes it as in the exported file)."""
    import keras
    from keras import layers

    from ..transfer import efficientnet_lite as lite

    pixels = keras.Input((image_size, image_size, 3), name="pixels")
    x = layers.Rescaling(1.0 / lite.STD, -lite.MEAN / lite.STD, name="rescale")(pixels)
    return keras.Model(pixels, features(x), name="pixel_features")


def int8_features(features, image_size: int, calibration: np.ndarray, images: list[np.ndarray],
                  chunk: int = 32) -> list[np.ndarray]:
    """[stride-16, stride-32] features (float16) of ``images`` (photos of any size, stretched to
    the model's input) through the int8 backbone calibrated on ``calibration`` ((N, S, S, 3) raw
    pixels, what the export calibrates on)."""
    import warnings

    from ..edge.export import convert
    from ..edge.runner import LiteRTSession
    from .data import resized

    model = pixel_features(image_size, features)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data = convert(model, "int8", calibration)
    with tempfile.TemporaryDirectory(prefix="int8-backbone-") as tmp:
        path = Path(tmp) / "backbone_int8.tflite"
        path.write_bytes(data)
        session = LiteRTSession(path)
        fine, coarse = [], []
        for i in range(0, len(images), chunk):
            outs = session.run_all(np.stack([resized(im, image_size) for im in images[i:i + chunk]]))
            outs = sorted(outs, key=lambda a: a.shape[-1])  # 112 channels (stride 16), then 1280 (stride 32)
            fine.append(outs[0].astype(np.float16)), coarse.append(outs[1].astype(np.float16))
        del session
    return [np.concatenate(fine), np.concatenate(coarse)]
