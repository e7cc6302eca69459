"""Vision: image classification with transfer learning."""

from .classifier import ImageClassifier, ImageClassifierConfig

__all__ = ["ImageClassifier", "ImageClassifierConfig"]
