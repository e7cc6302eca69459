"""NLP: text classification (from scratch or a pretrained encoder) and seq2seq date translation.

Importing the package registers both tasks (toolkit.base.TASK_MODULES lists it); TensorFlow
and KerasHub load on first use.
"""

from .classifier import TextClassifier, TextClassifierConfig
from .dates import DateTranslator, DateTranslatorConfig, TFLiteDateTranslator, generate_dates

__all__ = [
    "DateTranslator",
    "DateTranslatorConfig",
    "TFLiteDateTranslator",
    "TextClassifier",
    "TextClassifierConfig",
    "generate_dates",
]
