"""Spoken-word recognition: AudioClassifierConfig and AudioClassifier.

The Keras model takes raw samples (``duration`` seconds at ``sample_rate``, loudness-normalised
by :func:`toolkit.audio.data.prepare_waveform`) and computes its log-mel spectrogram itself
(:class:`~toolkit.audio.layers.LogMelSpectrogram`), so the exported ``.tflite`` is the whole
pipeline. ``backbone`` "scratch": a small conv net (the nested model ``head``) classifies the
spectrogram; waveform augmentation and SpecAugment masks run only while training.
"speech_embedding" (:mod:`toolkit.audio.pretrained`): the front end and head of the frozen
pretrained speech embedding with a trained classifier on top. With ``test_speeds`` the trained
model is rebuilt for inference as the clip played at those speeds (fixed resampling, builtin
TFLite ops) through the same front end and head, the probabilities averaged.
"""

from __future__ import annotations

import dataclasses
import os
import re
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..base import ClassifierMixin, ExportPlan, Task, register_task, write_labels
from ..config import (Bounded, RecipeOption, check_choice, check_fraction, check_non_negative, check_positive, check_range, out_option,
                      setting, strategy_setting, verbose_option)
from ..edge.runner import check_classifier_file
from ..distributed import record_scaling
from ..errors import DataError, ExportError
from ..explain import Explanation
from ..metrics import ClassificationReport, classification_report
from ..serving import run_in_chunks
from .calibrate import calibrate_audio, serving_function
from .data import AudioData, AudioFormat, group_split, load_audio_folder, prepare_batch
from .pretrained import BACKBONES, check_backbone, hop_samples
from .pretrained import FLOAT_IN_INT8 as EMBEDDING_FLOAT_IN_INT8

DEFAULT_BUDGETS = {"occlusion": 6, "gradcam": 1, "lime": 300}
POOLINGS = ("flatten", "average")
SCHEDULES = ("plateau", "cosine")
NORMALIZATIONS = ("mean", "meanvar")


@dataclasses.dataclass(frozen=True)
class AudioClassifierConfig:
    """Settings of an :class:`AudioClassifier`; make variants with ``dataclasses.replace``."""

    label_from_name: str | None = setting(None, "regex whose first group is the label in each file name, e.g. "
                                                "'^(\\d+)_' (default: one subfolder per class)")
    group_from_name: str | None = setting(None, "regex whose first group is the speaker/session in each file name, "
                                                "e.g. '^\\d+_([a-z]+)_'; test splits then hold out whole speakers")
    backbone: str = setting("speech_embedding", "scratch: a conv net trained on the recordings; speech_embedding: Google's "
                                       "pretrained speech embedding, frozen, with a trained head (needs --duration "
                                       ">= 0.8)", choices=BACKBONES)
    sample_rate: int = setting(8000, "rate (Hz) recordings are resampled to")
    duration: float = setting(1.0, "seconds the model hears: recordings are trimmed of silence, then centred "
                                   "(padded) or cut to their loudest stretch")
    n_mels: int = setting(40, "mel bands of the spectrogram")
    frame_length: int = setting(256, "STFT frame (samples; 32 ms at 8 kHz)")
    hop_length: int = setting(128, "STFT hop (samples)")
    filters: tuple[int, ...] = setting((16, 32, 64), "conv filters per block (each block halves time and "
                                                      "frequency)")
    convs_per_block: int = setting(1, "3x3 convolutions per block (deeper nets see longer patterns)", tune=(1, 3))
    members: int = setting(1, "conv nets trained side by side on the same batches, each from its own "
                              "initialisation and loss, their probabilities averaged inside the one model (an "
                              "ensemble in one file)", tune=(1, 5))
    normalization: str = setting("mean", "per recording, before the conv net: mean (each mel band's mean over time "
                                         "subtracted) or meanvar (then divided by the recording's standard "
                                         "deviation; on inner speaker splits it tied with mean)", choices=NORMALIZATIONS)
    pooling: str = setting("flatten", "how the last conv block becomes features: flatten (keeps where in time and "
                                      "frequency) or average", choices=POOLINGS)
    dropout: float = setting(0.3, "dropout before the classification layer", tune=(0.0, 0.5))
    augment: bool = setting(True, "time shift, gain, noise, mel warp, time stretch and SpecAugment masks while "
                                  "training")
    warp: float = setting(0.1, "with --augment: mel axis warped by up to +-this share (vocal tract length "
                               "perturbation: other voices)", tune=(0.0, 0.2))
    stretch: float = setting(0.1, "with --augment: time axis stretched by up to +-this share (speaking rate)",
                             tune=(0.0, 0.25))
    speed: float = setting(0.0, "with --augment: waveform resampled by a factor within 1 +-this share (speed "
                                "perturbation: pitch, formants and rate of another speaker)", tune=(0.0, 0.2))
    mixup: float = setting(0.0, "mixup: Beta(a, a) blends of two training recordings and their labels; 0: off",
                           tune=(0.0, 0.5))
    label_smoothing: float = setting(0.0, "label smoothing of the cross-entropy", tune=(0.0, 0.2))
    schedule: str = setting("plateau", "learning rate: plateau (cut by 3 when validation stalls) or cosine (decay "
                                       "to 0 over --epochs)", choices=SCHEDULES)
    test_speeds: tuple[float, ...] | None = setting(None, "playback speeds whose predictions the model averages "
                                                    "(test-time augmentation inside the model, so the exported file "
                                                    "does it too); 1: one pass; default: 0.95 1 1.05 with --backbone "
                                                    "scratch, 1 with speech_embedding (3x the time for +0.2 points "
                                                    "on inner speaker splits)")
    epochs: int = setting(40, "epochs (with --schedule cosine, the learning rate reaches 0 at the last); early "
                                   "stopping may end sooner", tune=(5, 100))
    batch_size: int = setting(32, "batch size", tune=(8, 128))
    learning_rate: float = setting(2e-3, "Adam learning rate", tune=(1e-4, 1e-2))
    patience: int = setting(8, "early-stopping patience in epochs (the best epoch's weights are kept)",
                            tune=(2, 30))
    validation_split: float = setting(0.1, "share of the training recordings for early stopping")
    transfer_from: str | None = setting(None, "a saved audio_classifier folder whose conv layers start this model "
                                              "(a new output layer for the new classes)")
    freeze_base: bool = setting(False, "with --transfer-from: train only the new output layer")
    hidden: int = setting(0, "with --backbone speech_embedding: units of a hidden layer in the head; 0: none",
                          tune=(0, 256))
    copies: int = setting(2, "with --backbone speech_embedding and --augment: augmented copies (shift, gain, noise, "
                             "--speed) of each training recording the head also learns from", tune=(0, 8))
    seed: int = setting(0, "seeds the weights, the split and the augmentation")
    strategy: Any = strategy_setting()
    #: a card saved before ``backbone`` existed holds a from-scratch conv net
    CARD_DEFAULTS = {"backbone": "scratch"}

    @property
    def frame_hop(self) -> int:
        """Samples between two spectrogram frames of the model's front end: ``hop_length`` for the
        conv net, the embedding front end's 10 ms for the pretrained backbone."""
        return self.hop_length if self.backbone == "scratch" else hop_samples(self.sample_rate)

    def __post_init__(self) -> None:
        if isinstance(self.transfer_from, os.PathLike):
            object.__setattr__(self, "transfer_from", str(self.transfer_from))
        object.__setattr__(self, "filters", tuple(int(f) for f in self.filters))
        if self.test_speeds is None:
            object.__setattr__(self, "test_speeds", (0.95, 1.0, 1.05) if self.backbone == "scratch" else (1.0,))
        object.__setattr__(self, "test_speeds", tuple(float(f) for f in (self.test_speeds or ())))
        if any(not 0.5 <= f <= 2.0 for f in self.test_speeds):
            raise ValueError(f"test_speeds must be playback speeds within [0.5, 2], e.g. 0.9 1 1.1. Received "
                             f"{self.test_speeds!r}.")
        check_positive(self, "sample_rate", "duration", "n_mels", "frame_length", "hop_length", "epochs",
                       "batch_size", "learning_rate", "patience")
        if not self.filters or min(self.filters) < 1:
            raise ValueError(f"filters must be positive ints, one per block. Received {self.filters!r}.")
        if self.sample_rate * self.duration < self.frame_length:
            raise ValueError(f"duration x sample_rate must hold one STFT frame ({self.frame_length} samples). "
                             f"Received {self.duration} s at {self.sample_rate} Hz.")
        check_non_negative(self, "dropout", "warp", "stretch", "speed", "mixup", "label_smoothing")
        check_positive(self, "convs_per_block", "members")
        check_choice("pooling", self.pooling, POOLINGS)
        check_choice("backbone", self.backbone, BACKBONES)
        check_non_negative(self, "hidden", "copies")
        check_backbone(self)
        check_choice("schedule", self.schedule, SCHEDULES)
        check_choice("normalization", self.normalization, NORMALIZATIONS)
        check_range("speed", self.speed, 0, 1, high_closed=False)
        check_range("label_smoothing", self.label_smoothing, 0, 1, high_closed=False)
        check_range("dropout", self.dropout, 0, 1, high_closed=False)
        check_fraction(self, "validation_split")

    @property
    def audio_format(self) -> AudioFormat:
        return AudioFormat(self.sample_rate, self.duration)


@dataclasses.dataclass
class AudioSplits:
    """Train and test recordings and how they were made (the card's ``data``)."""

    train: AudioData
    test: AudioData | None
    spec: dict


def load_audio_splits(data: str | os.PathLike, config: AudioClassifierConfig, test_size: float = 0.2, seed: int = 42,
                      test_data: str | os.PathLike | None = None, test_groups: list[str] | None = None) -> AudioSplits:
    """A folder split into train/test: by speaker when ``config.group_from_name`` is set (the
    held-out speakers are recorded in ``spec``), a stratified random split otherwise;
    ``test_data`` a separate folder; ``test_size=0`` no test split."""
    fmt, patterns = config.audio_format, dict(label_from_name=config.label_from_name,
                                              group_from_name=config.group_from_name)
    everything = load_audio_folder(data, fmt, **patterns)
    spec = {"source": str(Path(data).resolve()), "test_size": test_size, "seed": seed}
    if test_data is not None:
        test = load_audio_folder(test_data, fmt, class_names=everything.class_names, **patterns)
        spec.update(test_size=None, test_source=str(Path(test_data).resolve()))
        return AudioSplits(everything, test, spec)
    if not test_size and not test_groups:
        spec["test_size"] = 0
        return AudioSplits(everything, None, spec)
    train, test = group_split(everything, test_size, seed, test_groups)
    if everything.groups is not None:
        spec["test_groups"] = sorted(set(everything.groups[test].tolist()))
    return AudioSplits(everything.subset(train), everything.subset(test), spec)


@register_task("audio_classifier", aliases=("speech",))
class AudioClassifier(ClassifierMixin, Task):
    """Spoken-word classifier: raw samples in, log-mel spectrogram and a small conv net inside the model.

    >>> clf = AudioClassifier(label_from_name=r"^(\\d+)_", group_from_name=r"^\\d+_([a-z]+)_").fit(folder)
    >>> clf.top_k("seven.wav", k=3); clf.top_k((waveform, 16000))      # files, or samples with their rate
    >>> clf.explain("seven.wav").save("why.png")                       # occlusion on the spectrogram
    >>> clf.save("m"); clf.export("m", quantization="int8")            # waveform in, probabilities out
    """

    tags = frozenset({"classifier"})
    input_kind = "audio"
    explain_methods = ("occlusion", "gradcam", "lime")
    recipe_options = (
        RecipeOption("data", "a folder of recordings: one subfolder per class, or --label-from-name", required=True),
        out_option(),
        RecipeOption("test_data", "a separate test folder (default: hold out --test-size of the speakers, or of "
                                  "the recordings when there is no --group-from-name)"),
        RecipeOption("test_size", "share of the speakers (or recordings) held out for testing; 0: none (the shipped "
                                  "model trains on every speaker)", 0.2,
                     Bounded(float, 0, 1, high_closed=False, hint="E.g. 0.2 holds out a fifth; 0 none.")),
        RecipeOption("test_groups", "speakers to hold out, comma-separated (default: drawn at random)"),
        verbose_option(2),
    )
    config_class = AudioClassifierConfig

    @classmethod
    def train_recipe(cls, out, *, command: str | None = None, callbacks: list | None = None, **options: Any) -> dict:
        """Train on ``data`` (held-out speakers, ``test_data`` or none), save to ``out`` with the test
        metrics and confusion_matrix.png; returns {out, epochs, metrics}. ``callbacks`` (Keras
        callbacks: progress, cancel) go to ``fit``."""
        from ..config import config_and_options

        config, opts = config_and_options(cls.config_class, cls.recipe_options, options)
        groups = opts["test_groups"]
        groups = [g.strip() for g in groups.split(",") if g.strip()] if isinstance(groups, str) else groups
        splits = load_audio_splits(opts["data"], config, opts["test_size"], 42, opts["test_data"], groups)
        clf = cls(config).fit(splits.train, verbose=opts["verbose"], callbacks=callbacks)
        clf.data_spec_ = splits.spec
        report = clf.report(splits.test) if splits.test is not None else None
        clf.metrics_ = {} if report is None else {"test_" + k: v for k, v in report.metrics.items() if "/" not in k}
        clf.command_ = command
        directory = clf.save(out)
        if report is not None:
            report.save_confusion_matrix(directory / "confusion_matrix.png")
        return {"out": str(directory), "epochs": len(clf.history_["loss"]), "metrics": clf.metrics_,
                "data": splits.spec}

    def __init__(self, config: AudioClassifierConfig | None = None, **overrides: Any):
        super().__init__(config, **overrides)
        self.class_names_: list[str] = []
        self._calibration: np.ndarray | None = None
        self._serve = None

    # ================================================================== model
    def _build_model(self, n_classes: int):
        import keras

        from .layers import LogMelSpectrogram, SpecAugment, WaveAugment
        from .network import build_head

        cfg = self.config
        fmt = cfg.audio_format
        frontend = LogMelSpectrogram(cfg.sample_rate, cfg.frame_length, cfg.hop_length, cfg.n_mels, name="logmel")
        head = build_head(cfg, 1 + (fmt.samples - cfg.frame_length) // cfg.hop_length, n_classes)
        waveform = keras.Input((fmt.samples,), name="waveform")
        x = WaveAugment(seed=cfg.seed, speed=cfg.speed, name="wave_augment")(waveform) if cfg.augment else waveform
        x = frontend(x)
        if cfg.augment:
            x = SpecAugment(seed=cfg.seed, warp=cfg.warp, stretch=cfg.stretch, name="spec_augment")(x)
        return keras.Model(waveform, head(x), name="audio_classifier")

    def _inference_model(self, model):
        """The trained model for inference: with ``test_speeds``, the clip played at each speed through
        the same front end and head, and their probabilities averaged (augmentation layers dropped:
        they are identity at inference); else ``model`` itself."""
        import keras

        from .layers import PlaybackSpeed

        speeds = self.config.test_speeds
        if not speeds or speeds == (1.0,):
            return model
        frontend, head = model.get_layer("logmel"), model.get_layer("head")
        waveform = keras.Input((self.config.audio_format.samples,), name="waveform")
        outputs = [head(frontend(waveform if speed == 1.0 else PlaybackSpeed(speed, name=f"speed_{i}")(waveform)))
                   for i, speed in enumerate(speeds)]
        out = outputs[0] if len(outputs) == 1 else keras.layers.Average(name="speed_average")(outputs)
        return keras.Model(waveform, out, name="audio_classifier")

    def _transfer(self) -> None:
        """Copy the conv layers (and input norm) of ``transfer_from``'s head into this model's head."""
        cfg = self.config
        base = type(self).load(cfg.transfer_from)
        if dataclasses.replace(base.config, transfer_from=None, freeze_base=False).audio_format != cfg.audio_format or \
                base.config.filters != cfg.filters or base.config.n_mels != cfg.n_mels or \
                base.config.convs_per_block != cfg.convs_per_block:
            raise DataError(f"--transfer-from {cfg.transfer_from} has another input or architecture (rate, duration, "
                            "mels, filters); train with the same ones.")
        mine, theirs = self.model_.get_layer("head"), base.model_.get_layer("head")
        known = {layer.name for layer in theirs.layers}
        for layer in mine.layers:
            if layer.weights and not layer.name.endswith("predictions"):  # a member the base lacks: its first net's
                name = layer.name if layer.name in known else re.sub(r"^m\d+_", "", layer.name)
                layer.set_weights(theirs.get_layer(name).get_weights())
                if cfg.freeze_base:
                    layer.trainable = False

    # ================================================================== fit
    def fit(self, data: Any, validation_data: Any = None, verbose: int = 0, callbacks: list | None = None,
            **overrides: Any) -> "AudioClassifier":
        """Train on a folder, :class:`AudioData`, :class:`AudioSplits` (its train part) or ``(x, y)``
        (raw waveforms at ``sample_rate``, or files, with labels). Without ``validation_data``,
        ``validation_split`` of the recordings (stratified) is held out for early stopping."""
        import keras
        import tensorflow as tf

        from .network import averaged_head

        if overrides:
            self.config = dataclasses.replace(self.config, **overrides)
        cfg = self.config
        keras.utils.set_random_seed(cfg.seed)
        train = self._resolve(data.train if isinstance(data, AudioSplits) else data)
        if len(train) < 4 or len(train.class_names) < 2:
            raise DataError(f"Expected at least 4 recordings of at least 2 classes. Received {len(train)} of "
                            f"{train.class_names}.")
        if validation_data is None:
            from sklearn.model_selection import train_test_split

            counts = np.bincount(train.y)
            n_val = max(len(train.class_names), int(round(cfg.validation_split * len(train))))
            stratify = train.y if counts.min() >= 2 and n_val < len(train) - len(train.class_names) else None
            rest, held = train_test_split(np.arange(len(train)), test_size=n_val, random_state=cfg.seed,
                                          stratify=stratify)
            train, val = train.subset(np.sort(rest)), train.subset(np.sort(held))
        else:
            val = self._resolve(validation_data, train.class_names)
        self.class_names_ = list(train.class_names)
        strategy = cfg.strategy or tf.distribute.get_strategy()
        self._serve = None
        if cfg.backbone == "speech_embedding":  # frozen backbone: its features once, then the head
            from .pretrained import fit_pretrained

            with strategy.scope():
                self.model_, history = fit_pretrained(cfg, train, val, verbose, callbacks)
        else:
            history = self._fit_network(train, val, strategy, verbose, callbacks)
        self.history_ = {k: [float(v) for v in vals] for k, vals in history.items()}
        with strategy.scope():  # the averaged model shares the trained layers, so it lives where they do
            if cfg.members > 1:  # the members' probabilities averaged (augmentation layers: identity, dropped)
                waveform = keras.Input((cfg.audio_format.samples,), name="waveform")
                head = averaged_head(self.model_.get_layer("head"))
                self.model_ = keras.Model(waveform, head(self.model_.get_layer("logmel")(waveform)),
                                          name="audio_classifier")
            self.model_ = self._inference_model(self.model_)
        pick = np.random.default_rng(cfg.seed).choice(len(train), min(500, len(train)), replace=False)
        self._calibration = train.x[np.sort(pick)]
        self.calibration_ = calibrate_audio(self, val, self._calibration, cfg.seed) if len(val) >= 2 else None
        self.data_spec_ = {"source": str(Path(data).resolve())} if isinstance(data, (str, os.PathLike)) else (
            dict(data.spec) if isinstance(data, AudioSplits) else {"source": "arrays"})
        self.metrics_, self.tflite_, self.directory_ = {}, [], None
        return self

    def _fit_network(self, train: AudioData, val: AudioData, strategy, verbose: int, callbacks) -> dict:
        """Build and train the from-scratch model (``backbone`` scratch); returns the Keras history."""
        import keras

        from .network import loss_and_metric, training_batches

        cfg = self.config
        n_classes = len(self.class_names_)
        batch_size = record_scaling(self, min(cfg.batch_size, len(train)), cfg.learning_rate)  # the global batch
        steps = -(-len(train) // batch_size)
        with strategy.scope():
            self.model_ = self._build_model(n_classes)
            if cfg.transfer_from:
                self._transfer()
            rate = (keras.optimizers.schedules.CosineDecay(cfg.learning_rate, cfg.epochs * steps)
                    if cfg.schedule == "cosine" else cfg.learning_rate)
            loss, accuracy = loss_and_metric(cfg)
            self.model_.compile(optimizer=keras.optimizers.Adam(rate), loss=loss, metrics=[accuracy])
        stop = [keras.callbacks.EarlyStopping(patience=cfg.patience, restore_best_weights=True)]
        if cfg.schedule == "plateau":
            stop.append(keras.callbacks.ReduceLROnPlateau(factor=1 / 3, patience=max(1, cfg.patience // 2 - 1)))
        one_hot = np.eye(n_classes, dtype=np.float32)
        if cfg.mixup > 0:  # shuffled, blended batches from tf.data
            inputs = dict(x=training_batches(train.x, one_hot[train.y], batch_size, cfg.mixup, cfg.seed),
                          shuffle=False)
        else:
            inputs = dict(x=train.x, y=one_hot[train.y], batch_size=batch_size, shuffle=True)
        history = self.model_.fit(**inputs, validation_data=(val.x, one_hot[val.y]), epochs=cfg.epochs,
                                  verbose=verbose, callbacks=stop + list(callbacks or []))
        return history.history

    def _resolve(self, data: Any, class_names: list[str] | None = None) -> AudioData:
        """A folder, AudioData, AudioSplits (its test part) or (x, y) as prepared AudioData."""
        names = class_names if class_names is not None else (self.class_names_ or None)
        if isinstance(data, AudioSplits):
            data = data.test
        if isinstance(data, (str, os.PathLike)):
            return load_audio_folder(data, self.config.audio_format, self.config.label_from_name,
                                     self.config.group_from_name, class_names=names)
        if isinstance(data, AudioData):
            if names is not None and list(data.class_names) != list(names):
                mapping = [list(names).index(n) if n in names else -1 for n in data.class_names]
                if min(mapping) < 0:
                    raise DataError(f"The data has classes {data.class_names}; the model knows {list(names)}.")
                data = dataclasses.replace(data, y=np.asarray(mapping)[data.y], class_names=list(names))
            return data
        if isinstance(data, tuple) and len(data) == 2:
            x = self._prepare(data[0])
            labels = np.asarray(data[1])
            if len(labels) != len(x):
                raise DataError(f"Expected one label per recording. Received {len(x)} recordings, {len(labels)} labels.")
            if names is None:
                names = sorted(set(labels.tolist()), key=str)
            names = [str(n) for n in names]
            text = [str(v) for v in labels.tolist()]
            unknown = sorted(set(text) - set(names))
            if unknown:
                raise DataError(f"Unknown labels {unknown}. Expected one of {names}.")
            return AudioData(x, np.array([names.index(t) for t in text]), names, None, [])
        raise DataError(f"Expected a folder of recordings, AudioData or (waveforms, labels). Received "
                        f"{type(data).__name__}.")

    def load_data(self, source: Any) -> Any:
        return self._resolve(source)

    # ================================================================== predict
    @staticmethod
    def input_format(card: dict) -> AudioFormat:
        spec = card["input"]
        return AudioFormat(int(spec["sample_rate"]), float(spec["duration"]))

    @classmethod
    def prepare_input(cls, x: Any, card: dict, directory: str | os.PathLike | None = None) -> np.ndarray:
        """Files, ``(samples, rate)`` / ``(rate, samples)`` pairs, or sample arrays at the model's
        rate (one, a list, or an (N, samples) batch) -> the model's (N, samples) input."""
        return prepare_batch(x, cls.input_format(card))

    def _prepare(self, x: Any) -> np.ndarray:
        return prepare_batch(x, self.config.audio_format)

    def prepare(self, x: Any) -> np.ndarray:
        self._check_fitted()
        return self._prepare(x)

    def probabilities(self, batch: np.ndarray) -> np.ndarray:
        return self.probabilities_and_features(batch)[0]

    def probabilities_and_features(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """(probabilities, the head's features or None: :mod:`toolkit.audio.calibrate`) in one traced pass."""
        self._check_fitted()
        if self._serve is None:
            self._serve = serving_function(self)
        out = run_in_chunks(self._serve, np.asarray(batch, np.float32))
        n = len(self.class_names_)
        return out[:, :n], (out[:, n:] if out.shape[1] > n else None)

    def spectrogram(self, x: Any) -> np.ndarray:
        """The log-mel spectrogram (frames, mels) the model computes for one recording."""
        import keras

        self._check_fitted()
        batch = self.prepare(x)
        return np.asarray(self.model_.get_layer("logmel")(keras.ops.convert_to_tensor(batch[:1])))[0, ..., 0]

    # ================================================================== evaluate
    def report(self, data: Any) -> ClassificationReport:
        """Accuracy, per-class precision/recall/F1 and the confusion matrix on ``data``."""
        self._check_fitted()
        test = self._resolve(data)
        return classification_report(test.y, self.probabilities(test.x), self.class_names_)

    def evaluate(self, data: Any) -> dict[str, float]:
        return self.report(data).metrics

    # ================================================================== explain
    def explain(self, x: Any, method: str = "occlusion", target: int | str | None = None,
                budget: int | None = None, seed: int = 0, predictor: Any = None) -> Explanation:
        """Which time-frequency regions of one recording drove the answer, drawn over its spectrogram.

        ``"occlusion"``: the drop in the target's probability when a patch of the spectrogram is
        blanked (``budget``: patch width in frames; signed). ``"gradcam"``: Grad-CAM on the last
        conv block (pretrained backbone: the embedding net's ``GRADCAM_LAYER``). ``"lime"``: LIME
        on ten time segments (``budget`` silenced copies; a TFLite ``predictor`` may answer). ``target``: class name or index (default: the predicted class).
        """
        from .explain import gradcam_map, lime_segments, occlusion_map, spectrogram_image

        method = type(self).check_explain_method(method)
        self._check_fitted()
        batch = self.prepare(x)
        if len(batch) != 1:
            raise DataError(f"explain() takes one recording. Received a batch of {len(batch)}.")
        probs = (predictor or self).probabilities(batch)[0]
        index = self._target_index(target, probs)
        budget = int(budget if budget is not None else DEFAULT_BUDGETS[method])
        if budget < 1:
            raise ValueError(f"budget must be >= 1. Received {budget}.")
        spec = self.spectrogram(batch)
        head, cfg = self.model_.get_layer("head"), self.config
        hop = cfg.frame_hop
        start = time.perf_counter()
        if method == "occlusion":
            attributions, evaluations = occlusion_map(lambda s: head(s, training=False), spec, index,
                                                      patch=(budget, max(2, spec.shape[1] // 8)))
        elif method == "gradcam" and cfg.backbone != "scratch":  # on the frozen embedding net's conv layer
            from .pretrained import gradcam_map as embedding_gradcam

            attributions, evaluations = embedding_gradcam(head, spec, index), 1
        elif method == "gradcam":
            last = f"relu{len(self.config.filters) - 1}"
            attributions, evaluations = gradcam_map(head, spec, index, last), 1
        else:  # LIME on ten time segments, answered by ``predictor`` (a TFLite file can)
            weights = lime_segments((predictor or self).probabilities, batch[0], index, 10, budget, seed)
            frames = np.minimum((np.arange(spec.shape[0]) * hop * 10) // batch.shape[1], 9)
            attributions, evaluations = np.repeat(weights[frames][:, None], spec.shape[1], axis=1), budget
        seconds = time.perf_counter() - start
        image = spectrogram_image(spec, attributions, waveform=batch[0], sample_rate=cfg.sample_rate,
                                  hop_length=hop, signed=method != "gradcam",
                                  title=f"{method}: why '{self.class_names_[index]}' ({probs[index]:.2f})")
        return Explanation(attributions, method, self.class_names_[index], seconds, image, budget,
                           extra={"class_index": index, "probability": float(probs[index]),
                                  "evaluations": evaluations})

    # ================================================================== save / load
    @classmethod
    def load(cls, directory: str | os.PathLike) -> "AudioClassifier":
        from . import layers, speech_embedding  # noqa: F401  (register the custom layers safe_mode loading needs)

        return super().load(directory)

    def _card_extra(self) -> dict:
        fmt = self.config.audio_format
        return {
            "labels": list(self.class_names_),
            "input": {"shape": [fmt.samples], "dtype": "float32", "range": [-1, 1], "sample_rate": fmt.sample_rate,
                      "duration": fmt.duration, "layout": "NS",
                      "description": f"mono samples at {fmt.sample_rate} Hz, silence-trimmed, centred or cut to "
                                     f"{fmt.duration:g} s, loudness-normalised to {fmt.target_dbfs:g} dBFS "
                                     "(toolkit.audio.prepare_waveform); the model computes its log-mel spectrogram"},
            "output": {"shape": [len(self.class_names_)], "description": "class probabilities (softmax)"},
            "training": {"epochs_run": len((self.history_ or {}).get("loss", [])),
                         "transfer_from": self.config.transfer_from},
        }

    def _save_extra(self, directory: Path) -> None:
        write_labels(directory, self.class_names_)
        if self._calibration is not None:
            np.savez_compressed(directory / "calibration.npz", x=self._calibration[:100].astype(np.float16))
        if self.history_:
            from ..plotting import training_curves_png

            (directory / "training_curves.png").write_bytes(training_curves_png(self.history_))

    def _load_extra(self, directory: Path, card: dict) -> None:
        self.class_names_ = list(card.get("labels") or [])
        calibration = directory / "calibration.npz"
        if calibration.is_file():
            with np.load(calibration) as npz:
                self._calibration = npz["x"].astype(np.float32)

    # ================================================================== export
    def reload_data(self) -> AudioSplits | None:
        """The splits the model was trained on, remade from the card (a folder that is still there)."""
        spec = self.data_spec_ or {}
        source = spec.get("source")
        if not source or source == "arrays" or not Path(source).is_dir():
            return None
        test_source = spec.get("test_source")
        if test_source and not Path(test_source).is_dir():
            return None
        return load_audio_splits(source, self.config, spec.get("test_size") or 0, spec.get("seed", 42), test_source,
                                 spec.get("test_groups"))

    def _export_plan(self, data: Any, quantization: str) -> ExportPlan:
        data = self.reload_data() if data is None else data
        calibration, test = self._calibration, None
        if isinstance(data, AudioSplits):
            calibration = data.train.x if calibration is None else calibration
            test = self._resolve(data.test) if data.test is not None else None
        elif data is not None:
            test = self._resolve(data)
            calibration = test.x if calibration is None else calibration
        if quantization == "int8" and calibration is None:
            raise ExportError("int8 export needs recordings to calibrate on. Pass data=... (the training folder).")
        sample = test.x[:1] if test is not None else np.zeros((1, self.config.audio_format.samples), np.float32)
        return ExportPlan(self.model_, representative=calibration, check=test, sample=sample,
                          float_nodes=float_front_end)

    def _export_checks(self, runner, plan: ExportPlan) -> dict:
        test = plan.check
        x, y = (None, None) if test is None else (test.x, test.y)
        checks = check_classifier_file(self, runner, x, y, prepared=True)  # test.x is prepared already
        return {**runner.quantization, "ops": runner.session.ops, **checks}


#: name parts of the ops an int8 file keeps in float32: the playback-speed resampling, the log-mel
#: front end (its DFT's int8 steps would blank the quiet bins the log spreads out), the band and
#: input normalisation, and the softmax, member and speed averages; the conv nets and dense layers are int8.
FLOAT_IN_INT8 = ("/speed_", "logmel", "band_norm", "input_norm", "Softmax", "member_average", "StatefulPartitionedCall")


def float_front_end(tensor_name: str) -> bool:
    """Whether an int8 export keeps the op making ``tensor_name`` in float32 (see FLOAT_IN_INT8 and,
    for the pretrained backbone, ``pretrained.FLOAT_IN_INT8``)."""
    return any(part in tensor_name for part in FLOAT_IN_INT8 + EMBEDDING_FLOAT_IN_INT8)
