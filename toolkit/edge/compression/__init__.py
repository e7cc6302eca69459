"""Pruning, weight clustering and quantization-aware training for the toolkit's Keras 3 models.

tensorflow-model-optimization (TFMOT) 0.8 only accepts tf_keras (Keras 2) models, and the
toolkit's models are Keras 3. This package is the bridge, and the only code that imports
``tensorflow_model_optimization`` or ``tf_keras`` (inside functions, on first use):

1. **Twin** (:mod:`.bridge`). :func:`to_tf_keras` builds the same architecture with tf_keras
   layer by layer, copies the weights and checks that both give the same outputs.
2. **Techniques** (:mod:`.techniques`). Pruning, clustering, quantization-aware training and
   the collaborative ones that keep earlier gains (PQAT, CQAT, PCQAT), chained by
   :class:`Pipeline`.
3. **TFLite.** The result converts with the presets of :mod:`toolkit.edge.export`, and the file
   itself is read back to confirm the sparsity and the number of distinct values per channel.
4. **Back to Keras 3.** Pruned and clustered weights are float: they are copied into a Keras 3
   clone of the model, which saves, loads and serves like any toolkit model.

Tasks take part through the public :class:`Compressible` protocol (:mod:`.protocol`): image
and text classifiers implement it; :func:`compress` and :func:`compression_report`
(:mod:`.report`) use nothing else of theirs. :mod:`.tfmot` keeps TFMOT's import from switching
Keras 3 code in the same process to tf_keras.
"""

from .bridge import PARITY_TOLERANCE, SUPPORTED_LAYERS, Twin, check_parity, to_keras3, to_tf_keras
from .protocol import Compressible, CompressionInputs, compressed_copy, copy_keras_model, gather_inputs
from .report import REPORT_PRESETS, CompressionReport, CompressionResult, compress, compression_report, report_markdown
from .techniques import (
    CLUSTER_INITS,
    CompressionConfig,
    Pipeline,
    TrainingData,
    cluster,
    convert_twin,
    gzip_size,
    prune,
    quantization_aware,
    weight_stats,
)
from .tfmot import libraries, libraries_loaded

__all__ = [
    "CLUSTER_INITS", "PARITY_TOLERANCE", "REPORT_PRESETS", "SUPPORTED_LAYERS", "Compressible", "CompressionConfig",
    "CompressionInputs", "CompressionReport", "CompressionResult", "Pipeline", "TrainingData", "Twin", "check_parity",
    "cluster", "compress", "compressed_copy", "compression_report", "convert_twin", "copy_keras_model",
    "gather_inputs", "gzip_size", "libraries", "libraries_loaded", "prune", "quantization_aware", "report_markdown",
    "to_keras3", "to_tf_keras", "weight_stats",
]
