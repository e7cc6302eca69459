"""Make your own classifier from a few examples: check them, train with the task's own recipe, export
a checked phone file and pack it all in a zip (the "Make your own" tab and its API call this).

>>> result = train_from_examples("image", {"cat": ["c1.jpg", ...], "dog": [...]}, "work")
>>> result.metrics["held_out_accuracy"], result.zip_path

The training is ``toolkit train`` itself: the examples are written into a folder (one subfolder per
class for images, a ``sentence<TAB>label`` file for texts), a stratified share of each class is
held out into a test folder, and the task's ``train_recipe`` trains on the rest (images: the
ImageNet ``efficientnet_lite0`` with cached features; texts: frozen MiniLM and a new head, with the
TF-IDF peer's accuracy on the same held-out texts). The saved folder is then exported the way
``toolkit export`` does (int8 for images; int8 weights, "dynamic", for texts: full-integer int8
would quantize the token ids), and zipped: ``model_int8.tflite`` (labels in its metadata) or
``model_dynamic.tflite`` + ``vocab.txt``, ``labels.txt``, ``card.json`` (the file's agreement with
Keras and its latency), ``model.keras`` and the charts. :func:`load_model_zip` opens such a zip
again. Every zip is checked before anything is extracted (entry count, declared sizes, names),
and nothing is ever written under a name taken from a zip or an upload.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import stat
import tempfile
import threading
import time
import warnings
import zipfile
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .errors import DataError, ToolkitError

KINDS = ("image", "text", "audio")
TASKS = {"image": "image_classifier", "text": "text_classifier", "audio": "audio_classifier"}
MIN_CLASSES, MAX_CLASSES = 2, 10
MIN_PER_CLASS = 5  # one held out to measure accuracy, one for early stopping, three to learn from
MAX_IMAGES_PER_CLASS = 100
MAX_TEXTS_PER_CLASS = 500
MAX_IMAGE_BYTES = 10 * 1024 * 1024
MAX_TOTAL_BYTES = 300 * 1024 * 1024
MAX_TEXT_CHARS = 1000
MAX_CSV_BYTES = 5 * 1024 * 1024
MAX_NAME_CHARS = 40
MAX_ZIP_ENTRIES = 500
MAX_ZIP_BYTES = 300 * 1024 * 1024
MAX_MODEL_ZIP_ENTRIES = 40
HELD_OUT = 0.2
SESSION_MAX_AGE_S = 3600
QUANTIZATION = {"image": "int8", "text": "dynamic", "audio": "int8"}
TEXT_LEARNING_RATE = 1e-2
ZIP_NAME = "my_model.zip"
IMAGE_FORMATS = {"JPEG": ".jpg", "PNG": ".png", "BMP": ".bmp", "GIF": ".gif"}
LIMITS_TEXT = (f"{MIN_CLASSES} to {MAX_CLASSES} classes; {MIN_PER_CLASS} to {MAX_IMAGES_PER_CLASS} images "
               f"(each up to {MAX_IMAGE_BYTES // 2**20} MB) or {MIN_PER_CLASS} to {MAX_TEXTS_PER_CLASS} sentences "
               f"(each up to {MAX_TEXT_CHARS} characters) or recordings (each up to 10 s) per class; a zip holds at most {MAX_ZIP_ENTRIES} files "
               f"and {MAX_ZIP_BYTES // 2**20} MB unpacked; {HELD_OUT:.0%} of each class is held out to measure "
               f"accuracy; your files are deleted when you leave or after {SESSION_MAX_AGE_S // 60} minutes.")


class TrainingCancelled(ToolkitError):
    """The user cancelled a training; nothing of it was kept."""


Progress = Callable[[float, str], Any]


@dataclasses.dataclass
class TrainResult:
    """What :func:`train_from_examples` made: the saved model folder, its zip and how it did."""

    kind: str
    directory: Path  # the saved model folder (model.keras, card.json, the .tflite file, ...)
    zip_path: Path
    class_names: list[str]
    metrics: dict  # held_out_accuracy (and tfidf_held_out_accuracy for texts), counts, seconds
    confusion_matrix: np.ndarray  # rows: true class, columns: predicted (class_names order)
    wrong: list[dict]  # held-out examples it gets wrong: example, true, predicted, probability
    tflite: dict  # the card's entry of the phone file: agreement with Keras, latency, size
    seconds: float
    notes: list[str]
    task: Any = None  # the trained task (try it, explain)


# ---------------------------------------------------------------------------- checking examples


def _name_key(name: str) -> str:
    return " ".join(name.split()).casefold()


def check_class_names(names: list[Any]) -> list[str]:
    """The class names, stripped; a DataError for too few/many, empty, unsafe or duplicate names
    (duplicates compared without case and extra spaces)."""
    cleaned = []
    for name in names:
        if not isinstance(name, str):
            raise DataError(f"Expected each class name as text. Received {type(name).__name__}: {name!r}.")
        cleaned.append(" ".join(name.split()))
    if len(cleaned) < MIN_CLASSES:
        raise DataError(f"Expected at least {MIN_CLASSES} classes to train a classifier. Received {len(cleaned)}"
                        f"{': ' + repr(cleaned[0][:MAX_NAME_CHARS]) if cleaned else ''}. Add another class with its examples.")
    if len(cleaned) > MAX_CLASSES:
        raise DataError(f"Expected at most {MAX_CLASSES} classes. Received {len(cleaned)}. Merge or drop some.")
    seen: dict[str, str] = {}
    for name in cleaned:
        if not name:
            raise DataError("Expected every class to have a name. Received an empty class name. Type a name, "
                            "such as 'cat'.")
        if len(name) > MAX_NAME_CHARS or name.startswith((".", "_")) or re.search(r"[/\\\x00-\x1f\x7f]", name):
            raise DataError(f"Expected a class name of at most {MAX_NAME_CHARS} characters, without / or \\ or "
                            f"control characters, not starting with '.' or '_'. Received {name!r}. Rename it.")
        key = _name_key(name)
        if key in seen:
            raise DataError(f"Expected different class names. Received {seen[key]!r} and {name!r}, which are the "
                            "same name (case and spaces are ignored). Rename one, or put their examples together.")
        seen[key] = name
    return cleaned


def _source_name(item: Any, index: int) -> str:
    if isinstance(item, (str, os.PathLike)):
        return Path(item).name
    path = getattr(item, "path", None) or getattr(item, "name", None)  # Gradio's FileData / tempfile wrappers
    return Path(path).name if isinstance(path, str) else f"example {index + 1}"


def _image_source(item: Any) -> Any:
    """A path, bytes or an array from what an image example may be."""
    if isinstance(item, dict):
        item = item.get("path") or item.get("name")
    elif not isinstance(item, (str, os.PathLike, bytes, np.ndarray)):
        item = getattr(item, "path", None) or getattr(item, "name", None) or item
    return item


def check_image(item: Any, label: str) -> tuple[Any, str]:
    """(the image's bytes or array, its format's ending) after checking it is a readable image of
    a sane size; a DataError naming ``label`` otherwise."""
    from PIL import Image, UnidentifiedImageError

    from .data.images import MAX_IMAGE_PIXELS, MIN_IMAGE_SIDE

    source = _image_source(item)
    if isinstance(source, np.ndarray):
        array = source
        if array.ndim == 3 and array.shape[-1] in (1, 3, 4) and min(array.shape[:2]) >= MIN_IMAGE_SIDE \
                or array.ndim == 2 and min(array.shape) >= MIN_IMAGE_SIDE:
            return np.clip(array, 0, 255).astype(np.uint8), ".png"
        raise DataError(f"{label}: expected an image array (height, width[, 1|3|4 channels]) with sides of at "
                        f"least {MIN_IMAGE_SIDE}. Received shape {array.shape}. Take the picture again.")
    if isinstance(source, bytes):
        data = source
    elif isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise DataError(f"{label}: expected an image file. Received {path.name!r}, which is not a file. "
                            "Upload it again.")
        size = path.stat().st_size
        if size > MAX_IMAGE_BYTES:
            raise DataError(f"{label}: expected an image of at most {MAX_IMAGE_BYTES // 2**20} MB. Received "
                            f"{size / 2**20:.1f} MB. Make it smaller (a phone photo resized to 1000 pixels is plenty).")
        data = path.read_bytes()
    else:
        raise DataError(f"{label}: expected an image file. Received {type(source).__name__}. Upload PNG, JPEG, "
                        "BMP or GIF files.")
    if len(data) > MAX_IMAGE_BYTES:
        raise DataError(f"{label}: expected an image of at most {MAX_IMAGE_BYTES // 2**20} MB. Received "
                        f"{len(data) / 2**20:.1f} MB. Make it smaller.")
    import io

    try:
        with Image.open(io.BytesIO(data)) as img:
            fmt, (width, height) = img.format, img.size
            img.verify()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise DataError(f"{label} is not a readable image ({type(exc).__name__}). Expected a PNG, JPEG, BMP or GIF "
                        "file. Remove it or convert it.") from None
    if fmt not in IMAGE_FORMATS:
        raise DataError(f"{label} is a {fmt} image. Expected PNG, JPEG, BMP or GIF. Convert it first.")
    if min(width, height) < MIN_IMAGE_SIDE or width * height > MAX_IMAGE_PIXELS:
        raise DataError(f"{label} is {width}x{height} pixels. Expected sides of at least {MIN_IMAGE_SIDE} and at "
                        f"most {MAX_IMAGE_PIXELS:,} pixels. Resize it.")
    return data, IMAGE_FORMATS[fmt]


def check_text(item: Any, label: str) -> str:
    """One example sentence, its whitespace made single spaces; a DataError when empty or too long."""
    if not isinstance(item, str):
        raise DataError(f"{label}: expected a sentence. Received {type(item).__name__}. Paste text, one per line.")
    text = " ".join(item.split())
    if not text:
        raise DataError(f"{label} is empty. Expected a sentence; remove the empty line.")
    if len(text) > MAX_TEXT_CHARS:
        raise DataError(f"{label} has {len(text)} characters. Expected at most {MAX_TEXT_CHARS}; shorten it.")
    return text


def check_examples(kind: str, examples: dict) -> dict[str, list]:
    """The examples checked (class names, counts, every image readable / every text sane): class
    name -> list of (image bytes or array, ending, original name) for images, of texts for texts.
    Each problem is a DataError saying what was expected, what was received and what to do."""
    if kind not in KINDS:
        raise DataError(f"Expected the kind of examples as one of {list(KINDS)}. Received {kind!r}.")
    if not isinstance(examples, dict):
        raise DataError(f"Expected the examples as {{class name: [examples]}}. Received {type(examples).__name__}.")
    names = check_class_names(list(examples))
    limit = MAX_TEXTS_PER_CLASS if kind == "text" else MAX_IMAGES_PER_CLASS
    unit = {"image": "images", "text": "sentences", "audio": "recordings"}[kind]
    checked: dict[str, list] = {}
    total = 0
    for name, items in zip(names, examples.values()):
        items = [] if items is None else ([items] if isinstance(items, (str, bytes, os.PathLike)) else list(items))
        if not items:
            raise DataError(f"Class {name!r} has no examples. Expected at least {MIN_PER_CLASS} {unit}; add some "
                            "or remove the class.")
        if len(items) < MIN_PER_CLASS:
            raise DataError(f"Class {name!r} has {len(items)} example{'s' if len(items) > 1 else ''}. Expected at "
                            f"least {MIN_PER_CLASS} {unit} per class (some are held out to measure accuracy); "
                            "add more.")
        if len(items) > limit:
            raise DataError(f"Class {name!r} has {len(items)} {unit}. Expected at most {limit} per class; keep the "
                            "most typical ones.")
        if kind == "image":
            rows = []
            for i, item in enumerate(items):
                original = _source_name(item, i)
                data, ending = check_image(item, f"Class {name!r}, {original}")
                total += data.nbytes if isinstance(data, np.ndarray) else len(data)
                rows.append((data, ending, original))
            checked[name] = rows
        elif kind == "audio":
            from .audio.examples import check_recording

            checked[name] = [(*check_recording(item, f"Class {name!r}, {_source_name(item, i)}"), _source_name(item, i))
                             for i, item in enumerate(items)]
            total += sum(len(data) for data, _, _ in checked[name])
        else:
            checked[name] = [check_text(t, f"Class {name!r}, sentence {i + 1}") for i, t in enumerate(items)]
            total += sum(len(t) for t in checked[name])
        if total > MAX_TOTAL_BYTES:
            raise DataError(f"The examples add up to more than {MAX_TOTAL_BYTES // 2**20} MB. Use fewer or smaller "
                            "images.")
    return checked


# ---------------------------------------------------------------------------- zips


def _zip_entries(path: str | os.PathLike, max_entries: int, what: str) -> tuple[zipfile.ZipFile, list]:
    """The open zip and its file entries, after refusing (before extracting anything) a zip that is
    not one, has too many entries, declares too many bytes, links, or names with ``..`` or a root."""
    name = Path(path).name
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise DataError(f"{name!r} is not a readable zip file ({type(exc).__name__}). Expected {what}.") from None
    entries = archive.infolist()
    if len(entries) > max_entries:
        archive.close()
        raise DataError(f"{name!r} holds {len(entries):,} entries. Expected at most {max_entries}; split it into "
                        "smaller zips.")
    declared = sum(e.file_size for e in entries)
    if declared > MAX_ZIP_BYTES:
        archive.close()
        raise DataError(f"{name!r} unpacks to {declared / 2**20:,.0f} MB. Expected at most {MAX_ZIP_BYTES // 2**20} MB; "
                        "nothing was extracted. Use a smaller zip.")
    files = []
    for entry in entries:
        parts = entry.filename.replace("\\", "/").split("/")
        if entry.filename.startswith(("/", "\\")) or ".." in parts or re.match(r"^[A-Za-z]:", entry.filename):
            archive.close()
            raise DataError(f"{name!r} has an entry outside its own folder ({entry.filename!r}). Expected plain "
                            "relative names; nothing was extracted. Make the zip again from the files.")
        if stat.S_ISLNK(entry.external_attr >> 16):
            archive.close()
            raise DataError(f"{name!r} holds a link ({entry.filename!r}). Expected plain files; nothing was extracted.")
        if entry.is_dir() or parts[0] == "__MACOSX" or parts[-1].startswith("."):
            continue  # folders, and the metadata macOS adds, are not examples
        files.append((entry, [p for p in parts if p]))
    return archive, files


def _read_entry(archive: zipfile.ZipFile, entry: zipfile.ZipInfo, limit: int, zip_name: str) -> bytes:
    """An entry's bytes, reading no more than ``limit`` (its declared size may lie)."""
    with archive.open(entry) as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise DataError(f"{zip_name!r}: {entry.filename!r} unpacks to more than {limit // 2**20} MB. Expected smaller "
                        "files; nothing was kept.")
    return data


def images_from_zip(path: str | os.PathLike) -> list[tuple[bytes, str]]:
    """The images of a zip of one class's examples, as (bytes, name): its files at the top level (or
    all in one folder); nested folders, non-images, too many files and zip bombs are refused."""
    zip_name = Path(path).name
    archive, files = _zip_entries(path, MAX_ZIP_ENTRIES, "a zip of image files")
    with archive:
        tops = {parts[0] for _, parts in files if len(parts) > 1}
        for entry, parts in files:
            if len(parts) > 2 or (len(parts) == 2 and (len(tops) > 1 or any(len(p) == 1 for _, p in files))):
                raise DataError(f"{zip_name!r} has nested folders ({entry.filename!r}). Expected the images of one "
                                "class at the top of the zip (or all in one folder); zip each class separately.")
        images, total = [], 0
        for entry, parts in files:
            data = _read_entry(archive, entry, MAX_IMAGE_BYTES, zip_name)
            total += len(data)
            if total > MAX_ZIP_BYTES:
                raise DataError(f"{zip_name!r} unpacks to more than {MAX_ZIP_BYTES // 2**20} MB. Use a smaller zip.")
            images.append((data, parts[-1]))
    if not images:
        raise DataError(f"{zip_name!r} holds no files. Expected images (PNG, JPEG, BMP, GIF).")
    for data, name in images:
        check_image(data, f"{zip_name!r}: {name!r}")  # a non-image is named before anything is kept
    return images


def sentences_from_csv(path: str | os.PathLike) -> dict[str, list[str]]:
    """{class: [sentences]} from a .csv/.tsv file with a header: a text column (text, sentence, ...)
    and a label column (label, class, ...), as ``toolkit train`` reads them; a clear DataError for
    another kind of file, a too big one, missing columns or empty labels."""
    from .data.text import read_text_file

    path = Path(path)
    if path.suffix.lower() not in (".csv", ".tsv"):
        raise DataError(f"{path.name!r} is not a .csv or .tsv file. Expected a table with a header row and two "
                        "columns: text and label (one sentence and its class per row).")
    if path.stat().st_size > MAX_CSV_BYTES:
        raise DataError(f"{path.name!r} is {path.stat().st_size / 2**20:.1f} MB. Expected at most "
                        f"{MAX_CSV_BYTES // 2**20} MB of sentences; keep the most typical ones.")
    try:
        texts, labels, _ = read_text_file(path, None, None)
    except UnicodeDecodeError:
        raise DataError(f"{path.name!r} is not UTF-8 text. Save it as CSV UTF-8 and upload it again.") from None
    except DataError as exc:  # its message names the file by its server path: name it as the user did
        raise DataError(str(exc).replace(str(path.resolve()), path.name).replace(str(path), path.name)) from None
    examples: dict[str, list[str]] = {}
    for text, label in zip(texts, labels):  # one class per CSV is fine: the rows may add the others
        examples.setdefault(" ".join(str(label).split()), []).append(text)
    return examples


def load_model_zip(path: str | os.PathLike, workdir: str | os.PathLike):
    """Open a zip made by :func:`train_from_examples` again: checked (a flat zip of a few files, no
    ``..``, no links, sizes counted before extracting), extracted under ``workdir`` with names
    checked to stay there, and loaded (sha256 and Keras safe mode). Returns (task, folder)."""
    from .base import load

    zip_name = Path(path).name
    archive, files = _zip_entries(path, MAX_MODEL_ZIP_ENTRIES, "a zip made by Make your own")
    target = Path(tempfile.mkdtemp(prefix="loaded-", dir=_ensure_dir(workdir)))
    with archive:
        for entry, parts in files:
            if len(parts) != 1:
                raise DataError(f"{zip_name!r} has folders ({entry.filename!r}). Expected the flat zip Make your own "
                                "downloads.")
            name = parts[0]
            if not re.fullmatch(r"[A-Za-z0-9_.-]{1,80}", name):
                raise DataError(f"{zip_name!r} holds {name!r}. Expected only the files of a model (model.keras, "
                                "card.json, labels.txt, .tflite, ...).")
            out = (target / name).resolve()
            if out.parent != target.resolve():
                raise DataError(f"{zip_name!r}: {name!r} would be written outside its folder; refused.")
            out.write_bytes(_read_entry(archive, entry, MAX_ZIP_BYTES, zip_name))
    if not (target / "card.json").is_file():
        raise DataError(f"{zip_name!r} has no card.json. Expected a zip downloaded from Make your own.")
    return load(target), target


def _zip_folder(directory: Path, zip_path: Path) -> Path:
    from .storage import atomic_write

    def write(tmp: str) -> None:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as archive:
            for file in sorted(directory.iterdir()):
                if file.is_file():
                    archive.write(file, file.name)

    return atomic_write(zip_path, write)


# ---------------------------------------------------------------------------- sessions


def _ensure_dir(path: str | os.PathLike) -> Path:
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    return path


def sessions_root() -> Path:
    """Where the app keeps its per-session folders (under the system's temporary folder)."""
    return _ensure_dir(Path(tempfile.gettempdir()) / "toolkit-make-your-own")


def new_session(root: str | os.PathLike | None = None) -> Path:
    """A fresh private folder (mode 0700) for one user's examples and models."""
    return Path(tempfile.mkdtemp(prefix="session-", dir=_ensure_dir(root or sessions_root())))


def sweep_sessions(root: str | os.PathLike | None = None, max_age_s: float = SESSION_MAX_AGE_S) -> list[Path]:
    """Delete session folders not touched for ``max_age_s``; returns those deleted."""
    root = Path(root or sessions_root())
    removed, now = [], time.time()
    for folder in root.glob("session-*") if root.is_dir() else []:
        try:
            if folder.is_dir() and now - folder.stat().st_mtime > max_age_s:
                shutil.rmtree(folder, ignore_errors=True)
                removed.append(folder)
        except OSError:
            continue
    return removed


# ---------------------------------------------------------------------------- training


def _split(counts: dict[str, int], seed: int) -> dict[str, np.ndarray]:
    """Per class, a boolean mask of the held-out examples: a stratified share (at least one)."""
    rng = np.random.default_rng(seed)
    masks = {}
    for name, n in counts.items():
        mask = np.zeros(n, bool)
        mask[rng.choice(n, max(1, int(round(HELD_OUT * n))), replace=False)] = True
        masks[name] = mask
    return masks


def _write_examples(kind: str, checked: dict, masks: dict, root: Path) -> tuple[Path, Path, dict]:
    """The examples written as the recipe reads them: (train data, test data, written file ->
    original name). Every name written is made here, never taken from an upload."""
    from PIL import Image

    originals: dict[str, str] = {}
    if kind == "text":
        parts = {"train": [], "test": []}
        for name, texts in checked.items():
            for text, held in zip(texts, masks[name]):
                parts["test" if held else "train"].append(f"{text}\t{name}\n")
        paths = {}
        for part, lines in parts.items():
            paths[part] = root / f"{part}.txt"
            paths[part].write_text("".join(lines), encoding="utf-8")
        return paths["train"], paths["test"], originals
    for index, (name, rows) in enumerate(checked.items()):
        for i, ((data, ending, original), held) in enumerate(zip(rows, masks[name])):
            folder = _ensure_dir(root / ("test" if held else "train") / name)
            file = folder / f"{i:04d}{ending}"
            if isinstance(data, np.ndarray):
                Image.fromarray(data.squeeze(-1) if data.ndim == 3 and data.shape[-1] == 1 else data).save(file)
            else:
                file.write_bytes(data)
            originals[str(file)] = original
    return root / "train", root / "test", originals


def watch(progress: Progress | None, cancel: threading.Event | None, low: float, high: float, epochs: int):
    """A Keras callback: ``progress`` after each epoch (validation accuracy so far, between ``low``
    and ``high``), and :class:`TrainingCancelled` at the next batch once ``cancel`` is set."""
    import keras

    class Watch(keras.callbacks.Callback):
        best = None

        def on_train_batch_end(self, batch, logs=None):
            _check_cancel(cancel)

        def on_epoch_end(self, epoch, logs=None):
            accuracy = (logs or {}).get("val_accuracy")
            if accuracy is not None:
                self.best = max(self.best or 0.0, float(accuracy))
            if progress is not None:
                so_far = f"; validation accuracy {accuracy:.2f} (best {self.best:.2f})" if accuracy is not None else ""
                progress(low + (high - low) * min(1.0, (epoch + 1) / epochs), f"Training the head, epoch {epoch + 1}"
                         f"{so_far}")

    return Watch()


def _check_cancel(cancel: threading.Event | None) -> None:
    if cancel is not None and cancel.is_set():
        raise TrainingCancelled("Training cancelled; nothing of it was kept.")


def train_from_examples(kind: str, examples: dict, workdir: str | os.PathLike, progress: Progress | None = None,
                        cancel: threading.Event | None = None, *, seed: int = 0, **options: Any) -> TrainResult:
    """Train a classifier on ``examples`` ({class name: [image files, bytes or arrays]} or
    {class name: [sentences]}) with the task's own recipe, export its phone file and zip it.

    ``workdir`` is the caller's private folder (a session's); everything is written under it.
    ``progress(fraction, message)`` hears the phase and the validation accuracy so far; setting
    ``cancel`` (a ``threading.Event``) stops the training and keeps nothing. ``options`` go to the
    recipe (config fields such as ``epochs``). Returns a :class:`TrainResult`: held-out accuracy (on
    a stratified {HELD_OUT} of each class the model never saw), the confusion matrix, the held-out
    examples it gets wrong, the phone file's checks and the zip.
    """
    start = time.perf_counter()
    say = progress or (lambda fraction, message: None)
    say(0.0, "Checking the examples")
    checked = check_examples(kind, examples)
    run = Path(tempfile.mkdtemp(prefix=f"{kind}-", dir=_ensure_dir(workdir)))
    try:
        return _train(kind, checked, run, say, cancel, seed, options, start)
    except BaseException:
        shutil.rmtree(run, ignore_errors=True)
        raise


def _train(kind, checked, run, say, cancel, seed, options, start) -> TrainResult:
    from .base import task_class

    masks = _split({name: len(rows) for name, rows in checked.items()}, seed)
    say(0.05, "Writing the examples")
    train, test, originals = _write_examples(kind, checked, masks, _ensure_dir(run / "examples"))
    _check_cancel(cancel)
    cls = task_class(TASKS[kind])
    recipe = {"validation_split": 0.2, "seed": seed, "verbose": 0, **options}
    if kind == "text":  # a frozen MiniLM and a new head; on 48 sentences the head at the CLI's default 1e-3 had not
        # converged in 40 epochs (validation loss still falling by 0.01 an epoch, early stopping never came)
        recipe = {"encoder": "minilm", "learning_rate": TEXT_LEARNING_RATE, **recipe}
    if kind == "audio":  # audio_classifier's default backbone: the frozen pretrained speech embedding, a new head
        recipe = {"test_size": 0.0, **recipe}
    epochs = recipe.get("epochs") or cls.config_class().epochs
    say(0.1, {"image": "Reading the examples and computing the pretrained features", "audio": "Reading the "
              "recordings", "text": "Computing the MiniLM sentence features"}[kind])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cls.train_recipe(run / "model", command=None, data=str(train), test_data=str(test),
                         callbacks=[watch(say, cancel, 0.3, 0.75, epochs)], **recipe)
        _check_cancel(cancel)
        trained = time.perf_counter() - start
        say(0.78, "Loading the trained model")
        task = cls.load(run / "model")
        quantization = QUANTIZATION[kind]
        say(0.8, f"Exporting the {quantization} phone file and checking it against Keras")
        # images: the card's splits remade (training photos calibrate int8, held-out ones check it);
        # texts: checked on the held-out sentences
        file = task.export(run / "model", quantization=quantization, data=str(test) if kind == "text" else None,
                           **({"reuse_backbone": True} if kind != "audio" else {}))
    exported = time.perf_counter() - start
    _check_cancel(cancel)
    say(0.92, "Measuring the held-out examples")
    metrics, confusion, wrong = _held_out(task, kind, test, originals)
    entry = next(e for e in task.tflite_ if e["file"] == file.name)
    metrics.update(n_train=int(sum((~m).sum() for m in masks.values())),
                   n_held_out=int(sum(m.sum() for m in masks.values())),
                   epochs_run=len((task.history_ or {}).get("loss", [])))
    say(0.96, "Packing the zip")
    zip_path = _zip_folder(run / "model", run / ZIP_NAME)
    seconds = time.perf_counter() - start
    metrics.update(seconds=round(seconds, 2), seconds_to_trained_model=round(trained, 2),
                   seconds_export_and_check=round(exported - trained, 2))
    notes = sorted({str(w.message) for w in caught if issubclass(w.category, UserWarning)})
    say(1.0, f"Done in {seconds:.0f} s: held-out accuracy {metrics['held_out_accuracy']:.2f}")
    return TrainResult(kind, run / "model", zip_path, list(task.class_names_), metrics, confusion, wrong, entry,
                       seconds, notes, task)


def _held_out(task, kind: str, test: Path, originals: dict) -> tuple[dict, np.ndarray, list[dict]]:
    """Metrics on the held-out examples (the recipe's test split: the TF-IDF peer's accuracy on the
    same texts comes from there), the confusion matrix and the examples it gets wrong."""
    from .metrics import classification_report

    if kind == "image":
        from .data.images import resolve_image_data

        height, width, channels = task.input_shape_
        data = resolve_image_data(str(test), "test", (height, width), channels, task.class_names_)
        items = [{"example": originals.get(f, Path(f).name), "file": f} for f in data.files]
        y, probs = data.y, task.probabilities(data.x)
    elif kind == "audio":
        from .audio.examples import held_out_recordings

        items, x, y = held_out_recordings(task, test, originals)
        probs = task.probabilities(x)
    else:
        from .data.text import load_text, resolve_text_data

        data = resolve_text_data(load_text(str(test)), "test", class_names=task.class_names_)
        items = [{"example": t} for t in data.texts]
        y, probs = data.y, task.probabilities(data.texts)
    report = classification_report(y, probs, task.class_names_)
    predicted = probs.argmax(1)
    wrong = [{**item, "true": task.class_names_[t], "predicted": task.class_names_[p], "probability": float(q[p])}
             for item, t, p, q in zip(items, y, predicted, probs) if t != p]
    metrics = {"held_out_accuracy": float(report.metrics["accuracy"]),
               "majority_baseline": float(report.metrics["baseline_majority_accuracy"])}
    if "test_baseline_tfidf_accuracy" in task.metrics_:
        metrics["tfidf_held_out_accuracy"] = float(task.metrics_["test_baseline_tfidf_accuracy"])
    return metrics, np.asarray(report.confusion_matrix), wrong
