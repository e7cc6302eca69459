"""Atomic writes and checksums: a crash never leaves a half-written file or model folder."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any, Callable

from .errors import ModelFormatError, OutputError

CARD_FILE = "card.json"
_UMASK_LOCK = threading.Lock()


def current_umask() -> int:
    """The process's umask (read from /proc where there is one, so no other thread sees it change)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def output_error(path: str | os.PathLike, exc: OSError) -> OutputError:
    """The :class:`OutputError` for an ``OSError`` met while writing ``path``."""
    reason = (exc.strerror or type(exc).__name__).lower()
    return OutputError(f"Cannot write {str(path)!r} ({reason}). Expected a path in a folder you can write to; "
                       "choose another path or fix the folder's permissions.")


def _make_parent(path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise output_error(path, exc) from exc


def sha256_file(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def atomic_write(path: str | os.PathLike, writer: Callable[[str], Any]) -> Path:
    """Call ``writer(tmp_path)`` on a temporary file beside ``path``, then move it into place."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"Cannot write {str(path)!r}: it is a folder. Expected a file path; add a file name.")
    _make_parent(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp" + path.suffix)
    except OSError as exc:
        raise output_error(path, exc) from exc
    os.close(fd)
    try:
        writer(tmp)
        os.chmod(tmp, 0o666 & ~current_umask())  # mkstemp makes 0600; a saved file is like any other (0644)
        try:
            os.replace(tmp, path)
        except OSError as exc:
            raise output_error(path, exc) from exc
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    return atomic_write(path, lambda tmp: Path(tmp).write_bytes(data))


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=json_default) + "\n")


def json_default(obj: Any) -> Any:
    import numpy as np

    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "isoformat"):  # datetime, date, pandas Timestamp
        return obj.isoformat()
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


def read_card(directory: str | os.PathLike) -> dict:
    """Read ``card.json`` of a model folder, with a clear error when it is not one."""
    directory = Path(directory)
    card_path = directory / CARD_FILE
    if not directory.is_dir():
        raise ModelFormatError(
            f"Expected a model folder. Received: {str(directory)!r}, which is not a folder. "
            "Pass the folder written by `toolkit train` or `task.save()`."
        )
    if not card_path.is_file():
        raise ModelFormatError(
            f"Expected a model folder with {CARD_FILE}. Received: {str(directory)!r} without one. "
            "Pass the folder written by `toolkit train` or `task.save()`."
        )
    try:
        card = json.loads(card_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelFormatError(f"{card_path} is not valid JSON ({exc}). Re-save or re-train the model.") from exc
    if not isinstance(card, dict):
        raise ModelFormatError(f"Expected {card_path} to hold a JSON object (the model card). Received: "
                               f"{type(card).__name__ if card is not None else 'null'}. Re-save or re-train the model.")
    return card


def replace_directory(directory: str | os.PathLike, fill: Callable[[Path], Any]) -> Path:
    """Write a whole folder atomically: ``fill(tmp_dir)`` then swap it into place.

    An existing folder is replaced only if it is empty or a toolkit model folder (has a
    card.json), so a mistyped ``--out`` never deletes a user's files.
    """
    directory = Path(directory).resolve()
    if directory.exists():
        if not directory.is_dir():
            raise ModelFormatError(f"Cannot save a model to {str(directory)!r}: it is a file. Choose a folder path.")
        if any(directory.iterdir()) and not (directory / CARD_FILE).exists():
            raise ModelFormatError(
                f"Cannot save a model to {str(directory)!r}: the folder is not empty and is not a "
                "toolkit model folder. Choose a new or empty folder."
            )
    _make_parent(directory)
    try:
        tmp = Path(tempfile.mkdtemp(dir=directory.parent, prefix=f".{directory.name}.tmp-"))
    except OSError as exc:
        raise output_error(directory, exc) from exc
    try:
        fill(tmp)
        os.chmod(tmp, 0o777 & ~current_umask())
        if directory.exists():
            old = Path(tempfile.mkdtemp(dir=directory.parent, prefix=f".{directory.name}.old-"))
            os.rmdir(old)
            os.replace(directory, old)
            os.replace(tmp, directory)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, directory)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return directory


def check_writable(out: str | os.PathLike | None, option: str = "--out", suffixes: tuple[str, ...] | None = None,
                   folder: bool = False) -> None:
    """Refuse ``--out`` before any work when it has an ending nothing writes, or when neither it
    nor the nearest existing folder above it can be written to (a read-only place, a file in the
    way)."""
    if out is None:
        return
    path = Path(out)
    if suffixes is not None and path.suffix.lower() not in suffixes:
        received = f"{path.suffix!r}" if path.suffix else "no file ending"
        raise OutputError(f"{option} must end in one of {', '.join(suffixes)}. Received {str(out)!r} ({received}). "
                          f"Name the file with one of those endings.")
    if path.is_dir() and not folder:
        raise OutputError(f"{option} {str(out)!r} is a folder. Expected a file path ending in "
                          f"{', '.join(suffixes or ('a file name',))}; add a file name.")
    if path.exists() and not path.is_dir() and folder and not path.suffix:
        raise OutputError(f"{option} {str(out)!r} is a file. Expected a folder; choose a new folder path.")
    above = path.resolve() if path.is_dir() else path.resolve().parent
    while not above.exists() and above != above.parent:
        above = above.parent
    if not above.is_dir():
        raise OutputError(f"Cannot write {option} {str(out)!r}: {str(above)!r} is a file, not a folder. "
                          "Choose a path in a folder.")
    if not os.access(above, os.W_OK | os.X_OK):
        raise OutputError(f"Cannot write {option} {str(out)!r}: the folder {str(above)!r} is not writable. "
                          "Choose a path in a folder you can write to.")
