"""Honest offline transfer learning: pretrain on digits 0-4, fine-tune on digits 5-9.

The target task gets 10 or 30 labelled images per class (drawn from the digits train split);
the same architecture, with the same settings, is trained from scratch on exactly the same
images. Both are scored on the digits test split's 180 images of 5-9, over five seeds (five
different labelled subsets). No augmentation, so the comparison is about the weights only.

Two backbones: LeNet-5, whose flattening head keeps the spatial layout of the stroke features,
and small_cnn, whose global average pooling does not.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
import warnings

import numpy as np

from .common import target

SOURCE_CLASSES = [0, 1, 2, 3, 4]
TARGET_CLASSES = [5, 6, 7, 8, 9]
# Phase 1: 20 epochs of the new head on the frozen backbone; phase 2: the top conv layer
# unfrozen for up to 40 more epochs. Early stopping applies to both.
FINE_TUNE = {"epochs": 20, "fine_tune_layers": 1, "fine_tune_epochs": 40, "fine_tune_learning_rate": 1e-3}


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


def run(backbones=("lenet5", "small_cnn"), shots=(10, 30), seeds=(0, 1, 2, 3, 4)) -> dict:
    from toolkit import ImageClassifier, ImageClassifierConfig
    from toolkit.data import load_digits

    splits = load_digits()
    source, source_test = _subset(splits.train, SOURCE_CLASSES), _subset(splits.test, SOURCE_CLASSES)
    test = _subset(splits.test, TARGET_CLASSES)
    workdir = tempfile.mkdtemp(prefix="transfer-")
    results: dict = {"test_images": len(test), "fine_tune": FINE_TUNE, "runs": [], "sources": {}}
    rows = []
    for backbone in backbones:
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pretrained = ImageClassifier(ImageClassifierConfig(backbone=backbone, augment="none", seed=0)).fit(source)
        source_dir = pretrained.save(f"{workdir}/{backbone}_0_4")
        results["sources"][backbone] = {
            "test_accuracy_0_4": pretrained.evaluate(source_test)["accuracy"],
            "seconds": time.perf_counter() - start,
        }
        for k in shots:
            scores: dict[str, list[float]] = {"scratch": [], "fine_tuned": []}
            for seed in seeds:
                labelled = _subset(splits.train, TARGET_CLASSES, per_class=k, seed=seed)
                base = ImageClassifierConfig(backbone=backbone, augment="none", seed=seed)
                configs = {
                    "scratch": base,
                    "fine_tuned": dataclasses.replace(base, weights=str(source_dir), **FINE_TUNE),
                }
                for name, config in configs.items():
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        clf = ImageClassifier(config).fit(labelled)
                    accuracy = clf.evaluate(test)["accuracy"]
                    scores[name].append(accuracy)
                    results["runs"].append({"backbone": backbone, "labels_per_class": k, "seed": seed, "model": name,
                                            "accuracy": accuracy, "epochs": len(clf.history_["loss"])})
            scratch, tuned = np.array(scores["scratch"]), np.array(scores["fine_tuned"])
            wins, ties = int(np.sum(tuned > scratch)), int(np.sum(tuned == scratch))
            results[f"{backbone}_{k}_per_class"] = {
                "scratch": scratch.tolist(), "fine_tuned": tuned.tolist(), "fine_tuned_wins": wins, "ties": ties,
            }
            headline = backbone == backbones[0] and k == 10
            rows.append(target(
                f"transfer {backbone}, digits 5-9, {k} labels/class: fine-tuned (from scratch "
                f"{scratch.mean():.3f} ± {scratch.std():.3f})",
                float(tuned.mean()), "> from scratch" if headline else "reference",
                tuned.mean() > scratch.mean() if headline else True,
                note=f"± {tuned.std():.3f}; better in {wins}, tied in {ties} of {len(seeds)} seeds",
            ))
    rows.extend(_pixel_baseline(splits, test, shots, seeds))
    results["rows"] = rows
    return results


def _pixel_baseline(splits, test, shots, seeds) -> list[dict]:
    """How easy the target task is: logistic regression on raw pixels, same labelled images."""
    from sklearn.linear_model import LogisticRegression

    rows = []
    for k in shots:
        scores = []
        for seed in seeds:
            labelled = _subset(splits.train, TARGET_CLASSES, per_class=k, seed=seed)
            model = LogisticRegression(max_iter=2000).fit(labelled.x.reshape(len(labelled), -1) / 255, labelled.y)
            scores.append(model.score(test.x.reshape(len(test), -1) / 255, test.y))
        rows.append(target(f"baseline: logistic regression on raw pixels, digits 5-9, {k} labels/class",
                           float(np.mean(scores)), "reference", True, note=f"± {np.std(scores):.3f}"))
    return rows
