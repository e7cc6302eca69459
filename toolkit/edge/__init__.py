"""Edge deployment: TFLite export with quantization presets, and the LiteRT runner."""

from .export import QUANTIZATIONS, convert, tflite_filename, write_tflite
from .runner import TFLiteModel

__all__ = ["QUANTIZATIONS", "TFLiteModel", "convert", "tflite_filename", "write_tflite"]
