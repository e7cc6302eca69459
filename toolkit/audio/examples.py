"""Short recordings as Make your own's examples: checked, written as files, and measured.

A recording is a file (path or bytes: WAV, FLAC, OGG, MP3) or a microphone take as Gradio gives it,
``(sample rate, samples)``; it must decode, last at most :data:`MAX_RECORDING_SECONDS` and not be
silent. The training is the ``audio_classifier`` recipe with its default backbone, the frozen
pretrained speech embedding and a head trained on the examples.
"""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError

MAX_RECORDING_BYTES = 5 * 1024 * 1024
MAX_RECORDING_SECONDS = 10.0


def _wav_bytes(rate: int, samples: np.ndarray) -> bytes:
    import soundfile as sf

    samples = np.asarray(samples)
    if np.issubdtype(samples.dtype, np.integer):
        samples = samples.astype(np.float32) / float(np.iinfo(samples.dtype).max)
    buffer = io.BytesIO()
    sf.write(buffer, np.clip(samples.astype(np.float32), -1, 1), int(rate), format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def check_recording(item: Any, label: str) -> tuple[bytes, str]:
    """(the recording's bytes, its file ending) after checking it decodes to a short, non-silent
    recording; a DataError naming ``label`` otherwise."""
    from .data import AUDIO_SUFFIXES, AudioFormat, decode, prepare_waveform

    ending = ".wav"
    if isinstance(item, dict):
        item = item.get("path") or item.get("name")
    elif not isinstance(item, (str, os.PathLike, bytes, tuple, list)):
        item = getattr(item, "path", None) or getattr(item, "name", None) or item
    if isinstance(item, (tuple, list)) and len(item) == 2 and np.ndim(item[1]) in (1, 2):
        rate, samples = item
        if not isinstance(rate, (int, np.integer)) or rate <= 0 or np.size(samples) == 0:
            raise DataError(f"{label}: expected a recording as (sample rate, samples). Received rate {rate!r} and "
                            f"{np.size(samples)} samples. Record it again.")
        data = _wav_bytes(int(rate), samples)
    elif isinstance(item, (str, os.PathLike)):
        path = Path(item)
        if not path.is_file():
            raise DataError(f"{label}: expected a recording file. Received {path.name!r}, which is not a file.")
        if path.suffix.lower() not in AUDIO_SUFFIXES:
            raise DataError(f"{label}: expected a recording ({', '.join(AUDIO_SUFFIXES)}). Received {path.name!r}.")
        if path.stat().st_size > MAX_RECORDING_BYTES:
            raise DataError(f"{label}: expected a recording of at most {MAX_RECORDING_BYTES // 2**20} MB. Received "
                            f"{path.stat().st_size / 2**20:.1f} MB. Cut the word out of it.")
        data, ending = path.read_bytes(), path.suffix.lower()
    elif isinstance(item, bytes):
        data = item
    else:
        raise DataError(f"{label}: expected a recording (a WAV/FLAC/OGG/MP3 file or a microphone take). Received "
                        f"{type(item).__name__}.")
    if len(data) > MAX_RECORDING_BYTES:
        raise DataError(f"{label}: expected a recording of at most {MAX_RECORDING_BYTES // 2**20} MB.")
    with tempfile.TemporaryDirectory() as tmp:
        probe = Path(tmp) / f"recording{ending}"
        probe.write_bytes(data)
        try:
            samples, rate = decode(probe, max_seconds=MAX_RECORDING_SECONDS)
            prepare_waveform(samples, rate, AudioFormat(), name=label)
        except DataError as exc:
            raise DataError(f"{label}: {str(exc).replace(probe.name, 'the recording')}") from None
    return data, ending


def held_out_recordings(task: Any, test: Path, originals: dict) -> tuple[list[dict], np.ndarray, np.ndarray]:
    """(items, prepared recordings, labels in the task's class order) of the held-out folder."""
    from .data import load_audio_folder

    data = load_audio_folder(test, task.config.audio_format, class_names=task.class_names_)
    items = [{"example": originals.get(str(f), Path(f).name), "file": str(f)} for f in data.files]
    return items, data.x, data.y
