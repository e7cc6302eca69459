"""Compression benchmark: the full report (every variant) of the shipped digits model, timed.

Runs on a copy of saved_models/vision/digits_cnn, so the shipped folder is left as it is (its
report comes from `make models`).
"""

from __future__ import annotations

import shutil
import tempfile
import time
import warnings
from pathlib import Path

from .common import target

REPO = Path(__file__).resolve().parent.parent
SHIPPED = REPO / "saved_models" / "vision" / "digits_cnn"


def digits() -> dict:
    from toolkit import load
    from toolkit.edge import compression_report

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "digits_cnn"
        shutil.copytree(SHIPPED, folder)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            start = time.perf_counter()
            report = compression_report(load(folder))
            seconds = time.perf_counter() - start
    rows = {row["variant"]: row for row in report.variants}
    float_acc = rows["float32"]["test_accuracy"]
    float_gz = rows["float32"]["gzip_bytes"]

    def ratio(name: str) -> float:
        return rows[name]["gzip_bytes"] / float_gz

    def points(name: str) -> float:
        return 100 * (float_acc - rows[name]["test_accuracy"])

    pruned, clustered = rows["pruned_int8"], rows["clustered_int8"]
    qat, ptq = rows["qat_int8"]["test_accuracy"], rows["int8"]["test_accuracy"]
    results = [
        target("digits pruned 80% + int8: gzipped size / float32 gzipped", ratio("pruned_int8"), "<= 0.10",
               ratio("pruned_int8") <= 0.10, "x",
               f"{pruned['gzip_bytes'] / 1024:.0f} KiB vs {float_gz / 1024:.0f} KiB; {pruned['sparsity']:.0%} zeros "
               "in the file's kernels"),
        target("digits pruned 80% + int8: accuracy below float", points("pruned_int8"), "<= 1.5 points",
               points("pruned_int8") <= 1.5, "points",
               f"{pruned['test_accuracy']:.4f} vs float {float_acc:.4f}"),
        target("digits QAT int8 accuracy - PTQ int8 accuracy", 100 * (qat - ptq), ">= 0 points", qat >= ptq,
               "points", f"QAT {qat:.4f}, PTQ {ptq:.4f}"),
        target("digits QAT int8: accuracy below float", points("qat_int8"), "<= 0.5 points",
               points("qat_int8") <= 0.5, "points", f"{qat:.4f} vs float {float_acc:.4f}"),
        target("digits clustered (16) + int8: gzipped size / float32 gzipped", ratio("clustered_int8"), "<= 0.15",
               ratio("clustered_int8") <= 0.15, "x",
               f"{clustered['gzip_bytes'] / 1024:.0f} KiB; at most {clustered['max_values_per_channel']} values per "
               "output channel in the file"),
        target("digits clustered (16) + int8: accuracy below float", points("clustered_int8"), "<= 1.5 points",
               points("clustered_int8") <= 1.5, "points", f"{clustered['test_accuracy']:.4f}"),
        target("digits pruned + clustered + QAT int8: gzipped size / float32 gzipped (reference)",
               ratio("pruned_clustered_qat_int8"), "reference", True, "x",
               f"accuracy {rows['pruned_clustered_qat_int8']['test_accuracy']:.4f}, "
               f"{rows['pruned_clustered_qat_int8']['sparsity']:.0%} zeros"),
        target("digits full compression report (8 variants) on this machine", seconds, "<= 600 s", seconds <= 600,
               "s", f"{len(rows)} variants, fine-tuning {report.section['settings']['epochs']} epochs per technique"),
    ]
    return {"rows": results, "report": report.to_dict()}
