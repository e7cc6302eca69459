"""compress() one variant, or compression_report() every variant, of a fitted task.

Each variant's ``.tflite`` is written with its card entry: what an export records, measured on
the test split, plus the techniques, the gzipped size and what the file's kernels hold. With
``out``, :func:`compress` writes a new model folder whose Keras model holds the compressed float
weights (pruned/clustered), so it saves, loads and serves like any toolkit model.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import ExportError
from ...storage import atomic_write_bytes
from .protocol import gather_inputs
from .techniques import CompressionConfig, Pipeline, gzip_size, weight_stats

REPORT_PRESETS = ("float32", "float16", "dynamic", "int8")
_COLUMNS = (
    ("variant", "variant", "{}"), ("file", "file", "`{}`"), ("test_accuracy", "test accuracy", "{:.4f}"),
    ("size_bytes", "size", "{}"), ("gzip_bytes", "gzipped", "{}"), ("gzip_vs_float32", "gzipped vs float32",
                                                                    "{:.3f}x"),
    ("latency_ms_p50", "latency p50", "{:.3f} ms"), ("agreement_with_keras", "agreement with float", "{:.4f}"),
    ("sparsity", "zeros", "{:.0%}"), ("max_values_per_channel", "values per channel (max)", "{}"),
)


class _Job:
    """One task being compressed: its inputs, the pipeline its variants share, and the float
    Keras model's test probabilities (every file is compared with them)."""

    def __init__(self, task, data: Any):
        self.task = task
        self.inputs = gather_inputs(task, data)
        self.pipeline = Pipeline(self.inputs.model, self.inputs.train, self.inputs.representative)

    @functools.cached_property
    def keras_probs(self) -> np.ndarray:
        return self.task.predict_proba(self.inputs.test_inputs)

    def resolve(self, config: CompressionConfig) -> CompressionConfig:
        """``config`` with its quantization preset chosen (the task's default, int8 for QAT)."""
        quantization = config.quantization or ("int8" if config.qat else self.inputs.quantization)
        if quantization == "int8" and self.inputs.int8_refusal:
            raise ExportError(self.inputs.int8_refusal)
        return dataclasses.replace(config, quantization=quantization)

    def write_variant(self, config: CompressionConfig, directory: Path) -> tuple[Path, dict]:
        """Write the variant's .tflite into ``directory``; its card entry (measured, with the techniques)."""
        tflite, per_channel = self.pipeline.tflite(config)
        path = atomic_write_bytes(directory / config.file, tflite)
        entry = self.measure(path, config.quantization)
        entry["compression"] = {**config.techniques(), "per_channel": per_channel, "epochs": config.epochs,
                                "cluster_init": config.cluster_init if config.cluster else None}
        return path, entry

    def measure(self, path: Path, quantization: str) -> dict:
        """The card entry of a .tflite file: what export records, plus its gzipped size and weights."""
        from ..export import tflite_entry
        from ..runner import TFLiteModel, classifier_checks

        entry = tflite_entry(path, quantization)
        card = self.task.card()
        runner = TFLiteModel(path, card=card)
        entry.update(runner.quantization)
        sample = type(self.task).prepare_input(self.inputs.test_inputs[:1], card, directory=path.parent)
        entry["latency_ms_p50"] = round(runner.latency_ms(sample), 4)
        entry.update(classifier_checks(self.keras_probs, runner.predict_proba(self.inputs.test_inputs),
                                       self.inputs.test_y))
        return {**entry, **_file_facts(path)}

    def section_facts(self) -> dict:
        return {"keras_test_accuracy": float(np.mean(self.keras_probs.argmax(-1) == self.inputs.test_y)),
                "n_test": int(len(self.inputs.test_y)), "data": getattr(self.inputs.data, "spec", None),
                "note": "agreement: top-1 agreement with the float Keras model on the test split; zeros and values "
                        "per channel: read from the file's kernels with the LiteRT interpreter"}


# ============================================================================ compress


@dataclasses.dataclass
class CompressionResult:
    """One compressed variant: its .tflite file and card entry, and the Keras 3 model holding
    the compressed float weights (pruned/clustered; the original weights after QAT alone)."""

    config: CompressionConfig
    path: Path
    entry: dict
    model: Any
    seconds: float

    @property
    def metrics(self) -> dict:
        keys = ("test_accuracy", "agreement_with_keras", "size_bytes", "gzip_bytes", "latency_ms_p50", "sparsity",
                "max_values_per_channel", "max_values_per_kernel")
        return {k: self.entry[k] for k in keys if k in self.entry}


def compress(task, data: Any = None, prune: float | None = None, cluster: int | None = None, qat: bool = False,
             out: str | os.PathLike | None = None, command: str | None = None, **options: Any) -> CompressionResult:
    """Prune, cluster and/or quantization-aware train a fitted task, and write the .tflite.

    ``task``: a :class:`~toolkit.edge.compression.Compressible` task (image classifiers,
    from-scratch text classifiers). ``data``: training data to fine-tune on and test data to
    check on (default: the data the model was trained on, from its card). ``options``: the other
    :class:`CompressionConfig` fields (``quantization``, ``epochs``, ``learning_rate``,
    ``cluster_init``, ...).

    Without ``out`` the file (``model_<variant>.tflite``) goes into the task's own folder and its
    card. With ``out`` a new model folder is written: the Keras model with the compressed float
    weights (it loads, serves and explains like any toolkit model), the .tflite and the card, whose
    ``command`` is ``command`` (the CLI passes its own; default: the equivalent CLI command).
    """
    config = CompressionConfig(prune=prune, cluster=cluster, qat=qat, **options)
    job = _Job(task, data)
    config = job.resolve(config)
    directory = _own_folder(task) if out is None else None  # before minutes of fine-tuning
    start = time.perf_counter()
    keras_model = job.pipeline.keras_model(config)
    if out is None:
        owner = task
    else:
        owner = task.with_compressed_weights(keras_model)
        owner.command_ = command or _command(task, config, out)
        owner.metrics_ = {"test_" + k: v for k, v in owner.report(job.inputs.data.test).metrics.items() if "/" not in k}
        directory = owner.save(out)
    task.write_runtime_files(directory)
    path, entry = job.write_variant(config, directory)
    entry["compression"]["source"] = str(task.directory_) if task.directory_ else None
    seconds = round(time.perf_counter() - start, 1)
    section = dict(owner.compression_ or {})
    rows = [r for r in section.get("variants", []) if r["variant"] != config.name]
    owner.compression_ = {**section, "variants": rows + [_row(config.name, entry, seconds)], **job.section_facts()}
    _record(owner, entry)
    owner.write_card(directory)
    return CompressionResult(config, path, entry, keras_model, seconds)


def _own_folder(task) -> Path:
    if task.directory_ is None:
        raise ExportError("Pass out=<folder> for the compressed model, or save() the model first.")
    return Path(task.directory_)


def _command(task, config: CompressionConfig, out) -> str:
    parts = ["toolkit compress", str(task.directory_ or "<model>")]
    if config.prune:
        parts.append(f"--prune {config.prune}")
    if config.cluster:
        parts.append(f"--cluster {config.cluster}")
    if config.qat:
        parts.append("--qat")
    return " ".join(parts + [f"--out {out}"])


def _record(task, entry: dict) -> None:
    """The file's entry in the task's list of .tflite files (its own folder's), replacing an older one."""
    task.tflite_ = [e for e in task.tflite_ if e["file"] != entry["file"]] + [entry]


def _file_facts(path: Path) -> dict:
    return {"gzip_bytes": gzip_size(path), **{k: v for k, v in weight_stats(path).items() if k != "kernels"}}


# ============================================================================ the report


@dataclasses.dataclass
class CompressionReport:
    """Every variant of one model side by side (the ``compression`` section of its card)."""

    section: dict

    @property
    def variants(self) -> list[dict]:
        return self.section["variants"]

    def to_dict(self) -> dict:
        return dict(self.section)

    def markdown(self) -> str:
        return report_markdown(self.section)


def compression_report(task, data: Any = None, prune: float = 0.8, cluster: int = 16, **options: Any
                       ) -> CompressionReport:
    """Every variant of a saved task side by side, written into its folder and card: the plain
    presets (float32, float16, dynamic, int8 PTQ) and the compressed ones (int8 QAT, pruned +
    int8, clustered + int8, pruned + clustered + QAT int8; text models: pruned / clustered /
    both with dynamic-range weights). Each with test accuracy, size, gzipped size, one-sample
    LiteRT latency, agreement with the float Keras model, share of zeros and values per channel."""
    chosen = CompressionConfig(prune=prune, cluster=cluster, **options)  # checks the settings first
    job = _Job(task, data)
    directory = _own_folder(task)
    start = time.perf_counter()
    int8 = not job.inputs.int8_refusal
    rows = []
    for quantization in REPORT_PRESETS:
        if quantization == "int8" and not int8:
            continue
        began = time.perf_counter()
        path = task.export(directory, quantization=quantization, data=job.inputs.data)
        entry = next(e for e in task.tflite_ if e["file"] == path.name)
        entry.update(_file_facts(path))
        rows.append(_row(quantization, entry, time.perf_counter() - began))
    task.write_runtime_files(directory)
    techniques = [{"prune": prune}, {"cluster": cluster}, {"prune": prune, "cluster": cluster}]
    if int8:
        techniques = [{"qat": True}, *techniques[:2], {"prune": prune, "cluster": cluster, "qat": True}]
    for chosen_techniques in techniques:
        began = time.perf_counter()
        config = job.resolve(CompressionConfig(**chosen_techniques, **options))
        path, entry = job.write_variant(config, directory)
        _record(task, entry)
        task.write_card(directory)  # each file is in the card as soon as it is written
        rows.append(_row(config.name, entry, time.perf_counter() - began))
    settings = {k: v for k, v in dataclasses.asdict(chosen).items() if k not in ("qat", "quantization")}
    section = {"variants": rows, "seconds": round(time.perf_counter() - start, 1), "settings": settings,
               **job.section_facts()}
    task.compression_ = section
    task.write_card(directory)
    return CompressionReport(section)


def _row(variant: str, entry: dict, seconds: float) -> dict:
    keys = ("file", "quantization", "test_accuracy", "agreement_with_keras", "size_bytes", "gzip_bytes",
            "latency_ms_p50", "sparsity", "max_values_per_channel", "max_values_per_kernel", "n_test")
    row = {"variant": variant, **{k: entry[k] for k in keys if k in entry}}
    row["techniques"] = entry.get("compression", {"quantization": entry.get("quantization")})
    row["seconds"] = round(seconds, 1)
    return row


def report_markdown(section: dict) -> str:
    """The ``compression`` section of a card as a Markdown table (what `toolkit compress --report` prints)."""
    rows = section.get("variants") or []
    base = next((r for r in rows if r["variant"] == "float32"), None)
    lines = ["| " + " | ".join(title for _, title, _ in _COLUMNS) + " |", "|" + "---|" * len(_COLUMNS)]
    for row in rows:
        values = dict(row)
        if base and base.get("gzip_bytes") and row.get("gzip_bytes"):
            values["gzip_vs_float32"] = row["gzip_bytes"] / base["gzip_bytes"]
        cells = []
        for key, _, fmt in _COLUMNS:
            value = values.get(key)
            if value is None:
                cells.append("n/a")
            elif key in ("size_bytes", "gzip_bytes"):
                cells.append(f"{value / 1024:.0f} KiB")
            else:
                cells.append(fmt.format(value))
        lines.append("| " + " | ".join(cells) + " |")
    head = []
    if "keras_test_accuracy" in section:
        head.append(f"Float Keras model: test accuracy {section['keras_test_accuracy']:.4f} on "
                    f"{section.get('n_test', '?')} test samples.")
    if section.get("seconds") is not None:
        head.append(f"Report made in {section['seconds']:.0f} s.")
    return (" ".join(head) + "\n\n" if head else "") + "\n".join(lines) + "\n"
