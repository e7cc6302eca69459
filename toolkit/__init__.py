"""Keras 3 application toolkit: train with transfer learning, explain, demo, and ship to phones.

Heavy modules (TensorFlow, Keras, Gradio) load on first use, so ``import toolkit`` and
``toolkit --help`` stay fast.
"""

from __future__ import annotations

import importlib
import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"

_EXPORTS = {
    "ImageClassifier": "toolkit.vision",
    "ImageClassifierConfig": "toolkit.vision",
    "TextClassifier": "toolkit.nlp",
    "TextClassifierConfig": "toolkit.nlp",
    "DateTranslator": "toolkit.nlp",
    "DateTranslatorConfig": "toolkit.nlp",
    "Forecaster": "toolkit.timeseries",
    "ForecasterConfig": "toolkit.timeseries",
    "AnomalyDetector": "toolkit.timeseries",
    "AnomalyDetectorConfig": "toolkit.timeseries",
    "VAE": "toolkit.generative",
    "VAEConfig": "toolkit.generative",
    "GAN": "toolkit.generative",
    "GANConfig": "toolkit.generative",
    "Denoiser": "toolkit.generative",
    "DenoiserConfig": "toolkit.generative",
    "DQNAgent": "toolkit.rl",
    "DQNConfig": "toolkit.rl",
    "A2CAgent": "toolkit.rl",
    "A2CConfig": "toolkit.rl",
    "TFLitePolicy": "toolkit.rl",
    "AudioClassifier": "toolkit.audio",
    "AudioClassifierConfig": "toolkit.audio",
    "load_text": "toolkit.data",
    "load_series": "toolkit.data",
    "Task": "toolkit.base",
    "load": "toolkit.base",
    "TASKS": "toolkit.base",
    "TFLiteModel": "toolkit.edge",
    "Explanation": "toolkit.explain",
    "get_backbone": "toolkit.transfer",
    "BACKBONES": "toolkit.transfer",
    "load_digits": "toolkit.data",
    "load_image_folder": "toolkit.data",
    "load_splits": "toolkit.data",
    "ToolkitError": "toolkit.errors",
    "DataError": "toolkit.errors",
    "ModelFormatError": "toolkit.errors",
    "NotFittedError": "toolkit.errors",
    "ExportError": "toolkit.errors",
    "WeightsUnavailableError": "toolkit.errors",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'toolkit' has no attribute {name!r}")


def __dir__():
    return __all__
