"""Multi-worker training and hyperparameter search on digits (toolkit.distributed, toolkit.tuning).

- 1 vs 2 local workers (``toolkit launch``, MultiWorkerMirroredStrategy over gRPC on loopback),
  the same epochs (early stopping off), the same per-worker batch and the linear learning-rate
  rule: test accuracy side by side, and training steps/s from Keras's per-epoch log;
- ``toolkit tune`` with 8 random-search trials against the default config with the same fixed
  epochs, both scored on the test split the search never saw (selection: validation loss).

Peer: scikit-learn's logistic regression on the same digits split.
"""

from __future__ import annotations

import io
import json
import re
import statistics
import tempfile
from pathlib import Path

from .common import target

EPOCHS = 5
TRIALS = 8
PARAMS = ("learning_rate", "dropout", "patience")
STEP = re.compile(r"(\d+)/\1 - [\d.]+m?s - ([\d.]+)(ms|s)/step")


def _launch(workers: int, out: Path) -> dict:
    from toolkit.distributed import launch

    log = io.StringIO()
    code = launch(["train", "image_classifier", "--data", "digits", "--out", str(out), "--epochs", str(EPOCHS),
                   "--patience", "1000", "--verbose", "2"], workers=workers, out=log)
    text = log.getvalue()
    if code:
        raise RuntimeError(f"{workers} workers failed ({code}):\n{text[-3000:]}")
    chief = [line for line in text.splitlines() if line.startswith("[worker 0]")]
    per_step = [float(m.group(2)) * (1 if m.group(3) == "ms" else 1000) for m in map(STEP.search, chief) if m]
    card = json.loads((out / "card.json").read_text())
    return {"accuracy": card["metrics"]["test_accuracy"], "epochs": card["training"]["epochs_run"],
            "steps_per_s": 1000 / statistics.median(per_step), "global_batch": card["training"]["batch_size"],
            "distributed": card["training"].get("distributed")}


def _parameters(out: Path) -> int:
    from toolkit import load

    return int(load(out).model_.count_params())


def run() -> dict:
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    from toolkit.data import load_digits
    from toolkit.tuning import tune
    from toolkit.vision.classifier import ImageClassifier

    digits = load_digits()
    flat = lambda x: x.reshape(len(x), -1) / 255.0  # noqa: E731
    peer = LogisticRegression(max_iter=2000).fit(flat(digits.train.x), digits.train.y)
    peer_acc = float(np.mean(peer.predict(flat(digits.test.x)) == digits.test.y))

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        one, two = _launch(1, tmp / "w1"), _launch(2, tmp / "w2")
        params = _parameters(tmp / "w1")
        default = ImageClassifier.train_recipe(tmp / "default", data="digits", epochs=EPOCHS, verbose=0)
        default_val = min(json.loads((tmp / "default" / "history.json").read_text())["val_loss"])
        searched = tune(ImageClassifier, tmp / "best", trials=TRIALS, params=PARAMS, data="digits", epochs=EPOCHS,
                        verbose=0)
    gap = abs(two["accuracy"] - one["accuracy"])
    default_acc, best_acc = default["metrics"]["test_accuracy"], searched["metrics"]["test_accuracy"]
    mb_per_step = 2 * (2 - 1) / 2 * params * 4 / 1e6  # ring all-reduce, N=2: each worker sends 2(N-1)/N x gradients
    rows = [
        target("digits, 2 local workers vs 1: test accuracy gap", gap, "<= 0.005 (same epochs)", gap <= 0.005
               and one["epochs"] == two["epochs"] == EPOCHS, "points/100",
               f"1 worker {one['accuracy']:.4f}, 2 workers {two['accuracy']:.4f}; {EPOCHS} epochs each, early "
               f"stopping off; per-worker batch 32, global {one['global_batch']} vs {two['global_batch']}, learning "
               f"rate x workers; logistic regression peer {peer_acc:.4f}"),
        target("digits, 1 worker: training steps/s", one["steps_per_s"], "reference", True, "steps/s",
               f"batch {one['global_batch']}: {one['steps_per_s'] * one['global_batch']:.0f} images/s"),
        target("digits, 2 local workers: training steps/s", two["steps_per_s"], "reference", True, "steps/s",
               f"global batch {two['global_batch']}: {two['steps_per_s'] * two['global_batch']:.0f} images/s; both "
               f"workers share this machine's cores; ring all-reduce of {params} float32 parameters = "
               f"{mb_per_step:.2f} MB per worker per step"),
        target(f"digits, tune {TRIALS} trials: best config test accuracy", best_acc,
               "> the default config's", best_acc > default_acc, "",
               f"default {default_acc:.4f} (val loss {default_val:.4f}), best val loss {searched['val_loss']:.4f} "
               f"with {json.dumps({k: round(v, 5) for k, v in searched['best_values'].items()})}; searched "
               f"{', '.join(PARAMS)} (random), {EPOCHS} epochs fixed; selected on validation loss, test split unseen; "
               f"logistic regression peer {peer_acc:.4f}"),
    ]
    return {"rows": rows, "one_worker": one, "two_workers": two, "parameters": params,
            "tune": {"default_metrics": default["metrics"], "best": searched}, "peer_logistic_regression": peer_acc}
