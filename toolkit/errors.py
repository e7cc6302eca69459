"""Errors that tell the user what was expected, what was received and what to do.

Every error the toolkit raises on bad input is a :class:`ToolkitError`, so the CLI can print
it without a traceback and the Gradio apps can turn it into a message in the browser.
"""

from __future__ import annotations

__all__ = [
    "ToolkitError",
    "DataError",
    "ModelFormatError",
    "NotFittedError",
    "ExportError",
    "QuantizationError",
    "WeightsUnavailableError",
    "OutputError",
]


class ToolkitError(Exception):
    """Base class of every error the toolkit raises on purpose."""


class DataError(ToolkitError, ValueError):
    """Input data is missing, unreadable or of the wrong shape, type or range."""


class ModelFormatError(ToolkitError):
    """A saved model folder is incomplete, tampered with or not a toolkit model."""


class NotFittedError(ToolkitError, AttributeError):
    """A method that needs a trained model was called before ``fit`` or ``load``."""


class ExportError(ToolkitError):
    """A model could not be converted to TFLite under the requested constraints."""


class QuantizationError(ExportError, ValueError):
    """A quantization preset the task does not export (an export error, and a bad argument value)."""


class WeightsUnavailableError(ToolkitError):
    """Pretrained weights could not be downloaded or read."""


class OutputError(ToolkitError):
    """A result could not be written where asked (a folder that cannot be made or written to, a
    file type the writer does not make)."""
