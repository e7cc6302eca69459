"""NLP: text classification (from scratch or a pretrained encoder) and seq2seq date translation."""

from __future__ import annotations

import importlib

_EXPORTS = {
    "TextClassifier": "toolkit.nlp.classifier",
    "TextClassifierConfig": "toolkit.nlp.classifier",
    "DateTranslator": "toolkit.nlp.dates",
    "DateTranslatorConfig": "toolkit.nlp.dates",
    "generate_dates": "toolkit.nlp.dates",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'toolkit.nlp' has no attribute {name!r}")


# Importing the package registers its tasks (toolkit.base.TASK_MODULES lists it).
for _module in ("toolkit.nlp.classifier", "toolkit.nlp.dates"):
    try:
        importlib.import_module(_module)
    except ModuleNotFoundError as _exc:  # a module still being written
        if _exc.name != _module:
            raise
