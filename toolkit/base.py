"""The task contract every task follows: fit / evaluate / predict / explain / save / load / export.

A saved task is a folder::

    model.keras     the Keras model (loaded with safe_mode=True after a sha256 check)
    labels.txt      one class name per line (classifiers)
    card.json       what the model is: task, config, input, labels, metrics, exports, versions
    history.json    training curves

Folders are written atomically (a temporary folder swapped into place), and loading checks the
sha256 recorded in the card, so a crash or a tampered file is noticed, never half-loaded.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import os
import sys
from pathlib import Path
from typing import Any, Callable, ClassVar

from .errors import ModelFormatError, NotFittedError
from .mixins import ClassifierMixin, target_index  # noqa: F401  (re-exported: tasks import them from here)
from .registry import ALIASES, TASK_MODULES, TASKS, registered_tasks, task_class  # noqa: F401  (re-exported)
from .storage import CARD_FILE, atomic_write_text, read_card, replace_directory, sha256_file, write_json

MODEL_FILE = "model.keras"
LABELS_FILE = "labels.txt"
HISTORY_FILE = "history.json"
CARD_FORMAT = "keras-app-toolkit/1"


#: Capability tags a task may declare (``Task.tags``); the CLI and the apps read them.
TAGS = frozenset({
    "classifier",        # predict -> labels, predict_proba, top_k, report (confusion matrix)
    "detector",          # predict -> boxes
    "generator",         # generate(n, label=, seed=)
    "image_to_image",    # predict(images) -> images
    "translator",        # translate(texts) -> texts
    "forecaster",        # forecast(history, horizon)
    "anomaly_detector",  # detect(series) -> per-point scores and flags
    "policy",            # acts in an environment: play, evaluate(n_episodes=)
})
#: What ``predict``/``explain`` take, by the CLI option that carries it.
INPUT_KINDS = ("image", "text", "series", "observation", "latent", "audio")


def register_task(name: str, aliases: tuple[str, ...] = ()):
    """Class decorator: make a task loadable by the name recorded in its card (or an alias)."""

    def decorate(cls):
        unknown = set(cls.tags) - TAGS
        if unknown:
            raise ValueError(f"{cls.__name__} declares unknown tags {sorted(unknown)}. Valid tags: {sorted(TAGS)}.")
        cls.task_name = name
        TASKS[name] = cls
        ALIASES.update({alias: name for alias in aliases})
        return cls

    return decorate


def versions() -> dict[str, str]:
    from importlib import metadata

    out = {"python": sys.version.split()[0]}
    for dist, key in (("keras-app-toolkit", "toolkit"), ("tensorflow", "tensorflow"), ("keras", "keras")):
        try:
            out[key] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[key] = "unknown"
    return out


#: What a card may name to rebuild its Keras model from an installed package instead of shipping
#: ``model.keras`` (``"model": {"file": null, "rebuild": "module:function"}``); nothing else is run.
REBUILDS = frozenset({"toolkit.transfer.efficientnet_lite:imagenet_model"})


def load_keras_model(directory: str | os.PathLike, card: dict | None = None):
    """Load ``model.keras`` of a model folder after checking its sha256 against the card (or
    rebuild the model with the function the card names, one of ``REBUILDS``)."""
    import keras

    card = card if card is not None else read_card(directory)
    model = card.get("model")
    if isinstance(model, dict) and model.get("rebuild") is not None:
        return rebuilt_model(directory, model["rebuild"])
    path = checked_model_file(directory, card)
    try:
        return keras.saving.load_model(path, safe_mode=True)
    except Exception as exc:  # keras raises many types on bad archives
        raise ModelFormatError(f"Could not load {path}: {exc}") from exc


def rebuilt_model(directory: str | os.PathLike, rebuild: Any):
    """The Keras model a card's ``model.rebuild`` names (one of ``REBUILDS``), built from its package."""
    import importlib

    if not isinstance(rebuild, str) or rebuild not in REBUILDS:
        raise ModelFormatError(
            f"{Path(directory) / CARD_FILE} asks to rebuild its model with {rebuild!r}. Expected one of "
            f"{sorted(REBUILDS)}; refused. Re-save the model."
        )
    module, _, name = rebuild.partition(":")
    return getattr(importlib.import_module(module), name)()


def checked_model_file(directory: str | os.PathLike, card: dict | None = None) -> Path:
    """The path of a model folder's ``model.keras``, after checking its sha256 against the card."""
    directory = Path(directory)
    card = card if card is not None else read_card(directory)
    path = directory / model_file_name(directory, card)
    if not path.is_file():
        raise ModelFormatError(f"{str(path)!r} is missing. Re-train or re-save the model.")
    expected = card.get("model", {}).get("sha256")
    if not expected:
        raise ModelFormatError(f"{directory / CARD_FILE} records no sha256 for {path.name}. Re-save the model.")
    actual = sha256_file(path)
    if actual != expected:
        raise ModelFormatError(
            f"{path} does not match its card: sha256 {actual[:12]}... differs from the recorded "
            f"{expected[:12]}.... The file was changed or damaged; re-train or re-save the model."
        )
    return path


def model_file_name(directory: str | os.PathLike, card: dict) -> str:
    """The card's ``model.file``: a plain file name inside the model folder, never a path out of it."""
    model = card.get("model") or {}
    if not isinstance(model, dict):
        raise ModelFormatError(f"{Path(directory) / CARD_FILE} has a 'model' entry that is not an object: "
                               f"{model!r}. Re-save the model.")
    name = model.get("file", MODEL_FILE)
    if not isinstance(name, str) or not name or Path(name).name != name or name in (".", ".."):
        raise ModelFormatError(
            f"Expected the card's model file to be a file name inside {str(directory)!r}, such as {MODEL_FILE!r}. "
            f"Received: {name!r}. A card never points outside its folder; re-save the model."
        )
    return name


def load(directory: str | os.PathLike) -> "Task":
    """Load any saved task; the card says which class it is."""
    return task_class(read_card(directory).get("task")).load(directory)


class Task:
    """Base of every task. Subclasses set ``config_class`` and implement the verbs."""

    task_name: ClassVar[str] = "task"
    config_class: ClassVar[type] = object
    #: run before Keras reads model.keras: registers the task's custom Keras objects (None: it has none)
    register_keras_objects: ClassVar[Callable[[], Any] | None] = None

    # ---- what the task is: declared once here, read by the CLI, the apps, export and compression
    #: capability tags (see ``TAGS``)
    tags: ClassVar[frozenset[str]] = frozenset()
    #: what predict/explain take (see ``INPUT_KINDS``); the CLI option carrying it is ``--<input_kind>``
    input_kind: ClassVar[str] = "image"
    #: explanation methods offered, the first one is the default
    explain_methods: ClassVar[tuple[str, ...]] = ()
    #: TFLite presets ``export`` writes, and why the others are refused
    quantizations: ClassVar[tuple[str, ...]] = ("float32", "float16", "dynamic", "int8")
    refused_quantizations: ClassVar[dict[str, str]] = {}
    #: "module:Class" of the wrapper that runs this task's ``.tflite`` files (imported on first use)
    runner: ClassVar[str] = "toolkit.edge.runner:TFLiteModel"
    #: why ``toolkit.edge.compress`` cannot compress this task (tasks implementing the
    #: ``toolkit.edge.compression.Compressible`` protocol can)
    compression_refusal: ClassVar[str | None] = None
    #: what ``train_recipe`` takes beyond the config's fields (``toolkit.config.RecipeOption``)
    recipe_options: ClassVar[tuple] = ()
    #: a CLI family name: ``toolkit train <family> --algo <task>`` picks one of the tasks sharing it
    #: (its default is the task the alias ``<family>`` names)
    family: ClassVar[str | None] = None

    @classmethod
    def train_recipe(cls, out: str | os.PathLike, *, command: str | None = None, **options: Any) -> dict:
        """Resolve the data, split, fit, evaluate, save to ``out`` (recording ``command`` in the
        card) and return a summary: what ``toolkit train`` prints. ``options`` are the config's
        fields and the task's ``recipe_options``."""
        raise NotImplementedError(f"{cls.__name__} has no training recipe.")

    @classmethod
    def open_tflite(cls, path: str | os.PathLike, card: dict | None = None):
        """This task's TFLite wrapper (``runner``) on the ``.tflite`` file ``path``."""
        return cls.runner_class()(path, card=card)

    def load_data(self, source: Any) -> Any:
        """Read a data source (a path or a name) the way this model needs it (default: as given)."""
        return source

    def reload_data(self) -> Any:
        """The test data recorded in the card, re-read (None when the card names none)."""
        return None

    @classmethod
    def default_explain_method(cls) -> str | None:
        return cls.explain_methods[0] if cls.explain_methods else None

    @classmethod
    def check_explain_method(cls, method: str | None) -> str:
        """``method`` (default: the task's default method), or a ValueError listing the valid ones."""
        method = method or cls.default_explain_method()
        if method not in cls.explain_methods:
            raise ValueError(f"Unknown explanation method {method!r} for {cls.__name__}. "
                             f"Valid methods: {list(cls.explain_methods)}.")
        return method

    @classmethod
    def check_quantization(cls, quantization: str) -> str:
        """``quantization`` if this task exports it; else a ValueError (unknown preset) or an
        ExportError saying why this task refuses it and which presets it offers."""
        from .edge.export import check_quantization

        check_quantization(quantization)
        if quantization not in cls.quantizations:
            from .errors import QuantizationError

            why = cls.refused_quantizations.get(quantization, "this task does not offer it")
            raise QuantizationError(f"{cls.__name__} exports {list(cls.quantizations)}; {quantization} is not offered: "
                                    f"{why}.")
        return quantization

    @classmethod
    def runner_class(cls) -> type:
        """The class that opens this task's ``.tflite`` files."""
        import importlib

        module, _, name = cls.runner.partition(":")
        return getattr(importlib.import_module(module), name)

    def __init__(self, config: Any = None, **overrides: Any):
        config = config if config is not None else self.config_class()
        if not isinstance(config, self.config_class):
            raise TypeError(f"Expected a {self.config_class.__name__}. Received {type(config).__name__}.")
        if overrides:
            config = dataclasses.replace(config, **overrides)
        self.config = config
        self.model_ = None
        self.history_: dict[str, list[float]] | None = None
        self.metrics_: dict[str, float] = {}
        self.data_spec_: dict | None = None
        self.command_: str | None = None
        self.tflite_: list[dict] = []
        self.compression_: dict | None = None  # the compression report (toolkit.edge.compress)
        self.directory_: Path | None = None
        self.distributed_: dict | None = None  # the card's training.distributed (toolkit.distributed.record_scaling)

    # ------------------------------------------------------------------ helpers
    def _check_fitted(self) -> None:
        if self.model_ is None:
            raise NotFittedError(
                f"This {type(self).__name__} is not fitted yet. Call fit(...) or {type(self).__name__}.load(dir) first."
            )

    def __repr__(self) -> str:
        state = "fitted" if self.model_ is not None else "not fitted"
        return f"{type(self).__name__}({self.config!r}) [{state}]"

    # ------------------------------------------------------------------ card
    def _card_extra(self) -> dict:
        """Task-specific card fields (labels, input description, ...)."""
        return {}

    def _card_fields(self) -> dict:
        """:meth:`_card_extra`, and a classifier's temperature and "not sure" rule where it has one."""
        calibration = getattr(self, "calibration_", None)
        return {**self._card_extra(), **({"calibration": calibration.to_card()} if calibration is not None else {})}

    def card(self) -> dict:
        self._check_fitted()
        card = {
            "format": CARD_FORMAT,
            "task": self.task_name,
            "class": type(self).__name__,
            "config": config_to_dict(self.config),
        }
        card.update(self._card_fields())
        if self.distributed_:  # how a strategy shared the batch (every task that fits takes one)
            card["training"] = {**(card.get("training") or {}), "distributed": self.distributed_}
        card.update(
            {
                "metrics": dict(self.metrics_),
                "data": self.data_spec_,
                "tflite": list(self.tflite_),
                **({"compression": self.compression_} if self.compression_ else {}),
                "versions": versions(),
                "command": self.command_,
                "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            }
        )
        return card

    def write_card(self, directory: str | os.PathLike | None = None) -> Path:
        """Rewrite card.json of a saved folder (after an export or a new evaluation)."""
        directory = Path(directory or self.directory_ or "")
        old = read_card(directory)
        card = self.card()
        card["model"], card["created"] = old["model"], old.get("created", card["created"])
        return write_json(directory / CARD_FILE, card)

    # ------------------------------------------------------------------ save / load
    def _save_extra(self, directory: Path) -> None:
        """Write task-specific files (labels.txt, ...) into the temporary folder."""

    def _load_extra(self, directory: Path, card: dict) -> None:
        """Restore task-specific state from the folder and its card."""

    def _stored_model(self):
        """Hook: the Keras model written to ``model.keras`` (default ``model_``; a task may store only
        what training changed, and rebuild the rest in ``_load_extra``)."""
        return self.model_

    def save(self, directory: str | os.PathLike) -> Path:
        """Save the task to ``directory`` atomically; an existing model folder is replaced."""
        self._check_fitted()
        from .distributed import save_target

        directory = save_target(directory, getattr(self.config, "strategy", None))  # workers: a scratch folder

        def fill(tmp: Path) -> None:
            model_path = tmp / MODEL_FILE
            self._stored_model().save(model_path)
            self._save_extra(tmp)
            if getattr(self, "calibration_", None) is not None:
                self.calibration_.save_references(tmp)  # the files the card's "calibration" names
            if self.history_:
                write_json(tmp / HISTORY_FILE, self.history_)
            card = self.card()
            card["tflite"] = []  # exports of an older model in this folder are gone with it
            card.pop("compression", None)
            card["model"] = {
                "file": MODEL_FILE,
                "size_bytes": model_path.stat().st_size,
                "sha256": sha256_file(model_path),
            }
            write_json(tmp / CARD_FILE, card)

        self.directory_ = replace_directory(directory, fill)
        self.tflite_, self.compression_ = [], None
        return self.directory_

    # ------------------------------------------------------------------ export (the template and its hooks)
    def export(self, path: str | os.PathLike | None = None, quantization: str = "float32", data: Any = None,
               allow_flex: bool = False, **options: Any) -> Path:
        """Export to TFLite, check the file against the Keras model and record it in ``card.json``.

        ``path`` is a folder (default: the folder the model was saved to or loaded from) or a
        ``.tflite`` file. ``quantization`` is one of the task's presets (``quantizations``).
        ``data`` is what the file is checked on (and, for int8, calibrated on); by default the
        data the model was trained with, when the card lets it be remade. Only builtin TFLite
        ops unless ``allow_flex=True``. The card entry records size, sha256, the task's checks
        (agreement with Keras, metrics of the file) and the latency of one sample.
        """
        from .edge.export import write_tflite

        self._check_fitted()
        type(self).check_quantization(quantization)
        plan = self._export_plan(data, quantization, **options)
        directory, file = self._export_target(path, quantization)
        staged = file.with_name(f".staged-{file.name}")  # becomes `file` only once every check passed
        try:
            representative = plan.representative if quantization == "int8" else None
            entry = plan.write(staged) if plan.write is not None else write_tflite(
                plan.model, staged, quantization, representative, allow_flex, plan.int8_io,
                plan.float_nodes)
            entry.update(self._embed_metadata(staged))
            self._write_export_files(directory)
            runner = self.runner_class()(staged, card=self._export_card())
            entry.update(self._export_checks(runner, plan))
            entry["latency_ms_p50"] = round(runner.latency_ms(self._latency_sample(runner, plan)), 4)
            del runner
            os.replace(staged, file)
        finally:
            staged.unlink(missing_ok=True)
            if plan.release is not None:
                plan.release()
        entry["file"] = file.name
        self._record_export(directory, entry)
        return file

    def _export_plan(self, data: Any, quantization: str, **options: Any) -> "ExportPlan":
        """Hook: the model to convert, int8 calibration data and what the checks read, made before
        anything is written (bad ``data`` fails here)."""
        raise NotImplementedError(f"{type(self).__name__} does not export to TFLite.")

    def _embed_metadata(self, file: Path) -> dict:
        """Hook: TFLite metadata written into the new file (image classifiers: labels, input and
        output description, read by phone tooling); the card entry's updated facts, {} for none."""
        if "classifier" not in self.tags or self.input_kind != "image":
            return {}
        from .edge.metadata import write_classifier_metadata

        return write_classifier_metadata(file, self._export_card())

    def _write_export_files(self, directory: Path) -> None:
        """Hook: files the ``.tflite`` needs beside it (vocabularies, ...), written before it is opened."""

    def _export_card(self) -> dict:
        """The card the runner opens the new file with (labels, input description, task)."""
        return {**self._card_fields(), "task": self.task_name}

    def _export_checks(self, runner: Any, plan: "ExportPlan") -> dict:
        """Hook: the card entry's fields from checking the file (``runner``) against the Keras model."""
        return {}

    def _latency_sample(self, runner: Any, plan: "ExportPlan") -> Any:
        """Hook: what ``runner.latency_ms`` times (one sample)."""
        return plan.sample

    # ------------------------------------------------------------------ export bookkeeping
    def _export_target(self, path: str | os.PathLike | None, quantization: str) -> tuple[Path, Path]:
        """(folder, .tflite file) of an export: ``path`` is a folder or a ``.tflite`` file;
        default: the folder the model was saved to or loaded from."""
        from .errors import ExportError

        if path is None and self.directory_ is None:
            raise ExportError("Pass a folder or .tflite path to export to, or save() the model first.")
        target = Path(path) if path is not None else Path(self.directory_)
        directory, file = (target.parent, target) if target.suffix == ".tflite" else (
            target, target / self._tflite_filename(quantization))
        directory.mkdir(parents=True, exist_ok=True)
        return directory, file

    def _tflite_filename(self, quantization: str) -> str:
        """The file name an export to a folder gets (``model_<quantization>.tflite``)."""
        from .edge.export import tflite_filename

        return tflite_filename(quantization)

    def _record_export(self, directory: Path, entry: dict) -> None:
        """Add a TFLite file's card entry: to this model's card when exported into its own folder,
        else to a phone folder's card (no Keras model there), with labels.txt for classifiers."""
        own = self.directory_ is not None and Path(directory).resolve() == Path(self.directory_).resolve()
        if own:
            self.tflite_ = [e for e in self.tflite_ if e["file"] != entry["file"]] + [entry]
            self.write_card()
            return
        directory = Path(directory)
        previous = []
        if (directory / CARD_FILE).is_file():
            previous = [e for e in read_card(directory).get("tflite", []) if e["file"] != entry["file"]]
        card = self.card()
        card["tflite"] = previous + [entry]
        card.pop("compression", None)  # about the files of the model's own folder
        card["model"] = {"file": None, "note": "the Keras model is not in this folder"}
        if getattr(self, "class_names_", None):
            write_labels(directory, self.class_names_)
        write_json(directory / CARD_FILE, card)

    @classmethod
    def load(cls, directory: str | os.PathLike) -> "Task":
        directory = Path(directory)
        card = read_card(directory)
        if ALIASES.get(card.get("task"), card.get("task")) != cls.task_name:
            raise ModelFormatError(
                f"{directory} holds a {card.get('task')!r} model, not a {cls.task_name!r} one. "
                "Use toolkit.load(dir) to load any task."
            )
        task = cls(config_from_dict(cls.config_class, card.get("config", {})))
        if cls.register_keras_objects is not None:
            cls.register_keras_objects()
        task.model_ = load_keras_model(directory, card)
        task.metrics_ = dict(card.get("metrics") or {})
        task.data_spec_ = card.get("data")
        task.command_ = card.get("command")
        task.tflite_ = list(card.get("tflite") or [])
        task.compression_ = card.get("compression")
        task.distributed_ = (card.get("training") or {}).get("distributed")
        history = directory / HISTORY_FILE
        if history.is_file():
            task.history_ = json.loads(history.read_text())
        task.directory_ = directory.resolve()
        if card.get("calibration"):
            from .calibration import Calibration

            task.calibration_ = Calibration.from_card(card["calibration"], directory)
        task._load_extra(directory, card)
        return task


@dataclasses.dataclass
class ExportPlan:
    """What one ``Task.export`` converts and checks (made by the task's ``_export_plan`` hook)."""

    model: Any  # the Keras model to convert
    representative: Any = None  # int8 calibration samples (used only for int8)
    check: Any = None  # what the task's ``_export_checks`` reads: test split, held-out pairs, ...
    sample: Any = None  # one input for the latency (see ``_latency_sample``)
    release: Callable[[], None] | None = None  # called once the checks ran (e.g. close environments)
    #: writes the file itself instead of converting ``model`` (path -> the card entry's file facts), e.g. a
    #: cached conversion of the frozen backbone with this model's head (toolkit.edge.head_swap)
    write: Callable[[Path], dict] | None = None
    #: (input, output) types of an int8 file (toolkit.edge.export.INT8_IO_TYPES): int8 by default; a
    #: detector takes uint8 pixels and gives float32 boxes, as phone detection APIs require
    int8_io: tuple[str, str] = ("int8", "int8")
    #: int8 only: a test on tensor names whose ops stay float32 (selective quantization of a sensitive
    #: part, e.g. a spectrogram front end; the file's input and output are then float32)
    float_nodes: Callable[[str], bool] | None = None


def config_to_dict(config: Any) -> dict:
    out = {}
    for field in dataclasses.fields(config):
        if field.metadata.get("serialize", True):
            value = getattr(config, field.name)
            out[field.name] = list(value) if isinstance(value, tuple) else value
    return out


def config_from_dict(config_class: type, values: dict) -> Any:
    kwargs = dict(getattr(config_class, "CARD_DEFAULTS", {}))  # for fields that older cards lack
    for field in dataclasses.fields(config_class):
        if field.name in values and field.metadata.get("serialize", True):
            value = values[field.name]
            kwargs[field.name] = tuple(value) if isinstance(value, list) else value
    return config_class(**kwargs)


def write_labels(directory: Path, labels: list[str]) -> None:
    atomic_write_text(directory / LABELS_FILE, "".join(f"{label}\n" for label in labels))
