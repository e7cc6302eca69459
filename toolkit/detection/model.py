"""The detector's network: frozen EfficientNet-Lite0 features, an anchor-free CenterNet/FCOS-style
head on the stride-16 grid, its training targets and loss, and the decoding + non-maximum
suppression layer that goes inside the exported ``.tflite``.

Why this design (and not KerasHub's RetinaNet): RetinaNet's anchors on five pyramid levels and its
``NonMaxSuppression`` layer (a backend-neutral greedy loop over sorted boxes) are made for
COCO-sized training runs; that layer does not lower to TFLite's builtin NMS, so the usual exports
need Flex ops. One grid of cells (stride 16: 14x14 at 224 pixels), each predicting a class heatmap
(CenterNet's Gaussian peaks and penalty-reduced focal loss) and its distances to the box's four
sides (FCOS; IoU loss), trains on cached backbone features in seconds, and decodes with plain
tensor ops plus ``tf.image.non_max_suppression_padded``, which converts to the builtin
``NON_MAX_SUPPRESSION_V4`` op (float32, float16 and int8 files; checked by the tests). The decoding
reads the heatmap logits and the distances as two tensors (:func:`split_outputs`): concatenated, int8
conversion gave both one value range, the distances' (all positive), so every negative logit became
0 and scored 0.5 (raccoon model: int8 mAP@0.5 0.548 against 0.797 in Keras; split: 0.797 and 0.797
for the decoding alone). What int8 error is left is spread over the backbone, not in the head or the
decoding: ``tf.lite.experimental.QuantizationDebugger`` gives each layer an error of 0.2-0.4
quantization steps (RMSE / scale; 15 for the box sums before their clip to [0, 1], out-of-range
values the clip removes: 0.3 after it), and on 240 augmented copies of the raccoon training photos
the top detection's score moved by 0.050 on average in the int8 file, 0.047-0.050 with the head, the
1280-channel convolution or the stem kept in float (the 1280-channel one makes the file 5.4 MB) or
with the augmented copies added to the calibration images; mAP@0.5 there: Keras 0.961, int8
0.962-0.963 with each of those files. Out of fold (the 120 raccoon training photos in 4 folds of 30,
each head trained on the other 90 and its int8 file calibrated on them) int8 minus Keras mAP@0.5 was
+0.030, +0.001, +0.008 and +0.049 (pooled: 0.798 against 0.780; since the head's first weights
depend only on the seed: -0.010, -0.006, +0.018 and +0.077, pooled 0.835 against 0.814): no
systematic loss to remove (benchmark ``detection_raccoon_folds``). Tried before that reseed on those folds, paired with the default (int8
minus Keras per fold, and the mean change of each image's top score): (1) score ties: the file's
scores come from int8 heatmap logits (step 0.12: calibration sees background logits near -26),
an int8 sigmoid (step 1/256) and float NMS; the Keras scores rounded to 1/256 give the same mAP@0.5
in all four folds, and floored logits (``relu(conv + 8) - 8``, the ReLU fused into the int8
convolution: step 0.05) gave +0.030 and -0.025 on folds 0-1 against +0.030 and +0.002, top score
moved 0.049 against 0.049; (2) int8-aware head training without TFMOT (half the cached training
features taken from the int8 backbone, calibrated as the export is): +0.030 and -0.046, Keras
mAP@0.5 0.871 and 0.807 against 0.871 and 0.842, top score moved 0.050. Neither was kept.

Outputs of :class:`DetectionDecode` follow the TFLite detection convention phones expect:
``boxes`` (1, K, 4) as [ymin, xmin, ymax, xmax] in [0, 1], ``classes`` (1, K), ``scores`` (1, K)
(0 for the padding) and ``count`` (1,).
"""

from __future__ import annotations

import numpy as np

STRIDE = 16
#: the backbone layers the head reads: stride 16 (end of stage 5) and stride 32 (the 1280-channel head)
FEATURE_LAYERS = ("block10_add", "head_relu6")
BOX_CLIP = 4.0  # box distances are exp(clip(raw, -BOX_CLIP, BOX_CLIP)) grid cells
PRIOR = 0.05  # initial heatmap probability


def feature_model(image_size: int, weights: str | None = "imagenet"):
    """Scaled pixels -> [stride-16 map, stride-32 map] of EfficientNet-Lite0 (named ``backbone``)."""
    import keras

    from ..transfer.efficientnet_lite import backbone

    net = backbone((image_size, image_size, 3), weights=weights)
    return keras.Model(net.input, [net.get_layer(n).output for n in FEATURE_LAYERS], name="backbone")


def build_head(image_size: int, n_classes: int, width: int = 64):
    """[stride-16 features, stride-32 features] -> (G, G, n_classes + 4) maps: heatmap logits, then
    the raw box distances (left, top, right, bottom). Small on purpose: 1x1 laterals, a sum, two
    depthwise-separable 3x3 convolutions (about 0.1 M parameters at width 64)."""
    import keras
    from keras import layers

    grid = image_size // STRIDE
    fine = keras.Input((grid, grid, 112), name="stride16")
    coarse = keras.Input((grid // 2, grid // 2, 1280), name="stride32")
    a = layers.Conv2D(width, 1, activation="relu", name="lateral16")(fine)
    b = layers.Conv2D(width, 1, activation="relu", name="lateral32")(coarse)
    b = layers.UpSampling2D(2, name="up32")(b)
    x = layers.Add(name="merge")([a, b])
    for i in range(2):
        x = layers.SeparableConv2D(width, 3, padding="same", activation="relu", name=f"head_conv{i}")(x)
    prior = float(-np.log((1 - PRIOR) / PRIOR))
    heat = layers.Conv2D(n_classes, 1, bias_initializer=keras.initializers.Constant(prior), name="heatmap")(x)
    box = layers.Conv2D(4, 1, kernel_initializer=keras.initializers.RandomNormal(stddev=0.01), name="distances")(x)
    out = layers.Concatenate(name="maps")([heat, box])
    return keras.Model([fine, coarse], out, name="head")


def build_detector(image_size: int, head, features):
    """Raw 0-255 RGB pixels (image_size x image_size) -> the head's maps (``features``: :func:`feature_model`)."""
    import keras
    from keras import layers

    from ..transfer import efficientnet_lite as lite

    pixels = keras.Input((image_size, image_size, 3), name="pixels")
    x = layers.Rescaling(1.0 / lite.STD, -lite.MEAN / lite.STD, name="rescale")(pixels)
    return keras.Model(pixels, head(features(x)), name="detector")


def split_outputs(head):
    """The head with its two maps as separate outputs (heatmap logits, raw distances): what the
    decoding reads. Kept apart because int8 conversion gives a concatenation one value range, and
    the distances' range (all positive) left every negative heatmap logit at 0 (score 0.5)."""
    import keras

    return keras.Model(head.inputs, [head.get_layer("heatmap").output, head.get_layer("distances").output],
                       name="head_maps")


# ---------------------------------------------------------------------------- targets and loss


def targets(boxes: np.ndarray, labels: np.ndarray, n_classes: int, grid: int) -> np.ndarray:
    """Training targets of one image (boxes in [0, 1]): (grid, grid, n_classes + 5) = Gaussian
    heatmaps (1 at each box's centre cell), the distances (cells) from each cell's centre to the
    four sides of the box it regresses, and that cell's regression weight."""
    out = np.zeros((grid, grid, n_classes + 5), np.float32)
    best = np.zeros((grid, grid), np.float32)
    ys, xs = np.mgrid[:grid, :grid].astype(np.float32) + 0.5
    for box, label in zip(np.asarray(boxes, np.float32).reshape(-1, 4) * grid, labels):
        x1, y1, x2, y2 = box
        w, h = max(x2 - x1, 1e-3), max(y2 - y1, 1e-3)
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        sx, sy = max(w / 6, 0.5), max(h / 6, 0.5)
        gauss = np.exp(-((xs - cx) ** 2 / (2 * sx * sx) + (ys - cy) ** 2 / (2 * sy * sy)))
        ci, cj = min(int(cy), grid - 1), min(int(cx), grid - 1)
        gauss[ci, cj] = 1.0
        out[..., label] = np.maximum(out[..., label], gauss)
        inside = (xs > x1) & (xs < x2) & (ys > y1) & (ys < y2)
        inside[ci, cj] = True
        take = inside & (gauss > best)
        best = np.where(take, gauss, best)
        dist = np.stack([xs - x1, ys - y1, x2 - xs, y2 - ys], -1)
        out[..., n_classes:n_classes + 4] = np.where(take[..., None], np.maximum(dist, 0.05),
                                                      out[..., n_classes:n_classes + 4])
    out[..., -1] = np.where(best >= 0.3, best, 0.0)
    return out


def detection_loss(n_classes: int, box_weight: float = 2.0):
    """The loss of the head's maps against :func:`targets`: CenterNet's penalty-reduced focal loss
    on the heatmaps + ``box_weight`` x the weighted IoU loss of the distances (FCOS)."""
    from keras import ops

    def loss(y_true, y_pred):
        heat_t, dist_t, weight = y_true[..., :n_classes], y_true[..., n_classes:n_classes + 4], y_true[..., -1]
        p = ops.clip(ops.sigmoid(y_pred[..., :n_classes]), 1e-4, 1 - 1e-4)
        pos = ops.cast(heat_t >= 1.0, "float32")
        focal = -(pos * ops.log(p) * (1 - p) ** 2 + (1 - pos) * ops.log(1 - p) * p ** 2 * (1 - heat_t) ** 4)
        n_pos = ops.maximum(ops.sum(pos, axis=(1, 2, 3)), 1.0)
        focal = ops.sum(focal, axis=(1, 2, 3)) / n_pos
        d = ops.exp(ops.clip(y_pred[..., n_classes:n_classes + 4], -BOX_CLIP, BOX_CLIP))
        iw = ops.minimum(d[..., 0], dist_t[..., 0]) + ops.minimum(d[..., 2], dist_t[..., 2])
        ih = ops.minimum(d[..., 1], dist_t[..., 1]) + ops.minimum(d[..., 3], dist_t[..., 3])
        inter = iw * ih
        area_p = (d[..., 0] + d[..., 2]) * (d[..., 1] + d[..., 3])
        area_t = (dist_t[..., 0] + dist_t[..., 2]) * (dist_t[..., 1] + dist_t[..., 3])
        iou = inter / ops.maximum(area_p + area_t - inter, 1e-6)
        box = ops.sum(weight * (1 - iou), axis=(1, 2)) / ops.maximum(ops.sum(weight, axis=(1, 2)), 1e-6)
        return focal + box_weight * box

    return loss


# ---------------------------------------------------------------------------- decoding (in the .tflite too)


def _decode_layer_class():
    import keras

    @keras.saving.register_keras_serializable(package="toolkit.detection")
    class DetectionDecode(keras.layers.Layer):
        """[(1, G, G, C) heatmap logits, (1, G, G, 4) distances] -> boxes, classes, scores, count after class-aware NMS (TF ops that
        convert to builtin TFLite ops; one image at a time, as the builtin NMS takes one)."""

        def __init__(self, n_classes: int, max_detections: int = 20, iou_threshold: float = 0.5,
                     score_threshold: float = 0.05, **kwargs):
            super().__init__(**kwargs)
            self.n_classes, self.max_detections = int(n_classes), int(max_detections)
            self.iou_threshold, self.score_threshold = float(iou_threshold), float(score_threshold)

        def get_config(self):
            return {**super().get_config(), "n_classes": self.n_classes, "max_detections": self.max_detections,
                    "iou_threshold": self.iou_threshold, "score_threshold": self.score_threshold}

        def call(self, inputs):
            import tensorflow as tf

            c = self.n_classes
            heat, dist = (tf.cast(t, tf.float32) for t in inputs)
            grid = heat.shape[1]
            # No CenterNet max-pool peak picking: the NMS removes a peak's neighbours (their boxes overlap it).
            logits = tf.reshape(heat, (-1, c))
            score = tf.sigmoid(tf.reduce_max(logits, -1))  # the sigmoid is monotone: max first
            cls = tf.cast(tf.argmax(logits, -1), tf.float32)
            d = tf.reshape(tf.exp(tf.clip_by_value(dist, -BOX_CLIP, BOX_CLIP)), (-1, 4)) / grid
            ys, xs = np.mgrid[:grid, :grid].astype(np.float32) + 0.5
            cx, cy = tf.constant(xs.reshape(-1) / grid), tf.constant(ys.reshape(-1) / grid)
            boxes = tf.clip_by_value(tf.stack([cy - d[:, 1], cx - d[:, 0], cy + d[:, 3], cx + d[:, 2]], -1), 0.0, 1.0)
            shifted = boxes + 2.0 * cls[:, None]  # boxes of different classes never overlap: class-aware NMS
            index, count = tf.image.non_max_suppression_padded(
                shifted, score, self.max_detections, self.iou_threshold, self.score_threshold,
                pad_to_max_output_size=True)
            # Padding points at an extra candidate with score 0 and an empty box (chosen by integer ops)
            n = grid * grid
            index = tf.where(tf.range(self.max_detections) < count, index,
                             tf.constant(np.full(self.max_detections, n, np.int32)))
            boxes = tf.concat([boxes, tf.constant(np.zeros((1, 4), np.float32))], 0)
            cls = tf.concat([cls, tf.constant(np.zeros(1, np.float32))], 0)
            score = tf.concat([score, tf.constant(np.zeros(1, np.float32))], 0)
            return (tf.gather(boxes, index)[None], tf.gather(cls, index)[None], tf.gather(score, index)[None],
                    tf.cast(count, tf.float32)[None])

    return DetectionDecode


def export_model(detector, n_classes: int, max_detections: int, iou_threshold: float, score_threshold: float):
    """One image of raw pixels (batch 1) -> (boxes, classes, scores, count): what the ``.tflite`` holds
    (``detector``: :func:`build_detector` on :func:`split_outputs`)."""
    import keras

    size = detector.input_shape[1]
    pixels = keras.Input((size, size, 3), batch_size=1, name="pixels")
    decode = _decode_layer_class()(n_classes, max_detections, iou_threshold, score_threshold, name="decode")
    return keras.Model(pixels, decode(detector(pixels)), name="detector_with_nms")


def decoder(n_classes: int, max_detections: int, iou_threshold: float, score_threshold: float):
    """The decode layer alone (maps of one image -> the four outputs), for serving the Keras model."""
    return _decode_layer_class()(n_classes, max_detections, iou_threshold, score_threshold, name="decode")
