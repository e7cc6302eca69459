"""Photos: the default image recipe on folders a user might have, against from scratch.

- ``synthetic``: three folders made by ``toolkit.data.synthetic_images`` (shapes, textures,
  stripes; 100 images per class, mixed sizes, modes and formats), each trained with the default
  command (``toolkit train vision --data FOLDER``: the recipe picks the backbone) and with
  ``small_cnn`` from scratch, on the same 80/20 split.
- ``ants_bees``: ``../shared/data/ants_bees`` (245 real photos), the same two recipes on the
  recipe's split (seed 42, 20% held out). Nothing is tuned on that split: the settings are the
  defaults; a separate held-out set exists elsewhere.
- ``transfer_table``: ImageNet-pretrained (the default recipe) vs from scratch with 5, 10 and 30
  training photos per class drawn from the ants/bees training part (same seeds, same photos for
  both), scored on the same held-out 20%.

Every figure has its peer from the same run.
"""

from __future__ import annotations

import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from .common import target

ANTS_BEES = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "ants_bees"
KINDS = ("shapes", "textures", "stripes")
SCRATCH = {"backbone": "small_cnn"}


def _train(folder, out, **options) -> tuple[float, float, dict]:
    """(test accuracy, seconds, card) of ``toolkit train vision --data folder`` with options."""
    from toolkit import ImageClassifier
    from toolkit.storage import read_card

    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        summary = ImageClassifier.train_recipe(out, data=str(folder), verbose=0, **options)
    card = read_card(out)
    return float(summary["metrics"]["test_accuracy"]), time.perf_counter() - start, card


def _compare(name: str, folder, workdir: str, goal: float) -> tuple[list[dict], dict]:
    default, seconds, card = _train(folder, f"{workdir}/{name}_default")
    scratch, scratch_seconds, _ = _train(folder, f"{workdir}/{name}_scratch", **SCRATCH)
    recipe = f"{card['recipe']}, {card['backbone']['name']}"
    row = target(f"photos {name}: default `toolkit train vision` test accuracy (from scratch {scratch:.3f})",
                 default, f">= {goal}", default >= goal,
                 note=f"{recipe}; {seconds:.0f} s vs {scratch_seconds:.0f} s from scratch")
    return [row], {"default": default, "scratch": scratch, "recipe": recipe, "seconds": seconds,
                   "scratch_seconds": scratch_seconds, "n_test": card["metrics"]["test_n_samples"]}


def synthetic(per_class: int = 100, kinds=KINDS) -> dict:
    from toolkit.data.synthetic_images import write_synthetic_folder

    workdir = tempfile.mkdtemp(prefix="photos-")
    rows, results = [], {}
    for k, kind in enumerate(kinds):
        folder = write_synthetic_folder(f"{workdir}/{kind}", kind, per_class=per_class, seed=k)
        more, results[kind] = _compare(kind, folder, workdir, 0.90)
        rows += more
    return {"rows": rows, "per_class": per_class, "folders": results}


def ants_bees() -> dict:
    if not ANTS_BEES.is_dir():
        return {"rows": [target("photos ants/bees", 0.0, "data present", False, note=f"{ANTS_BEES} missing")]}
    rows, results = _compare("ants/bees", ANTS_BEES, tempfile.mkdtemp(prefix="photos-"), 0.95)
    return {"rows": rows, **results}


def _fit_subset(config, data, per_class: int, seed: int):
    from toolkit import ImageClassifier

    rng = np.random.default_rng(seed)
    index = np.sort(np.concatenate([rng.choice(np.flatnonzero(data.y == c), per_class, replace=False)
                                    for c in range(len(data.class_names))]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ImageClassifier(config).fit(data.subset(index))


def transfer_table(shots=(5, 10, 30), seeds=(0, 1, 2)) -> dict:
    """Pretrained vs from scratch with few photos per class (ants/bees), same photos and seeds."""
    import dataclasses

    from toolkit import ImageClassifierConfig
    from toolkit.data import load_splits
    from toolkit.vision.transfer_recipe import resolve_config

    if not ANTS_BEES.is_dir():
        return {"rows": [target("photos transfer table", 0.0, "data present", False, note=f"{ANTS_BEES} missing")]}
    pretrained = resolve_config(ImageClassifierConfig(), str(ANTS_BEES))
    scratch = resolve_config(ImageClassifierConfig(**SCRATCH), str(ANTS_BEES))
    splits = {config.image_size: load_splits(str(ANTS_BEES), config.image_size, 0.2, 42)
              for config in (pretrained, scratch)}
    rows, runs = [], []
    for k in shots:
        scores = {"pretrained": [], "scratch": []}
        for seed in seeds:
            for name, config in (("pretrained", pretrained), ("scratch", scratch)):
                config = dataclasses.replace(config, seed=seed, validation_split=0.2)
                data = splits[config.image_size]
                clf = _fit_subset(config, data.train, k, seed)
                accuracy = float(clf.evaluate(data.test)["accuracy"])
                scores[name].append(accuracy)
                runs.append({"per_class": k, "seed": seed, "model": name, "accuracy": accuracy,
                             "recipe": clf.recipe_, "backbone": clf.config.backbone})
        tuned, base = np.array(scores["pretrained"]), np.array(scores["scratch"])
        rows.append(target(
            f"photos ants/bees, {k} photos/class: ImageNet-pretrained (from scratch {base.mean():.3f} ± {base.std():.3f})",
            float(tuned.mean()), "> from scratch", tuned.mean() > base.mean(),
            note=f"± {tuned.std():.3f}; {pretrained.backbone} vs {scratch.backbone}; seeds {list(seeds)}",
        ))
    return {"rows": rows, "runs": runs, "test_images": len(splits[pretrained.image_size].test)}
