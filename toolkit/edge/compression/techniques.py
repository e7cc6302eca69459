"""The techniques, on tf_keras twins, and the pipeline that chains them.

Magnitude pruning (polynomial decay to a target sparsity, fine-tuned, then stripped), weight
clustering (k-means++ or linear centroids, stripped), quantization-aware training, and the
collaborative ones that keep earlier gains: sparsity-preserving clustering, pruning-preserving
QAT (PQAT), cluster-preserving QAT (CQAT) and both (PCQAT).

The result converts with the presets of :mod:`toolkit.edge.export` (builtin ops only; ``int8``
is full integer with int8 input and output, calibrated on training samples), and the file itself
is read back to confirm the sparsity and the number of distinct values per output channel.
"""

from __future__ import annotations

import dataclasses
import gzip
import logging
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import ExportError
from .bridge import to_keras3, to_tf_keras
from .tfmot import libraries

CLUSTER_INITS = {"kmeans++": "KMEANS_PLUS_PLUS", "linear": "LINEAR"}


@dataclasses.dataclass(frozen=True)
class CompressionConfig:
    """What :func:`compress` does, in this order: prune, cluster, quantization-aware training.

    prune: target sparsity of the prunable kernels (convolution, dense, embedding), in (0, 1),
        reached by polynomial decay over the first 2/3 of the fine-tuning steps, then held.
    cluster: distinct values (centroids) per kernel, >= 2. BatchNorm is first folded into the
        layer before it, so the shared values are those of the file's kernels; after pruning the
        zeros stay zero (sparsity-preserving clustering).
    qat: 8-bit quantization-aware training; pruning-preserving (PQAT) after pruning,
        cluster-preserving (CQAT) after clustering, both (PCQAT) after both. Makes an int8 file.
    quantization: the .tflite preset (``float32``, ``float16``, ``dynamic``, ``int8``); default:
        ``int8`` where the model takes float inputs (vision), ``dynamic`` for token ids (text).
    epochs, learning_rate, batch_size: fine-tuning of each technique (Adam); QAT uses the smaller
        ``qat_learning_rate`` (it only has to adapt to quantization noise).
    cluster_init: initial centroids, ``"linear"`` (evenly spaced; measured on digits: accuracy as
        good as ``"kmeans++"``'s and a 14% smaller gzipped int8 file) or ``"kmeans++"``.
    per_channel: int8 weight scales per output channel (True) or per tensor (False; a clustered
        kernel then keeps exactly its shared values, and sparse kernels compress better). ``None``:
        per tensor when its predictions agree with the float model on the training samples as
        well as per channel's do, else per channel.
    """

    prune: float | None = None
    cluster: int | None = None
    qat: bool = False
    quantization: str | None = None
    epochs: int = 6
    learning_rate: float = 3e-4
    qat_learning_rate: float = 3e-5
    batch_size: int = 32
    cluster_init: str = "linear"
    per_channel: bool | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        from ..export import check_quantization

        if self.prune is not None and not (isinstance(self.prune, (int, float)) and 0 < float(self.prune) < 1):
            raise ValueError(f"prune is a target sparsity in (0, 1), e.g. 0.8. Received {self.prune!r}.")
        if self.cluster is not None and (not isinstance(self.cluster, (int, np.integer)) or self.cluster < 2):
            raise ValueError(f"cluster is a number of clusters >= 2, e.g. 16. Received {self.cluster!r}.")
        if self.quantization is not None:
            check_quantization(self.quantization)
        if self.qat and self.quantization not in (None, "int8"):
            raise ValueError(f"qat=True makes an int8 file. Received quantization={self.quantization!r}.")
        if self.cluster_init not in CLUSTER_INITS:
            raise ValueError(f"Unknown cluster_init {self.cluster_init!r}. Valid names: {list(CLUSTER_INITS)}.")
        for name in ("epochs", "batch_size", "learning_rate", "qat_learning_rate"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0. Received {getattr(self, name)!r}.")
        if not (self.prune or self.cluster or self.qat):
            raise ValueError("Choose at least one technique: prune=<sparsity>, cluster=<clusters> or qat=True. "
                             "For plain quantization use task.export(quantization=...).")

    @property
    def name(self) -> str:
        """The variant's name: techniques then preset, e.g. ``pruned_clustered_qat_int8``."""
        parts = [p for p, on in (("pruned", self.prune), ("clustered", self.cluster), ("qat", self.qat)) if on]
        return "_".join(parts + [self.quantization or "int8"])

    @property
    def file(self) -> str:
        return f"model_{self.name}.tflite"

    def techniques(self) -> dict:
        return {"prune": self.prune, "cluster": self.cluster, "qat": self.qat, "quantization": self.quantization}


@dataclasses.dataclass
class TrainingData:
    """Fine-tuning data in the model's input format: ``x`` (raw pixels, token ids) and labels
    ``y``, with an optional augmentation (a Keras layer) applied to training batches."""

    x: np.ndarray
    y: np.ndarray
    augment: Any = None

    def steps(self, batch_size: int) -> int:
        return max(1, -(-len(self.x) // batch_size))

    def dataset(self, batch_size: int, seed: int):
        import tensorflow as tf

        ds = tf.data.Dataset.from_tensor_slices((self.x, self.y))
        ds = ds.shuffle(len(self.x), seed=seed, reshuffle_each_iteration=True).batch(batch_size)
        if self.augment is not None:
            augment = self.augment
            ds = ds.map(lambda x, y: (augment(x, training=True), y), num_parallel_calls=tf.data.AUTOTUNE)
        return ds.prefetch(tf.data.AUTOTUNE)


def prune(model, train: TrainingData, config: CompressionConfig):
    """Magnitude pruning of a tf_keras model: sparsity rises from 0 to ``config.prune``
    (PolynomialDecay) over the first 2/3 of the fine-tuning steps, then holds; the model comes
    back stripped of the pruning wrappers."""
    tfk, tfmot = libraries()
    from tensorflow_model_optimization.python.core.sparsity.keras.prune_registry import PruneRegistry

    sparsity = tfmot.sparsity.keras
    steps_per_epoch = train.steps(config.batch_size)
    total = config.epochs * steps_per_epoch
    schedule = sparsity.PolynomialDecay(
        initial_sparsity=0.0, final_sparsity=float(config.prune), begin_step=0,
        end_step=max(1, (2 * total) // 3), frequency=max(1, steps_per_epoch // 4),
    )

    def wrap(layer):
        if _kernels(layer) and PruneRegistry.supports(layer):
            return sparsity.prune_low_magnitude(layer, pruning_schedule=schedule)
        return layer

    pruned = _clone(tfk, model, wrap)
    _fine_tune(pruned, train, config.epochs, config.learning_rate, config, [sparsity.UpdatePruningStep()])
    return sparsity.strip_pruning(pruned)


def cluster(model, train: TrainingData, config: CompressionConfig, preserve_sparsity: bool = False):
    """Weight clustering of a tf_keras model: each kernel keeps ``config.cluster`` distinct values
    (centroids fine-tuned with the rest); with ``preserve_sparsity`` zeros stay zero. Stripped."""
    tfk, tfmot = libraries()
    from tensorflow_model_optimization.python.core.clustering.keras.clustering_registry import ClusteringRegistry
    from tensorflow_model_optimization.python.core.clustering.keras.experimental import cluster as experimental

    clustering = tfmot.clustering.keras
    init = getattr(clustering.CentroidInitialization, CLUSTER_INITS[config.cluster_init])
    clusters = int(config.cluster)

    def wrap(layer):
        kernels = _kernels(layer)
        if not kernels or not ClusteringRegistry.supports(layer) or min(int(np.prod(k.shape)) for k in kernels) <= clusters:
            return layer  # too few weights to share out
        return experimental.cluster_weights(layer, number_of_clusters=clusters, cluster_centroids_init=init,
                                            preserve_sparsity=preserve_sparsity)

    clustered = _clone(tfk, model, wrap)
    _fine_tune(clustered, train, config.epochs, config.learning_rate, config, [])
    return clustering.strip_clustering(clustered)


def quantization_aware(model, train: TrainingData, config: CompressionConfig):
    """8-bit quantization-aware training of a tf_keras model, preserving what earlier steps made:
    zeros (PQAT), shared values (CQAT) or both (PCQAT). Layers without weights that TFMOT's 8-bit
    scheme does not list (Resizing, Rescaling, ...) stay float and unannotated; the converter
    calibrates them on the representative samples. Returns the trained QAT model."""
    tfk, tfmot = libraries()
    from tensorflow_model_optimization.python.core.quantization.keras.default_8bit.default_8bit_quantize_registry import (  # noqa: E501
        Default8BitQuantizeRegistry,
    )

    quantize = tfmot.quantization.keras
    default = Default8BitQuantizeRegistry()
    unsupported = [f"{layer.name} ({type(layer).__name__})" for layer in model.layers
                   if layer.weights and not default.supports(layer) and type(layer).__name__ != "BatchNormalization"]
    if unsupported:
        raise ExportError(
            f"Quantization-aware training cannot quantize {', '.join(unsupported)}: among layers with weights, "
            "TFMOT's 8-bit scheme quantizes Conv2D, DepthwiseConv2D, Dense and BatchNormalization after a "
            "convolution. Compress without qat (pruning and clustering work on these layers)."
        )
    annotated = _clone(tfk, model, lambda layer: quantize.quantize_annotate_layer(layer)
                       if default.supports(layer) or type(layer).__name__ == "BatchNormalization" else layer)
    combine = tfmot.experimental.combine
    if config.cluster:
        scheme = combine.Default8BitClusterPreserveQuantizeScheme(preserve_sparsity=bool(config.prune))
    elif config.prune:
        scheme = combine.Default8BitPrunePreserveQuantizeScheme()
    else:
        scheme = quantize.default_8bit.Default8BitQuantizeScheme()
    registry = scheme.get_quantize_registry()
    # The collaborative registries claim every layer without weights, then fail on Resizing and
    # Rescaling: let them claim only what the default 8-bit registry quantizes.
    claims = registry.supports
    registry.supports = lambda layer: default.supports(layer) and claims(layer)
    scheme.get_quantize_registry = lambda: registry
    with quantize.quantize_scope():
        trained = quantize.quantize_apply(annotated, scheme)
    _fine_tune(trained, train, config.epochs, config.qat_learning_rate, config, [])
    return trained


def _kernels(layer) -> list:
    return [w for w in layer.trainable_weights if "kernel" in w.name or "embeddings" in w.name]


def _clone(tfk, model, clone_function):
    """``model`` rebuilt with ``clone_function`` applied to fresh copies of its layers (TFMOT's
    wrappers train the layers they wrap: the model passed in keeps its weights)."""
    copy = tfk.models.clone_model(model)
    copy.set_weights(model.get_weights())
    return tfk.models.clone_model(copy, clone_function=clone_function)


def _fine_tune(model, train: TrainingData, epochs: int, learning_rate: float, config: CompressionConfig,
               callbacks: list) -> None:
    tfk, _ = libraries()
    tfk.utils.set_random_seed(config.seed)
    model.compile(optimizer=tfk.optimizers.Adam(learning_rate), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    # Clustered kernels are computed from centroids and indices, so TensorFlow notes once per epoch
    # that the original kernel variables get no gradient (clustering and cluster-preserving QAT):
    # expected, and silenced; other warnings pass.
    logger = logging.getLogger("tensorflow")
    no_gradient_note = _DropMessages("Gradients do not exist for variables")
    logger.addFilter(no_gradient_note)
    try:
        model.fit(train.dataset(config.batch_size, config.seed), epochs=epochs, callbacks=callbacks, verbose=0)
    finally:
        logger.removeFilter(no_gradient_note)


class _DropMessages(logging.Filter):
    def __init__(self, prefix: str):
        super().__init__()
        self.prefix = prefix

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.getMessage()).startswith(self.prefix)


# ============================================================================ TFLite


def convert_twin(model, quantization: str, representative: np.ndarray | None = None,
                 per_channel: bool = True) -> bytes:
    """A tf_keras (or TFMOT) model to TFLite bytes with the presets of :mod:`toolkit.edge.export`
    (builtin ops only). ``per_channel=False`` gives int8 kernels one scale per tensor."""
    import tensorflow as tf

    from ..export import conversion_error, converter_settings

    settings = converter_settings(quantization, representative)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        converter = tf.lite.TFLiteConverter.from_keras_model(model)
    for key, value in settings.items():
        if key == "target_spec":
            for spec_key, spec_value in value.items():
                setattr(converter.target_spec, spec_key, spec_value)
        else:
            setattr(converter, key, value)
    if not per_channel:
        converter._experimental_disable_per_channel = True  # no public switch in TF 2.21
    try:
        with warnings.catch_warnings():  # QAT models carry their own input ranges
            warnings.filterwarnings("ignore", message="Statistics for quantized inputs were expected")
            return converter.convert()
    except Exception as exc:  # the converter raises ConverterError and friends
        raise conversion_error(exc, allow_flex=False) from exc


def weight_stats(path: str | os.PathLike) -> dict:
    """The .tflite file's kernels as the LiteRT interpreter reads them: how many, the share of
    zeros, and the most distinct values in one output channel and in one kernel. Kernels are the
    constant tensors of rank >= 2 with >= 64 values (biases and quantization scales are left out)."""
    from ..runner import open_interpreter

    interpreter = open_interpreter(Path(path))
    produced = {int(i) for op in interpreter._get_ops_details() for i in op["outputs"]}
    inputs = {d["index"] for d in interpreter.get_input_details()}
    zeros = total = kernels = per_channel = per_kernel = 0
    for detail in interpreter.get_tensor_details():
        shape = detail["shape"]
        if detail["index"] in produced or detail["index"] in inputs or len(shape) < 2 or int(np.prod(shape)) < 64:
            continue
        try:
            values = interpreter.get_tensor(detail["index"])
        except ValueError:  # pragma: no cover - a tensor without data
            continue
        if values.dtype not in (np.int8, np.float32, np.float16):
            continue
        kernels += 1
        zeros += int(np.count_nonzero(values == 0))
        total += values.size
        per_kernel = max(per_kernel, len(np.unique(values)))
        per_channel = max(per_channel, max(len(np.unique(row)) for row in values.reshape(values.shape[0], -1)))
    return {"kernels": kernels, "sparsity": round(zeros / total, 4) if total else 0.0,
            "max_values_per_channel": per_channel, "max_values_per_kernel": per_kernel}


def gzip_size(path: str | os.PathLike) -> int:
    """Bytes of the file gzipped (level 9): what a download or an app package carries."""
    return len(gzip.compress(Path(path).read_bytes(), compresslevel=9, mtime=0))


# ============================================================================ the pipeline


class Pipeline:
    """One Keras 3 model and its data, compressed in stages that later variants reuse (the
    pruned model is the start of pruned + clustered). Every stage goes Keras 3 -> tf_keras twin
    (checked) -> TFMOT -> stripped -> Keras 3, so each stage's float weights are a Keras 3 model."""

    def __init__(self, model, train: TrainingData, representative: np.ndarray, check: np.ndarray | None = None):
        self.model = model
        self.train = train
        self.representative = representative
        self.check = representative[:64] if check is None else check  # the twins' output check
        self._keras: dict = {(None, None): model}
        self._twins: dict = {}
        self._reference: np.ndarray | None = None

    def keras_model(self, config: CompressionConfig):
        """The Keras 3 model after ``config``'s pruning and clustering (float weights)."""
        key = (config.prune, config.cluster)
        if key not in self._keras:
            if config.cluster:
                start = self.keras_model(dataclasses.replace(config, cluster=None, qat=False)) if config.prune \
                    else self.model
                twin = to_tf_keras(start, self.check, fold_batchnorm=True)
                done = cluster(twin.model, self.train, config, preserve_sparsity=bool(config.prune))
            else:
                start = self.model
                twin = to_tf_keras(start, self.check)
                done = prune(twin.model, self.train, config)
            self._keras[key] = to_keras3(start, done, twin.links)
            self._twins[key] = done
        return self._keras[key]

    def tflite(self, config: CompressionConfig) -> tuple[bytes, bool | None]:
        """The variant's .tflite bytes and whether its int8 scales are per channel (None: not int8).
        Per tensor is chosen (``per_channel=None``) when it agrees with the float model on the
        training samples to within 0.2 points of per channel."""
        keras_model = self.keras_model(config)
        key = (config.prune, config.cluster)
        quantization = config.quantization or "int8"
        if config.qat:
            # Unfolded: TFMOT's 8-bit scheme quantizes a convolution's kernel when BatchNorm follows
            # it, but not when a ReLU does (its LayerReLUQuantize transform). After clustering the
            # BatchNorms are identities (folded into the kernels): frozen, they stay so.
            twin = to_tf_keras(keras_model, self.check)
            if config.cluster:
                for layer in twin.model.layers:
                    if type(layer).__name__ == "BatchNormalization":
                        layer.trainable = False
            model = quantization_aware(twin.model, self.train, config)
            return convert_twin(model, quantization, self.representative), True
        model = self._twins[key]  # prune and/or cluster: keras_model() made it
        if quantization != "int8":
            return convert_twin(model, quantization, self.representative), None
        if config.per_channel is not None:
            return convert_twin(model, quantization, self.representative, config.per_channel), config.per_channel
        per_channel = convert_twin(model, quantization, self.representative, True)
        per_tensor = convert_twin(model, quantization, self.representative, False)
        if self._agreement(per_tensor) >= self._agreement(per_channel) - 0.002:
            return per_tensor, False
        return per_channel, True

    def _agreement(self, data: bytes) -> float:
        """Top-1 agreement of a .tflite with the float Keras model on the representative samples."""
        import tempfile

        from ..runner import TFLiteModel

        if self._reference is None:
            self._reference = np.asarray(self.model(self.representative, training=False)).argmax(-1)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "candidate.tflite"
            path.write_bytes(data)
            predictions = TFLiteModel(path, card={}).run(self.representative).argmax(-1)
        return float(np.mean(predictions == self._reference))
