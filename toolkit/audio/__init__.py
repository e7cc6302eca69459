"""Audio: spoken-word classification (``audio_classifier``) on raw samples, with the log-mel
spectrogram inside the model; decoding, resampling and speaker splits in :mod:`toolkit.audio.data`."""

from .classifier import AudioClassifier, AudioClassifierConfig, AudioSplits, load_audio_splits
from .data import (AudioData, AudioFormat, decode, group_split, list_audio_files, load_audio, load_audio_folder,
                   prepare_batch, prepare_waveform)
from .demo import explanation_image, predict_waveform, spectrogram_figure

__all__ = [
    "AudioClassifier",
    "AudioClassifierConfig",
    "AudioData",
    "AudioFormat",
    "AudioSplits",
    "decode",
    "explanation_image",
    "group_split",
    "list_audio_files",
    "load_audio",
    "load_audio_folder",
    "load_audio_splits",
    "predict_waveform",
    "prepare_batch",
    "prepare_waveform",
    "spectrogram_figure",
]
