"""Honest offline transfer learning: pretrain on digits 0-4, fine-tune on digits 5-9.

The target task gets 10 or 30 labelled images per class (from the digits train split); the
same architecture is trained from scratch on exactly the same images. Both are scored on the
digits test split's 5-9 images. Repeated over several seeds (different labelled subsets).
"""

from __future__ import annotations

import tempfile
import time
import warnings

import numpy as np

from .common import target

SOURCE_CLASSES = [0, 1, 2, 3, 4]
TARGET_CLASSES = [5, 6, 7, 8, 9]


def _subset(data, classes, per_class=None, seed=0):
    from toolkit.data import ImageData

    rng = np.random.default_rng(seed)
    index = []
    for c in classes:
        members = np.flatnonzero(data.y == c)
        index.extend(members if per_class is None else rng.choice(members, per_class, replace=False))
    index = np.sort(np.asarray(index))
    y = np.searchsorted(classes, data.y[index])
    return ImageData(data.x[index], y, [str(c) for c in classes])


def run(shots=(10, 30), seeds=(0, 1, 2), fine_tune_learning_rate=1e-4) -> dict:
    from toolkit import ImageClassifier, ImageClassifierConfig
    from toolkit.data import load_digits

    splits = load_digits()
    source = _subset(splits.train, SOURCE_CLASSES)
    test = _subset(splits.test, TARGET_CLASSES)
    workdir = tempfile.mkdtemp(prefix="transfer-")
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pretrained = ImageClassifier(ImageClassifierConfig(seed=0)).fit(source)
    source_dir = pretrained.save(f"{workdir}/source_0_4")
    source_accuracy = pretrained.evaluate(_subset(splits.test, SOURCE_CLASSES))["accuracy"]
    pretrain_seconds = time.perf_counter() - start

    results: dict = {"source_test_accuracy_0_4": source_accuracy, "pretrain_seconds": pretrain_seconds,
                     "test_images": len(test), "runs": []}
    rows = []
    for k in shots:
        scores = {"scratch": [], "fine_tuned": []}
        for seed in seeds:
            labelled = _subset(splits.train, TARGET_CLASSES, per_class=k, seed=seed)
            configs = {
                "scratch": ImageClassifierConfig(seed=seed),
                "fine_tuned": ImageClassifierConfig(
                    seed=seed, weights=str(source_dir), fine_tune_layers=2, fine_tune_epochs=20,
                    fine_tune_learning_rate=fine_tune_learning_rate,
                ),
            }
            for name, config in configs.items():
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    clf = ImageClassifier(config).fit(labelled)
                accuracy = clf.evaluate(test)["accuracy"]
                scores[name].append(accuracy)
                results["runs"].append({"labels_per_class": k, "seed": seed, "model": name, "accuracy": accuracy,
                                        "epochs": len(clf.history_["loss"])})
        scratch, tuned = np.mean(scores["scratch"]), np.mean(scores["fine_tuned"])
        results[f"{k}_per_class"] = {
            "scratch_mean": float(scratch), "scratch_std": float(np.std(scores["scratch"])),
            "fine_tuned_mean": float(tuned), "fine_tuned_std": float(np.std(scores["fine_tuned"])),
        }
        rows.append(target(
            f"transfer, digits 5-9 with {k} labels/class: fine-tuned accuracy (from scratch "
            f"{scratch:.3f} ± {np.std(scores['scratch']):.3f})",
            float(tuned), "> from scratch" if k == 10 else "reference", tuned > scratch if k == 10 else True,
            note=f"± {np.std(scores['fine_tuned']):.3f} over seeds {list(seeds)}",
        ))
    results["rows"] = rows
    return results
