"""Reading labelled text files: CSV/TSV tables, ``sentence<TAB>label`` files, folders of them or
of one-document-per-file class folders, and the built-in online sets (downloaded once).

:func:`toolkit.data.text.load_text` is the entry point; this module knows the file formats.
"""

from __future__ import annotations

import io
import math
import os
from pathlib import Path
from typing import Any, Sequence

from ..errors import DataError

MAX_TEXT_CHARS = 10_000
TEXT_EXTENSIONS = (".csv", ".tsv", ".tab", ".txt")
TABLE_SEPARATORS = {".csv": ",", ".tsv": "\t", ".tab": "\t"}
FOLDER_EXTENSIONS = (".txt", ".tsv", ".tab")
TEXT_COLUMNS = ("text", "sentence", "review", "review_text", "content")
LABEL_COLUMNS = ("label", "labels", "sentiment", "target", "class", "stars")
SKIPPED_FILE_STEMS = ("readme", "license", "licence")
_SHOWN = 5  # how many offending lines/rows an error names

UCI_SENTIMENT_URL = "https://archive.ics.uci.edu/static/public/331/sentiment+labelled+sentences.zip"
IMDB_URL = "https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz"
BUILTIN_TEXT_SETS = {
    "uci_sentiment": {"url": UCI_SENTIMENT_URL, "fname": "sentiment_labelled_sentences.zip",
                      "local": "the folder 'sentiment labelled sentences' from the zip"},
    "imdb": {"url": IMDB_URL, "fname": "aclImdb_v1.tar.gz", "local": "the extracted 'aclImdb' folder"},
}


def is_missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and value.strip() == ""


def _decode(raw: bytes, name: str) -> str:
    """UTF-8 (a BOM is dropped) with an error naming the file and 1-based line of a bad byte."""
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise DataError(
            f"{name}: line {line} is not valid UTF-8 (byte 0x{raw[exc.start]:02x} at column {column}). "
            "Expected a UTF-8 text file. Re-save the file as UTF-8 (e.g. 'Save as' > 'CSV UTF-8', or "
            "`iconv -f latin1 -t utf-8 in.txt > out.txt`)."
        ) from exc


def _read_bytes(path: Path) -> bytes:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(
            f"Could not read {str(path)!r} ({exc.strerror or exc}). Check the path and permissions."
        ) from exc
    if not raw.strip():
        raise DataError(f"{str(path)!r} is empty. Expected {_expected(path)}.")
    return raw


def _expected(path: Path) -> str:
    if path.suffix.lower() == ".txt":
        return "one 'sentence<TAB>label' per line"
    return "a header row naming the text and label columns, then one row per text"


def listing(items: list, total: int) -> str:
    shown = ", ".join(str(i) for i in items[:_SHOWN])
    return shown + (f" and {total - _SHOWN} more" if total > _SHOWN else "")


# --------------------------------------------------------------------------- file formats


def _read_sentence_file(path: Path) -> tuple[list[str], list[str]]:
    """``sentence<TAB>label`` lines: the label is the last TAB-separated field; text verbatim."""
    text = _decode(_read_bytes(path), repr(str(path)))
    texts, labels, empty, unlabelled = [], [], [], []
    for number, line in enumerate(text.split("\n"), start=1):
        line = line[:-1] if line.endswith("\r") else line
        if not line.strip():
            continue  # blank lines (e.g. at the end) are not data
        if "\t" not in line:
            raise DataError(
                f"{str(path)!r}, line {number}: expected 'sentence<TAB>label'. Received a line without a TAB: "
                f"{line[:80]!r}. Separate each sentence from its label with one TAB character (or use a "
                ".csv/.tsv file with a header)."
            )
        sentence, label = line.rsplit("\t", 1)
        if not sentence.strip():
            empty.append(number)
        if not label.strip():
            unlabelled.append(number)
        texts.append(sentence)
        labels.append(label.strip())
    if empty:
        raise DataError(
            f"{str(path)!r}: {len(empty)} line(s) have an empty text: line {listing(empty, len(empty))}. "
            "Expected some text before the TAB. Remove those lines or fill in their text."
        )
    if unlabelled:
        raise DataError(
            f"{str(path)!r}: {len(unlabelled)} line(s) have no label after the TAB: line "
            f"{listing(unlabelled, len(unlabelled))}. Add the label (e.g. 0 or 1) after the TAB."
        )
    if not texts:
        raise DataError(f"{str(path)!r} has no data lines. Expected {_expected(path)}.")
    return texts, labels


def _find_column(columns: list[str], asked: str | None, defaults: Sequence[str], kind: str, flag: str,
                 path: Path) -> str:
    if asked is not None:
        if asked in columns:
            return asked
        folded = [c for c in columns if c.strip().lower() == str(asked).strip().lower()]
        if len(folded) == 1:
            return folded[0]
        raise DataError(
            f"{str(path)!r} has no {kind} column {asked!r}. Available columns: {columns}. "
            f"Pass one of them with {flag} ({kind}_column=...)."
        )
    for name in defaults:
        for column in columns:
            if column.strip().lower() == name:
                return column
    hint = ""
    if len(columns) <= 3:
        hint = " The file needs a header row naming its columns."
        if path.suffix.lower() != ".csv":
            hint += " (Lines of 'sentence<TAB>label' without a header: give the file a .txt extension.)"
    raise DataError(
        f"{str(path)!r} has no {kind} column: looked for {list(defaults)}. Available columns: {columns}. "
        f"Pass the {kind} column's name with {flag} ({kind}_column=...).{hint}"
    )


def _read_table(path: Path, text_column: str | None, label_column: str | None) -> tuple[list[str], list[str], dict]:
    import pandas as pd

    text = _decode(_read_bytes(path), repr(str(path)))
    sep = TABLE_SEPARATORS[path.suffix.lower()]
    try:
        frame = pd.read_csv(io.StringIO(text), sep=sep, dtype=str, keep_default_na=False, na_values=[""],
                            skip_blank_lines=True)
    except pd.errors.EmptyDataError as exc:
        raise DataError(f"{str(path)!r} has no header row or data. Expected {_expected(path)}.") from exc
    except pd.errors.ParserError as exc:
        raise DataError(
            f"{str(path)!r} could not be parsed as a {'CSV' if sep == ',' else 'TAB-separated'} table ({exc}). "
            "Check that texts containing the separator are quoted and every row has the same number of fields."
        ) from exc
    columns = [str(c) for c in frame.columns]
    frame.columns = columns
    tcol = _find_column(columns, text_column, TEXT_COLUMNS, "text", "--text-column", path)
    lcol = _find_column(columns, label_column, LABEL_COLUMNS, "label", "--label-column", path)
    if tcol == lcol:
        raise DataError(f"{str(path)!r}: the text and label columns are both {tcol!r}. Pass two different columns.")
    if len(frame) == 0:
        raise DataError(f"{str(path)!r} has a header but no rows. Expected one row per text.")
    texts_raw = frame[tcol].tolist()
    labels_raw = frame[lcol].tolist()
    # Rows are numbered from 1 = the first row after the header.
    nan_rows = [i + 1 for i, t in enumerate(texts_raw) if not isinstance(t, str)]
    if nan_rows:
        raise DataError(
            f"{str(path)!r}: {len(nan_rows)} row(s) have no text (an empty or NaN cell in column {tcol!r}): row "
            f"{listing(nan_rows, len(nan_rows))} (row 1 is the first after the header). Remove those rows or fill in "
            "their text."
        )
    empty = [i + 1 for i, t in enumerate(texts_raw) if not t.strip()]
    if empty:
        raise DataError(
            f"{str(path)!r}: {len(empty)} row(s) have a whitespace-only text in column {tcol!r}: row "
            f"{listing(empty, len(empty))} (row 1 is the first after the header). Remove those rows or fill in "
            "their text."
        )
    unlabelled = [i + 1 for i, v in enumerate(labels_raw) if is_missing(v)]
    if unlabelled:
        raise DataError(
            f"{str(path)!r}: {len(unlabelled)} row(s) have no label in column {lcol!r}: row "
            f"{listing(unlabelled, len(unlabelled))} (row 1 is the first after the header). Fill in their labels."
        )
    return texts_raw, [str(v).strip() for v in labels_raw], {"text_column": tcol, "label_column": lcol}


def read_text_file(path: Path, text_column: str | None, label_column: str | None) -> tuple[list[str], list[str], dict]:
    suffix = path.suffix.lower()
    if suffix == ".txt":
        texts, labels = _read_sentence_file(path)
        return texts, labels, {"format": "sentence<TAB>label"}
    if suffix in TABLE_SEPARATORS:
        texts, labels, info = _read_table(path, text_column, label_column)
        return texts, labels, {"format": "csv" if suffix == ".csv" else "tsv", **info}
    raise DataError(
        f"Unsupported text file {str(path)!r} (extension {suffix or 'none'!r}). Expected a .csv or .tsv/.tab file "
        "with a header, a .txt file of 'sentence<TAB>label' lines, or a folder of such files."
    )


# --------------------------------------------------------------------------- folders


def _visible(path: Path, root: Path) -> bool:
    return not any(p.startswith((".", "__")) for p in path.relative_to(root).parts)


def _document_folder_parts(root: Path) -> list[Path] | None:
    """The aclImdb layout: ``root/{train,test}/{pos,neg}/*.txt`` (or ``root`` is one such part)."""
    parts = [root / p for p in ("train", "test") if (root / p / "pos").is_dir() and (root / p / "neg").is_dir()]
    if parts:
        return parts
    if (root / "pos").is_dir() and (root / "neg").is_dir():
        return [root]
    return None


def _class_subfolders(folder: Path) -> list[Path]:
    return sorted((d for d in folder.iterdir() if d.is_dir() and not d.name.startswith((".", "_"))
                   and d.name != "unsup"), key=lambda d: d.name)


def read_documents(root: Path, parts: list[Path]) -> tuple[list[str], list[str], dict]:
    """One document per ``.txt`` file, its label the name of the class subfolder it sits in."""
    texts, labels, counts = [], [], {}
    for part in parts:
        before = len(texts)
        for folder in _class_subfolders(part):
            for f in sorted(folder.glob("*.txt")):
                if f.name.startswith("."):
                    continue
                raw = f.read_bytes()
                text = _decode(raw, repr(str(f)))
                if not text.strip():
                    raise DataError(f"{str(f)!r} is empty. Expected one document per .txt file; remove the file.")
                texts.append(text)
                labels.append(folder.name)
        counts[part.name if part != root else "all"] = len(texts) - before
    if not texts:
        raise DataError(f"{str(root)!r} has class subfolders but no .txt documents in them.")
    return texts, labels, {"format": "documents", "parts": counts}


def read_text_folder(root: Path, text_column: str | None, label_column: str | None) -> tuple[list[str], list[str], dict]:
    parts = _document_folder_parts(root)
    if parts is not None:
        return read_documents(root, parts)
    files, ignored = [], []
    for f in sorted((f for f in root.iterdir() if f.is_file() and not f.name.startswith(".")), key=lambda f: f.name):
        if f.suffix.lower() in FOLDER_EXTENSIONS and f.stem.lower() not in SKIPPED_FILE_STEMS:
            files.append(f)
        else:
            ignored.append(f.name)
    if not files:
        subfolders = _class_subfolders(root)
        if len(subfolders) == 1:  # e.g. the folder an archive was extracted into
            return read_text_folder(subfolders[0], text_column, label_column)
        if subfolders and any(any(d.glob("*.txt")) for d in subfolders):
            return read_documents(root, [root])
        raise DataError(
            f"{str(root)!r} has no .txt/.tsv data files. Expected a folder of 'sentence<TAB>label' .txt files "
            "(or .tsv files with a header), or one subfolder per class holding one .txt document per file."
        )
    texts, labels, formats = [], [], set()
    for f in files:
        t, lab, info = read_text_file(f, text_column, label_column)
        texts += t
        labels += lab
        formats.add(info["format"])
    meta = {"format": "+".join(sorted(formats)), "files": [str(f) for f in files]}
    if ignored:
        meta["ignored_files"] = ignored
    return texts, labels, meta


# --------------------------------------------------------------------------- built-in sets


def _keras_cache() -> Path:
    return Path(os.path.expanduser(os.environ.get("KERAS_HOME", "~/.keras"))) / "datasets"


def download_text_set(name: str) -> Path:
    """Download and extract a built-in set once (cached by keras under ~/.keras/datasets)."""
    info = BUILTIN_TEXT_SETS[name]
    stem = info["fname"][: info["fname"].find(".")]
    cached = _keras_cache() / f"{stem}_extracted"
    if (cached / ".complete").is_file():
        return cached
    import keras

    try:
        folder = Path(keras.utils.get_file(info["fname"], origin=info["url"], extract=True))
    except Exception as exc:  # urllib raises plain Exception through keras; any failure means no data
        raise DataError(
            f"Could not download the {name!r} data set from {info['url']} ({type(exc).__name__}: {exc}). "
            "This machine seems to be offline or the site is unreachable. Download it on a machine with "
            f"internet access and pass the local copy instead: the path of {info['local']} "
            "(e.g. `--data path/to/folder`)."
        ) from exc
    try:
        (folder / ".complete").write_text("ok\n")
    except OSError:
        pass  # not cached as complete: keras checks its download again next time
    return folder


def read_builtin_text(name: str) -> tuple[list[str], list[str], dict]:
    folder = download_text_set(name)
    if name == "uci_sentiment":
        files = sorted((f for f in folder.rglob("*_labelled.txt") if _visible(f, folder)), key=lambda f: f.name)
        if not files:
            raise DataError(f"The downloaded {name!r} archive in {str(folder)!r} has no *_labelled.txt files. "
                            "Delete that folder and try again.")
        texts, labels = [], []
        for f in files:
            t, lab = _read_sentence_file(f)
            texts += t
            labels += lab
        return texts, labels, {"format": "sentence<TAB>label", "files": [str(f) for f in files]}
    root = folder / "aclImdb" if (folder / "aclImdb").is_dir() else folder
    parts = _document_folder_parts(root)
    if parts is None:
        raise DataError(f"The downloaded {name!r} archive in {str(folder)!r} has no train/pos folders. "
                        "Delete that folder and try again.")
    return read_documents(root, parts)


# --------------------------------------------------------------------------- loading
