"""The task registry: registered names (and older aliases) -> task classes.

Below :mod:`toolkit.base` on purpose: the LiteRT runners find a ``.tflite`` file's task from its
card here without importing the Task base class (which imports the TFLite converter).
"""

from __future__ import annotations

import importlib
from .errors import ModelFormatError

TASKS: dict[str, type] = {}
#: Older names (in cards written by earlier versions, and the CLI's short names) -> registered names.
ALIASES: dict[str, str] = {}
# packages whose import registers their tasks
TASK_MODULES = ("toolkit.vision", "toolkit.nlp", "toolkit.timeseries", "toolkit.generative", "toolkit.rl",
                "toolkit.audio", "toolkit.detection")


def registered_tasks() -> dict[str, type]:
    """Every task, by the name its cards record (importing the task packages registers them)."""
    for module in TASK_MODULES:
        importlib.import_module(module)
    return TASKS


def task_class(name: str | None) -> type:
    """The task class registered under ``name`` (the ``task`` field of a card, or an older alias)."""
    tasks = TASKS if name in TASKS or name in ALIASES else registered_tasks()
    name = ALIASES.get(name, name) if isinstance(name, str) else name
    if name not in tasks:
        raise ModelFormatError(f"Unknown task {name!r} in the card. This toolkit knows {sorted(tasks)}.")
    return tasks[name]
