"""Edge deployment: TFLite export with quantization presets, the LiteRT runner, and compression
(pruning, clustering, quantization-aware training) through tensorflow-model-optimization.

``compress`` and ``compression_report`` load :mod:`toolkit.edge.compression` (and with it
tf_keras and TFMOT) on first call, never at import.
"""

from .export import QUANTIZATIONS, convert, tflite_filename, write_tflite
from .runner import LiteRTSession, TFLiteModel

__all__ = ["QUANTIZATIONS", "LiteRTSession", "TFLiteModel", "compress", "compression_report", "convert", "tflite_filename",
           "write_tflite"]


def __getattr__(name: str):
    if name in ("compress", "compression_report"):
        from . import compression

        return getattr(compression, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
