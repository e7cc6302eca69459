"""Make your own tab: the examples of the page's class rows and of the API's (files or sentences with
their labels, a CSV of sentences) as ``{class name: examples}`` for ``toolkit.make_your_own``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from apps.common import data_error, upload_path

KINDS = {"Images": "image", "Sentences": "text", "Recordings": "audio"}


def lines_of(text: Any) -> list[str]:
    if text in (None, ""):
        return []
    if not isinstance(text, str):
        raise data_error(f"Expected sentences as text, one per line. Received {type(text).__name__}.")
    return [line for line in text.splitlines() if line.strip()]


def files_of(uploads: Any) -> list[Path]:
    if uploads in (None, ""):
        return []
    items = uploads if isinstance(uploads, (list, tuple)) else [uploads]
    return [p for p in (upload_path(u) for u in items) if p is not None]


def class_examples(kind: str, name: Any, uploads: Any = None, shots: Any = None, sentences: Any = None) -> list:
    """One class's examples from the page: image or recording files (a .zip of photos is opened,
    checked), webcam shots or microphone takes (files of the session), or sentences (one per line)."""
    from toolkit.make_your_own import images_from_zip

    if kind == "text":
        return lines_of(sentences)
    items: list = []
    for path in files_of(uploads):
        if path.suffix.lower() == ".zip" and kind == "audio":
            raise data_error(f"{path.name}: a zip holds photos. Upload recordings as files (WAV, FLAC, OGG, MP3).")
        if path.suffix.lower() == ".zip":
            items += [data for data, _ in images_from_zip(path)]
        else:
            items.append(path)
    items += [Path(p) for p in (shots or []) if Path(p).suffix == (".wav" if kind == "audio" else ".png")]
    return items


def collect(kind: str, names: list, uploads: list, shots: list, sentences: list, csv: Any = None) -> dict:
    """{class name: examples} from the page's class rows (rows with no name and no examples are
    left out, a row with examples but no name is refused) and, for sentences, a CSV of text and
    label columns (its classes join the rows' classes of the same name)."""
    from toolkit.make_your_own import sentences_from_csv

    examples: dict = {}
    for i, name in enumerate(names):
        items = class_examples(kind, name, uploads[i], shots[i], sentences[i])
        name = name.strip() if isinstance(name, str) else ""
        if not name and not items:
            continue
        if not name:
            raise data_error(f"Class row {i + 1} has examples but no name. Type the class's name.")
        if name in examples:  # the exact same name twice: the toolkit's check names both
            examples[name + " "] = items
        else:
            examples[name] = items
    path = upload_path(csv) if kind == "text" and csv not in (None, "") else None
    for name, texts in (sentences_from_csv(path) if path is not None else {}).items():
        examples[name] = examples.get(name, []) + texts
    return examples


def kind_of(kind: Any) -> str:
    if kind in KINDS.values():
        return kind
    if kind not in KINDS:
        raise data_error(f"Expected the kind of examples as one of {list(KINDS)}. Received {kind!r}.")
    return KINDS[kind]


def pairs(items: list, labels: Any, what: str) -> dict:
    """{label: [items]} from parallel lists (the API's items and their labels, one per line or comma)."""
    if isinstance(labels, str):
        labels = [s.strip() for s in labels.replace(",", "\n").splitlines() if s.strip()]
    labels = list(labels or [])
    if len(labels) != len(items):
        raise data_error(f"Expected one label per {what}. Received {len(items)} {what}s and {len(labels)} labels. "
                         "Give the labels in the same order, separated by commas or new lines.")
    examples: dict = {}
    for item, label in zip(items, labels):
        examples.setdefault(label, []).append(item)
    return examples
