"""Edge deployment: TFLite export with quantization presets, the LiteRT runner, and compression
(pruning, clustering, quantization-aware training) through tensorflow-model-optimization.

``compress`` and ``compression_report`` load :mod:`toolkit.edge.compression` (and with it
tf_keras and TFMOT) on first call, never at import.
"""

from .export import QUANTIZATIONS, convert, tflite_filename, write_tflite
from .runner import TFLiteModel

__all__ = ["QUANTIZATIONS", "TFLiteModel", "compress", "compression_report", "convert", "tflite_filename",
           "write_tflite"]


def compress(task, data=None, prune=None, cluster=None, qat=False, out=None, **options):
    """Prune / cluster / quantization-aware train ``task`` and write the .tflite; see
    :func:`toolkit.edge.compression.compress`."""
    from .compression import compress as run

    return run(task, data, prune=prune, cluster=cluster, qat=qat, out=out, **options)


def compression_report(task, data=None, prune=0.8, cluster=16, **options):
    """Every variant of ``task`` side by side, into its folder and card; see
    :func:`toolkit.edge.compression.compression_report`."""
    from .compression import compression_report as run

    return run(task, data, prune=prune, cluster=cluster, **options)
