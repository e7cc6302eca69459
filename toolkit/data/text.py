"""Text data: CSV/TSV tables, ``sentence<TAB>label`` files, folders, (texts, labels) pairs, and
the built-in online sets ``uci_sentiment`` and ``imdb``; their stratified splits; and the
checks on texts given at prediction time.

Texts are handed to models as Python strings, verbatim (no stripping or lower-casing: that is
the model's standardisation). Labels may be ints or strings; class ids index ``class_names``.
"""

from __future__ import annotations

import dataclasses
import math
import os
import unicodedata
import warnings
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ..errors import DataError
from .text_files import (
    BUILTIN_TEXT_SETS,
    IMDB_URL,
    MAX_TEXT_CHARS,
    TEXT_EXTENSIONS,
    UCI_SENTIMENT_URL,
    download_text_set,
    is_missing,
    listing,
    read_builtin_text,
    read_text_file,
    read_text_folder,
)

BINARY_CONTROL_SHARE = 0.3


@dataclasses.dataclass
class TextData:
    """A labelled set of texts: ``texts`` verbatim, ``y`` int64 class ids into ``class_names``."""

    texts: list[str]
    y: np.ndarray
    class_names: list[str]
    meta: dict = dataclasses.field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, indices: Sequence[int] | np.ndarray) -> "TextData":
        index = np.asarray(indices, dtype=np.int64).reshape(-1)
        return TextData([self.texts[i] for i in index], self.y[index], list(self.class_names), dict(self.meta))


@dataclasses.dataclass
class TextSplits:
    """Train and test parts of one text source, and how to make them again (``spec``)."""

    train: TextData
    test: TextData
    spec: dict

    @property
    def class_names(self) -> list[str]:
        return self.train.class_names


# --------------------------------------------------------------------------- labels


def _label_key(label: str) -> tuple:
    """Sort key: numbers first in numeric order ("2" before "10"), then strings."""
    try:
        value = float(label)
        if math.isnan(value):
            raise ValueError
        return (0, value, label)
    except ValueError:
        return (1, label.lower(), label)


def sort_labels(labels: Sequence[str]) -> list[str]:
    """Unique label strings in numeric-aware order: ``["10", "2", "b", "A"]`` -> ``["2", "10", "A", "b"]``."""
    return sorted(set(labels), key=_label_key)


def _label_string(value: Any) -> str:
    """A label as a string: ``1``, ``np.int64(1)``, ``1.0`` and ``"1"`` are all ``"1"``."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value).strip()


def _rename_labels(labels: list[str], label_names: Mapping | Sequence | None, where: str) -> list[str]:
    if label_names is None:
        return labels
    if isinstance(label_names, Mapping):
        mapping = {_label_string(k): str(v) for k, v in label_names.items()}
        missing = sort_labels([v for v in set(labels) if v not in mapping])
        if missing:
            raise DataError(
                f"label_names has no name for the labels {missing[:10]} found in {where}. "
                f"It names {sort_labels(list(mapping))}; add the missing ones (e.g. {{{missing[0]!r}: 'name'}})."
            )
        return [mapping[v] for v in labels]
    if isinstance(label_names, (str, bytes)) or not isinstance(label_names, Sequence):
        raise DataError(
            f"Expected label_names as a dict {{label: name}} or a list of names (label i -> names[i]). "
            f"Received {type(label_names).__name__}."
        )
    names = [str(n) for n in label_names]
    out = []
    for v in labels:
        if not v.isdigit() or int(v) >= len(names):
            raise DataError(
                f"label_names is a list of {len(names)} names, so labels must be 0..{len(names) - 1}. "
                f"Received the label {v!r} in {where}. Pass a dict {{label: name}} instead."
            )
        out.append(names[int(v)])
    return out


def _encode_labels(labels: list[str], class_names: Sequence[str] | None, where: str) -> tuple[np.ndarray, list[str]]:
    if class_names is None:
        names = sort_labels(labels)
        if len(names) < 2:
            raise DataError(
                f"{where} has only one class ({names[0]!r} for all {len(labels)} texts). A classifier needs "
                "at least 2 classes: add texts of another class, or check the label column."
            )
    else:
        names = [_label_string(c) for c in class_names]
        if len(set(names)) != len(names):
            raise DataError(f"class_names has duplicates: {names}. Expected each class once.")
        unknown = sort_labels([v for v in set(labels) if v not in set(names)])
        if unknown:
            raise DataError(
                f"{where} has labels that are not among the classes {names}: {unknown[:10]}. "
                "Fix the labels, or pass class_names/label_names that cover them."
            )
    index = {n: i for i, n in enumerate(names)}
    return np.array([index[v] for v in labels], dtype=np.int64), names


# --------------------------------------------------------------------------- decoding


def _truncate(texts: list[str], max_chars: int | None, where: str) -> tuple[list[str], int]:
    if max_chars is None:
        return texts, 0
    if int(max_chars) < 1:
        raise DataError(f"Expected max_chars >= 1. Received {max_chars}.")
    long = sum(len(t) > max_chars for t in texts)
    if long:
        warnings.warn(
            f"{long} text(s) in {where} are longer than {max_chars:,} characters and were cut to their first "
            f"{max_chars:,} characters. Pass a larger max_chars to keep more.",
            stacklevel=3,
        )
        texts = [t[:max_chars] for t in texts]
    return texts, long


def _pair(texts: Any, labels: Any) -> tuple[list[str], list[str]]:
    if isinstance(texts, str) or isinstance(labels, str):
        raise DataError("Expected (texts, labels) as two sequences. Received a string; wrap single texts in a list.")
    try:
        texts, labels = list(texts), list(labels)
    except TypeError as exc:
        raise DataError(
            f"Expected (texts, labels) as two sequences. Received ({type(texts).__name__}, {type(labels).__name__})."
        ) from exc
    if labels and isinstance(labels[0], (list, tuple, np.ndarray)):
        raise DataError("Expected one label per text (class ids or names), not one-hot rows.")
    if len(texts) != len(labels):
        raise DataError(f"Expected one label per text. Received {len(texts)} texts and {len(labels)} labels.")
    if not texts:
        raise DataError("Received no texts. Pass at least 2 labelled texts.")
    out, bad, empty = [], [], []
    for i, t in enumerate(texts):
        if isinstance(t, bytes):
            t = _decode_item(t, f"text {i}")
        if not isinstance(t, str):
            bad.append(f"{i} ({type(t).__name__})")
        elif not t.strip():
            empty.append(i)
        out.append(t)
    if bad:
        raise DataError(f"Expected every text to be a string. Received other types at index {listing(bad, len(bad))}.")
    if empty:
        raise DataError(
            f"{len(empty)} text(s) are empty or whitespace-only: index {listing(empty, len(empty))}. "
            "Remove them or fill in their text."
        )
    missing = [i for i, v in enumerate(labels) if is_missing(v)]
    if missing:
        raise DataError(
            f"{len(missing)} text(s) have no label: index {listing(missing, len(missing))}. Fill in their labels."
        )
    return out, [_label_string(v) for v in labels]


def load_text(
    source: Any,
    text_column: str | None = None,
    label_column: str | None = None,
    class_names: Sequence[str] | None = None,
    label_names: Mapping | Sequence | None = None,
    max_chars: int | None = MAX_TEXT_CHARS,
) -> TextData:
    """Load labelled texts from a file, a folder, a (texts, labels) pair or a built-in name.

    * ``.csv`` / ``.tsv`` / ``.tab``: a table with a header; ``text_column``/``label_column`` name the
      columns (defaults: text/sentence/review/review_text/content and label/labels/sentiment/target/
      class/stars).
    * ``.txt``: ``sentence<TAB>label`` lines (UCI format), read verbatim.
    * a folder of such ``.txt``/``.tsv`` files (one data set, files in name order; README/LICENSE
      and other extensions are skipped and listed in ``meta["ignored_files"]``), or one subfolder
      per class with one ``.txt`` document per file (the aclImdb layout, ``unsup`` skipped).
    * ``(texts, labels)``; ``"uci_sentiment"`` or ``"imdb"`` (downloaded once).

    ``class_names`` fixes the class order (unknown labels are an error); otherwise it is the sorted
    labels, numbers in numeric order. ``label_names`` renames labels first, e.g.
    ``{"0": "negative", "1": "positive"}`` or ``["negative", "positive"]``. Texts longer than
    ``max_chars`` are cut, with one warning.
    """
    load_args = {"text_column": text_column, "label_column": label_column, "max_chars": max_chars}
    if label_names is not None:
        load_args["label_names"] = dict(label_names) if isinstance(label_names, Mapping) else list(label_names)
    if isinstance(source, TextData):
        return _reindex(source, class_names) if class_names is not None else source
    if isinstance(source, tuple) and len(source) == 2:
        texts, labels = _pair(*source)
        where, meta = "the given texts", {"source": "pairs", "format": "pairs"}
    elif isinstance(source, str) and source in BUILTIN_TEXT_SETS:
        texts, labels, meta = read_builtin_text(source)
        where, meta = f"the {source!r} data set", {"source": source, **meta}
    elif isinstance(source, (str, os.PathLike)):
        path = Path(source).expanduser()
        if not path.exists():
            raise DataError(
                f"Text data not found: {str(source)!r}. Expected a .csv/.tsv file with a header, a .txt file of "
                f"'sentence<TAB>label' lines, a folder of such files, or a built-in set: {sorted(BUILTIN_TEXT_SETS)}."
            )
        reader = read_text_folder if path.is_dir() else read_text_file
        texts, labels, meta = reader(path, text_column, label_column)
        where, meta = repr(str(path)), {"source": str(path.resolve()), **meta}
    else:
        raise DataError(
            "Expected text data as a file or folder path, a built-in name "
            f"{sorted(BUILTIN_TEXT_SETS)}, or a tuple (texts, labels). Received {type(source).__name__}."
        )
    labels = _rename_labels(labels, label_names, where)
    y, names = _encode_labels(labels, class_names, where)
    texts, cut = _truncate(texts, max_chars, where)
    meta.update({"load_args": load_args, "n_truncated": cut})
    return TextData(texts, y, names, meta)


# --------------------------------------------------------------------------- prediction-time input


def _decode_item(raw: bytes, name: str) -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(
            f"{name} is bytes that are not valid UTF-8 (byte 0x{raw[exc.start]:02x} at position {exc.start}). "
            "Pass text (str) or UTF-8 encoded bytes."
        ) from exc


def _looks_binary(text: str) -> str | None:
    """Why ``text`` looks like binary data (NUL bytes, or mostly control/replacement characters)."""
    if "\x00" in text:
        return f"it contains {text.count(chr(0))} NUL character(s)"
    sample = text[:MAX_TEXT_CHARS]
    odd = sum(1 for c in sample if (c not in "\t\n\r\f\v" and unicodedata.category(c) == "Cc") or c == "\ufffd")
    share = odd / len(sample)
    if share > BINARY_CONTROL_SHARE:
        return f"{share:.0%} of its characters are control characters"
    return None


def prepare_texts(x: Any, max_chars: int | None = MAX_TEXT_CHARS) -> list[str]:
    """Check texts for prediction: one string (or UTF-8 bytes) or a list/tuple/array of them."""
    if isinstance(x, (str, bytes)):
        items = [x]
    elif isinstance(x, np.ndarray):
        items = [x.item()] if x.ndim == 0 else x.reshape(-1).tolist()
    elif isinstance(x, (list, tuple)) or (hasattr(x, "tolist") and hasattr(x, "__len__")):
        items = list(x.tolist() if hasattr(x, "tolist") and not isinstance(x, (list, tuple)) else x)
    else:
        raise DataError(f"Expected a text (str) or a list of texts. Received {type(x).__name__}.")
    if not items:
        raise DataError("Received an empty list of texts. Pass at least one text.")
    out = []
    for i, item in enumerate(items):
        name = "the text" if len(items) == 1 else f"text {i}"
        if isinstance(item, bytes):
            item = _decode_item(item, name)
        if not isinstance(item, str):
            raise DataError(f"Expected {name} to be a string. Received {type(item).__name__}: {str(item)[:40]!r}.")
        if not item.strip():
            raise DataError(f"Enter some text to classify: {name} is empty or only whitespace.")
        why = _looks_binary(item)
        if why is not None:
            raise DataError(
                f"{name[0].upper()}{name[1:]} looks like binary data, not text ({why}). Pass readable text, "
                "e.g. the contents of a UTF-8 text file, not the bytes of a binary file."
            )
        out.append(item)
    out, _ = _truncate(out, max_chars, "the input" if len(out) == 1 else "the inputs")
    return out


# --------------------------------------------------------------------------- splits


def _split_indices(y: np.ndarray, test_size: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.model_selection import train_test_split

    if not 0 < test_size < 1:
        raise DataError(f"Expected test_size between 0 and 1. Received {test_size}.")
    if len(y) < 2:
        raise DataError(f"Expected at least 2 texts to split. Received {len(y)}.")
    counts = np.bincount(y)
    present = counts[counts > 0]
    n_test = int(np.ceil(test_size * len(y)))
    stratify = y if present.min() >= 2 and n_test >= len(present) and len(y) - n_test >= len(present) else None
    if stratify is None:
        warnings.warn(
            "Some classes have too few texts for a stratified split; splitting at random. Add texts so that "
            "every class has at least 2, one per split.",
            stacklevel=3,
        )
    index = np.arange(len(y))
    train, test = train_test_split(index, test_size=test_size, random_state=seed, stratify=stratify)
    return np.sort(train), np.sort(test)


def text_splits(data: TextData, test_size: float = 0.2, seed: int = 42) -> TextSplits:
    """Stratified train/test split; ``spec`` records how to make it again."""
    if not isinstance(data, TextData):
        data = load_text(data)
    train, test = _split_indices(np.asarray(data.y), float(test_size), int(seed))
    spec = {
        "source": data.meta.get("source", "pairs"),
        "test_size": float(test_size),
        "seed": int(seed),
        "n_train": int(len(train)),
        "n_test": int(len(test)),
        "class_names": list(data.class_names),
        **{k: v for k, v in data.meta.get("load_args", {}).items() if v is not None},
    }
    return TextSplits(data.subset(train), data.subset(test), spec)


def _reindex(data: TextData, class_names: Sequence[str]) -> TextData:
    names = [_label_string(c) for c in class_names]
    if list(data.class_names) == names:
        return data
    unknown = [c for c in data.class_names if c not in names]
    present = sorted(set(np.asarray(data.y).tolist()))
    unknown = [data.class_names[i] for i in present if data.class_names[i] in unknown]
    if unknown:
        raise DataError(
            f"The data has classes the model does not know: {unknown}. Model classes: {names}. "
            "Relabel the data or pass label_names to map its labels onto the model's classes."
        )
    mapping = np.array([names.index(c) if c in names else -1 for c in data.class_names], dtype=np.int64)
    return TextData(list(data.texts), mapping[np.asarray(data.y)], names, dict(data.meta))


def resolve_text_data(
    data: Any,
    role: str = "train",
    class_names: Sequence[str] | None = None,
    text_column: str | None = None,
    label_column: str | None = None,
    label_names: Mapping | Sequence | None = None,
    max_chars: int | None = MAX_TEXT_CHARS,
) -> TextData:
    """Turn any accepted text data form into :class:`TextData`, labels indexed by ``class_names``.

    :class:`TextSplits` gives its ``role`` part ("train" or "test"); a path, a built-in name or a
    ``(texts, labels)`` pair is used whole.
    """
    if role not in ("train", "test"):
        raise ValueError(f"Expected role 'train' or 'test'. Received {role!r}.")
    if isinstance(data, TextSplits):
        result = data.train if role == "train" else data.test
    elif isinstance(data, TextData):
        result = data
    else:
        if isinstance(data, list) and len(data) == 2 and not isinstance(data[0], str):
            data = tuple(data)
        result = load_text(data, text_column, label_column, class_names, label_names, max_chars)
    if class_names is not None:
        result = _reindex(result, class_names)
    return result


__all__ = [
    "BUILTIN_TEXT_SETS",
    "IMDB_URL",
    "MAX_TEXT_CHARS",
    "TEXT_EXTENSIONS",
    "TextData",
    "TextSplits",
    "UCI_SENTIMENT_URL",
    "download_text_set",
    "load_text",
    "prepare_texts",
    "resolve_text_data",
    "sort_labels",
    "text_splits",
]
