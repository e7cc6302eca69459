"""Audio data: decode (soundfile / libsndfile: WAV, FLAC, OGG, MP3), mono, resample
(``scipy.signal.resample_poly``), trim silence, pad/crop to a fixed duration, loudness
normalisation; folders of labelled recordings and splits by speaker (group) when names give one.

Every problem with a file is a :class:`~toolkit.errors.DataError` naming the file and saying
what to do; a training folder skips unusable files with one warning that lists them.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import warnings
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from ..errors import DataError

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".oga", ".mp3", ".aiff", ".aif", ".au")
#: decoder format for a suffix, as ``soundfile.available_formats()`` names it
_FORMATS = {".wav": "WAV", ".flac": "FLAC", ".ogg": "OGG", ".oga": "OGG", ".mp3": "MP3", ".aiff": "AIFF",
            ".aif": "AIFF", ".au": "AU"}
MIN_SECONDS = 0.1  # shorter than this is not a word
MAX_SECONDS = 60.0  # longer recordings are refused before they are decoded
SILENCE_PEAK = 1e-3  # peak amplitude (full scale 1.0) below which a recording counts as silent
TARGET_DBFS = -14.0  # loudness normalisation target (RMS of the voiced part; peaks capped at 0.99)
CLIPPED_SHARE = 0.01  # share of samples at full scale that makes a recording "clipped"


@dataclasses.dataclass(frozen=True)
class AudioFormat:
    """How recordings become the model's input: rate, fixed length, silence trimming, loudness."""

    sample_rate: int = 8000
    duration: float = 1.0
    trim_db: float = 30.0  # trim leading/trailing audio quieter than peak - trim_db; 0: no trimming
    target_dbfs: float = TARGET_DBFS

    @property
    def samples(self) -> int:
        return int(round(self.sample_rate * self.duration))


def _soundfile():
    try:
        import soundfile
    except (ImportError, OSError) as exc:  # OSError: the libsndfile library is missing
        raise DataError("Decoding audio needs the soundfile package (libsndfile). Received an environment without "
                        f"it ({exc}). Install it: pip install soundfile.") from exc
    return soundfile


def decode(path: str | os.PathLike, max_seconds: float = MAX_SECONDS) -> tuple[np.ndarray, int]:
    """(float32 samples of shape (frames, channels) in [-1, 1], sample rate) of an audio file."""
    sf = _soundfile()
    path = Path(path)
    if not path.is_file():
        raise DataError(f"Expected an audio file. Received {str(path)!r}, which does not exist.")
    fmt = _FORMATS.get(path.suffix.lower())
    if fmt and fmt not in sf.available_formats():
        raise DataError(f"Cannot decode {path.name}: the installed libsndfile {sf.__libsndfile_version__} has no "
                        f"{fmt} decoder. Convert the file to WAV or FLAC, or upgrade soundfile (pip install -U "
                        "soundfile; its wheels bring libsndfile >= 1.1 with MP3).")
    try:
        info = sf.info(str(path))
        seconds = info.frames / info.samplerate if info.samplerate else 0.0
        if seconds > max_seconds:
            raise DataError(f"Expected a short recording of one word (at most {max_seconds:g} s). Received {path.name}: "
                            f"{seconds:.1f} s. Cut the word out of the recording first.")
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except DataError:
        raise
    except Exception as exc:  # soundfile.LibsndfileError, RuntimeError, TypeError on odd headers
        why = str(getattr(exc, "error_string", "") or exc).replace(str(path), path.name).rstrip(". ")  # no server paths
        raise DataError(f"Could not decode {path.name} as audio ({why}). Expected WAV, FLAC, OGG or MP3; check that "
                        "the file is a recording and not another file renamed.") from exc
    return data, int(rate)


def to_mono(data: np.ndarray) -> np.ndarray:
    """(frames, channels) or (frames,) -> (frames,) by averaging the channels."""
    data = np.asarray(data, dtype=np.float32)
    return data.mean(axis=1) if data.ndim == 2 else data


def resample(wave: np.ndarray, rate: int, target: int) -> np.ndarray:
    """Polyphase resampling (``scipy.signal.resample_poly``) from ``rate`` to ``target`` Hz."""
    if rate == target:
        return np.asarray(wave, dtype=np.float32)
    from scipy.signal import resample_poly

    g = math.gcd(int(rate), int(target))
    return resample_poly(wave, target // g, rate // g).astype(np.float32)


def trim_silence(wave: np.ndarray, rate: int, top_db: float) -> np.ndarray:
    """``wave`` without leading/trailing frames (10 ms) quieter than its loudest frame - ``top_db``."""
    if top_db <= 0 or len(wave) == 0:
        return wave
    hop = max(1, rate // 100)
    n = len(wave) // hop
    if n < 2:
        return wave
    energy = np.sqrt(np.mean(wave[: n * hop].reshape(n, hop) ** 2, axis=1)) + 1e-10
    loud = np.flatnonzero(20 * np.log10(energy / energy.max()) > -top_db)
    return wave[loud[0] * hop : min(len(wave), (loud[-1] + 1) * hop)]


def fix_length(wave: np.ndarray, samples: int) -> np.ndarray:
    """Centre ``wave`` in ``samples`` zeros, or keep its loudest ``samples``-long stretch."""
    if len(wave) == samples:
        return wave
    if len(wave) < samples:
        left = (samples - len(wave)) // 2
        return np.pad(wave, (left, samples - len(wave) - left))
    energy = np.concatenate([[0.0], np.cumsum(wave.astype(np.float64) ** 2)])
    start = int(np.argmax(energy[samples:] - energy[:-samples]))
    return wave[start : start + samples]


def normalise_loudness(wave: np.ndarray, target_dbfs: float = TARGET_DBFS) -> np.ndarray:
    """Scale to an RMS of ``target_dbfs`` (of the part louder than -40 dB below the peak), peaks kept within [-1, 1]."""
    peak = float(np.max(np.abs(wave))) if len(wave) else 0.0
    if peak <= 0:
        return wave
    voiced = wave[np.abs(wave) > peak * 0.01]
    rms = float(np.sqrt(np.mean(voiced.astype(np.float64) ** 2)))
    gain = min(10 ** (target_dbfs / 20) / rms, 0.99 / peak)
    return (wave * gain).astype(np.float32)


def prepare_waveform(wave: Any, rate: int, fmt: AudioFormat = AudioFormat(), name: str = "the recording") -> np.ndarray:
    """Raw samples (any rate, mono or (frames, channels), int or float) -> the model's input:
    ``fmt.samples`` float32 samples at ``fmt.sample_rate``, trimmed, centred and loudness-normalised.

    Raises DataError for silence and for recordings under 0.1 s; warns about clipping.
    """
    wave = np.asarray(wave)
    if wave.dtype.kind in "iu":  # integer PCM (e.g. a microphone's int16) -> [-1, 1]
        info = np.iinfo(wave.dtype)
        wave = (wave.astype(np.float32) - (info.max + 1 + info.min) / 2) / ((info.max - info.min + 1) / 2)
    wave = np.asarray(wave, dtype=np.float32)
    if wave.ndim == 2 and wave.shape[0] < wave.shape[1] and wave.shape[0] <= 8:
        wave = wave.T  # (channels, frames), as some libraries give it
    if wave.ndim not in (1, 2) or wave.size == 0:
        raise DataError(f"Expected audio samples of shape (frames,) or (frames, channels). Received {name} with "
                        f"shape {wave.shape}.")
    if not np.all(np.isfinite(wave)):
        raise DataError(f"{name} holds NaN or infinite samples. Expected finite samples in [-1, 1].")
    if not isinstance(rate, (int, np.integer)) or rate < 1000:
        raise DataError(f"Expected a sample rate in Hz (>= 1000). Received {rate!r} for {name}.")
    wave = to_mono(wave)
    seconds = len(wave) / rate
    if seconds < MIN_SECONDS:
        raise DataError(f"{name} is too short: {seconds:.3f} s. Expected at least {MIN_SECONDS} s of audio (one spoken "
                        "word); record again.")
    peak = float(np.max(np.abs(wave)))
    if peak < SILENCE_PEAK:
        raise DataError(f"{name} is silent (peak amplitude {peak:.1e} of full scale). Expected speech; check the "
                        "microphone and record again.")
    if np.mean(np.abs(wave) >= 0.999 * max(peak, 1.0)) > CLIPPED_SHARE:
        warnings.warn(f"{name} is clipped (over {CLIPPED_SHARE:.0%} of its samples at full scale); predictions may "
                      "suffer. Record with less gain.", stacklevel=2)
    wave = resample(wave, int(rate), fmt.sample_rate)
    wave = trim_silence(wave, fmt.sample_rate, fmt.trim_db)
    return normalise_loudness(fix_length(wave, fmt.samples), fmt.target_dbfs)


def load_audio(path: str | os.PathLike, fmt: AudioFormat = AudioFormat()) -> np.ndarray:
    """One file -> the model's input (see :func:`prepare_waveform`)."""
    data, rate = decode(path)
    return prepare_waveform(data, rate, fmt, name=Path(path).name)


@dataclasses.dataclass
class AudioData:
    """Prepared recordings ``x`` (N, samples), integer labels ``y``, class names, and per-file
    ``groups`` (speakers/sessions; None when the names give none) and ``files``."""

    x: np.ndarray
    y: np.ndarray
    class_names: list[str]
    groups: np.ndarray | None = None
    files: list[str] = dataclasses.field(default_factory=list)

    def __len__(self) -> int:
        return len(self.y)

    def subset(self, index: Iterable[int]) -> "AudioData":
        index = np.asarray(list(index), dtype=int)
        return AudioData(self.x[index], self.y[index], list(self.class_names),
                         None if self.groups is None else self.groups[index],
                         [self.files[i] for i in index] if self.files else [])


def _compiled(pattern: str | None, what: str) -> re.Pattern | None:
    if pattern is None:
        return None
    try:
        compiled = re.compile(pattern)
    except re.error as exc:
        raise DataError(f"--{what} must be a regular expression. Received {pattern!r}: {exc}.") from exc
    if compiled.groups < 1:
        raise DataError(f"--{what} needs one capturing group, e.g. '^(\\d+)_'. Received {pattern!r}.")
    return compiled


def _captured(pattern: re.Pattern, name: str, what: str) -> str:
    match = pattern.search(name)
    if match is None:
        raise DataError(f"--{what} {pattern.pattern!r} does not match the file name {name!r}. Fix the pattern, or "
                        "move that file out of the folder.")
    return match.group(1)


def list_audio_files(folder: str | os.PathLike, label_from_name: str | None = None,
                     group_from_name: str | None = None) -> tuple[list[Path], list[str], list[str] | None]:
    """(files, labels, groups or None) of a folder: labels from one subfolder per class, or from
    the file names by the regex ``label_from_name`` (its first group)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"Expected a folder of audio files. Received {str(folder)!r}, which is not a folder.")
    label_re, group_re = _compiled(label_from_name, "label-from-name"), _compiled(group_from_name, "group-from-name")
    if label_re is not None:
        files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)
        labels = [_captured(label_re, p.name, "label-from-name") for p in files]
    else:
        files, labels = [], []
        for sub in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
            for p in sorted(sub.iterdir()):
                if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES:
                    files.append(p)
                    labels.append(sub.name)
    if not files:
        how = ("no audio file names match" if label_re is not None else
               "no subfolders with audio files (one subfolder per class), and no --label-from-name pattern")
        raise DataError(f"Expected audio files ({', '.join(AUDIO_SUFFIXES)}) in {str(folder)!r}: {how}.")
    groups = [_captured(group_re, p.name, "group-from-name") for p in files] if group_re is not None else None
    return files, labels, groups


def _label_order(labels: list[str]) -> list[str]:
    names = sorted(set(labels))
    return sorted(names, key=int) if all(n.isdigit() for n in names) else names


def load_audio_folder(folder: str | os.PathLike, fmt: AudioFormat = AudioFormat(), label_from_name: str | None = None,
                      group_from_name: str | None = None, class_names: list[str] | None = None) -> AudioData:
    """Every usable recording of a folder, prepared (:func:`prepare_waveform`). Unusable files
    (not audio, silent, too short or long) are skipped with one warning naming them; a folder
    without any usable file, or with labels outside ``class_names``, is a DataError."""
    files, labels, groups = list_audio_files(folder, label_from_name, group_from_name)
    names = list(class_names) if class_names is not None else _label_order(labels)
    unknown = sorted(set(labels) - set(names))
    if unknown:
        raise DataError(f"{folder} has classes the model does not know: {unknown}. Expected only {names}.")
    xs, keep, skipped = [], [], []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for i, path in enumerate(files):
            try:
                xs.append(load_audio(path, fmt))
                keep.append(i)
            except DataError as exc:
                skipped.append(f"{path.name} ({exc})")
    clipped = [str(w.message).split(" is clipped")[0] for w in caught if "is clipped" in str(w.message)]
    if skipped:
        warnings.warn(f"Skipped {len(skipped)} of {len(files)} files in {folder}: " + "; ".join(skipped[:5])
                      + (" ..." if len(skipped) > 5 else ""), stacklevel=2)
    if clipped:
        warnings.warn(f"{len(clipped)} clipped recordings in {folder}, e.g. {clipped[:3]}.", stacklevel=2)
    if not keep:
        raise DataError(f"No usable recording in {folder}: " + "; ".join(skipped[:3]))
    y = np.array([names.index(labels[i]) for i in keep], dtype=np.int64)
    g = None if groups is None else np.array([groups[i] for i in keep])
    return AudioData(np.stack(xs).astype(np.float32), y, names, g, [files[i].name for i in keep])


def group_split(data: AudioData, test_size: float, seed: int = 42,
                test_groups: Iterable[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(train, test) indices: whole groups (speakers) held out when ``data.groups`` is known,
    ``test_groups`` if given, else about ``test_size`` of the groups (at least one); otherwise a
    stratified random split of the recordings."""
    n = len(data)
    if data.groups is not None:
        names = sorted(set(data.groups.tolist()))
        if test_groups is not None:
            held = sorted(set(test_groups))
            missing = sorted(set(held) - set(names))
            if missing:
                raise DataError(f"Unknown test groups {missing}. The file names give {names}.")
        else:
            if len(names) < 2:
                raise DataError(f"A split by group needs at least two groups; the file names give {names}. Drop "
                                "--group-from-name or pass --test-data.")
            k = min(len(names) - 1, max(1, int(round(test_size * len(names)))))
            held = sorted(np.random.default_rng(seed).choice(names, k, replace=False).tolist())
        test = np.isin(data.groups, held)
        return np.flatnonzero(~test), np.flatnonzero(test)
    from sklearn.model_selection import train_test_split

    counts = np.bincount(data.y)
    stratify = data.y if counts[counts > 0].min() >= 2 else None
    train, test = train_test_split(np.arange(n), test_size=test_size, random_state=seed, stratify=stratify)
    return np.sort(train), np.sort(test)


def _prepare_one(item: Any, fmt: AudioFormat) -> np.ndarray:
    if isinstance(item, (str, os.PathLike)):
        data, rate = decode(item)
        return prepare_waveform(data, rate, fmt, name=Path(item).name)
    if isinstance(item, tuple) and len(item) == 2:
        a, b = item
        rate, wave = (a, b) if isinstance(a, (int, np.integer)) else (b, a)
        return prepare_waveform(wave, int(rate) if isinstance(rate, (int, np.integer)) else rate, fmt)
    return prepare_waveform(item, fmt.sample_rate, fmt)


def prepare_batch(x: Any, fmt: AudioFormat) -> np.ndarray:
    """Recordings -> (N, samples) float32: a file, a ``(samples, rate)`` or ``(rate, samples)``
    pair, samples at ``fmt.sample_rate`` ((frames,) or (frames, channels)), an (N, samples) batch
    of such, or a list of any of these."""
    if isinstance(x, (str, os.PathLike)) or (isinstance(x, tuple) and len(x) == 2 and
                                             any(isinstance(v, (int, np.integer)) for v in x)):
        return _prepare_one(x, fmt)[None]
    if isinstance(x, (list, tuple)):
        if not x:
            raise DataError("Expected at least one recording. Received an empty list.")
        return np.stack([_prepare_one(item, fmt) for item in x])
    array = np.asarray(x)
    if array.ndim == 2 and array.shape[1] > 8:  # a batch of mono recordings
        return np.stack([_prepare_one(row, fmt) for row in array])
    return _prepare_one(array, fmt)[None]
