"""Image explanations: Grad-CAM, SHAP (GradientExplainer) and LIME. Arrays in, arrays out.

Each function takes one image as a (1, H, W, C) batch of raw pixels and returns an (H, W)
attribution map; positive values support the target class.
"""

from __future__ import annotations

import warnings
import weakref
from typing import Callable

import numpy as np

_GRAD_MODELS: "weakref.WeakKeyDictionary[object, dict]" = weakref.WeakKeyDictionary()


def _grad_model(model, feature_layer: str):
    import keras

    cached = _GRAD_MODELS.setdefault(model, {})
    if feature_layer in cached:
        return cached[feature_layer]
    try:
        features = model.get_layer(feature_layer).input
    except ValueError as exc:
        raise ValueError(
            f"Grad-CAM needs the layer {feature_layer!r} whose input is the last convolutional feature map. "
            f"Layers: {[layer.name for layer in model.layers]}."
        ) from exc
    grad_model = keras.Model(model.inputs, [features, model.outputs[0]])
    cached[feature_layer] = grad_model
    return grad_model


def gradcam(model, image: np.ndarray, target: int, feature_layer: str = "pool", budget: int = 1,
            noise: float = 0.1, seed: int = 0) -> np.ndarray:
    """Grad-CAM of ``target`` on the feature map feeding ``feature_layer``.

    ``budget`` > 1 averages maps over that many noisy copies of the image (Smooth Grad-CAM,
    noise sigma = ``noise`` x 255).
    """
    import cv2
    import tensorflow as tf

    batch = np.repeat(np.asarray(image, dtype=np.float32), max(1, budget), axis=0)
    if budget > 1:
        rng = np.random.default_rng(seed)
        batch[1:] = np.clip(batch[1:] + rng.normal(0, noise * 255, batch[1:].shape), 0, 255)
    grad_model = _grad_model(model, feature_layer)
    x = tf.convert_to_tensor(batch)
    with tf.GradientTape() as tape:
        features, probs = grad_model(x, training=False)
        score = tf.math.log(probs[:, target] + 1e-12)
    grads = tape.gradient(score, features)
    weights = tf.reduce_mean(grads, axis=(1, 2), keepdims=True)
    cam = tf.nn.relu(tf.reduce_sum(weights * features, axis=-1))
    cam = tf.reduce_mean(cam, axis=0).numpy().astype(np.float32)
    height, width = image.shape[1:3]
    cam = cv2.resize(cam, (width, height), interpolation=cv2.INTER_LINEAR)
    low, high = float(cam.min()), float(cam.max())
    return (cam - low) / (high - low) if high > low else np.zeros_like(cam)


def shap_gradient(model, image: np.ndarray, target: int, background: np.ndarray, budget: int = 200,
                  seed: int = 0) -> np.ndarray:
    """SHAP expected gradients (``shap.GradientExplainer``) summed over channels."""
    import shap

    with warnings.catch_warnings():  # shap passes inputs as a list; Keras warns about the structure
        warnings.filterwarnings("ignore", message="The structure of `inputs`")
        explainer = shap.GradientExplainer(model, np.asarray(background, dtype=np.float32))
        values = explainer.shap_values(np.asarray(image, dtype=np.float32), nsamples=int(budget), rseed=seed)
    if isinstance(values, list):  # older shap: one array per output
        values = values[target]
    else:
        values = np.asarray(values)[..., target]
    return np.asarray(values[0], dtype=np.float32).sum(axis=-1)


def _no_progress_bar(iterable, *args, **kwargs):
    return iterable


def grid_segments(height: int, width: int, cells: int = 4) -> np.ndarray:
    """Label an (H, W) image in a ``cells`` x ``cells`` grid of superpixels."""
    rows = np.minimum(np.arange(height) * cells // height, cells - 1)
    cols = np.minimum(np.arange(width) * cells // width, cells - 1)
    return (rows[:, None] * cells + cols[None, :]).astype(np.int64)


def lime_image(predict_proba: Callable[[np.ndarray], np.ndarray], image: np.ndarray, target: int,
               budget: int = 500, hide_color: float | None = 0.0, seed: int = 0,
               segments: int = 16) -> np.ndarray:
    """LIME over superpixels: a grid for small images, SLIC for photos.

    ``predict_proba`` takes a raw-pixel (N, H, W, C) batch. ``hide_color`` fills switched-off
    superpixels (0 = black; None = each superpixel's mean colour).
    """
    from lime import lime_image as lime_img

    lime_img.tqdm = _no_progress_bar  # lime prints a progress bar per explanation otherwise
    single = np.asarray(image, dtype=np.float64)[0]
    channels = single.shape[-1]
    rgb = np.repeat(single, 3, axis=-1) if channels == 1 else single
    height, width = rgb.shape[:2]
    segmentation = None
    if min(height, width) > 32:
        from skimage.segmentation import slic

        segmentation = slic(rgb / 255.0, n_segments=max(segments, 25), compactness=10, start_label=0)
        if len(np.unique(segmentation)) < segments // 2:  # texture-less or noisy images: SLIC merges all
            segmentation = None
    if segmentation is None:
        segmentation = grid_segments(height, width, int(round(np.sqrt(segments))))

    def classifier_fn(batch: np.ndarray) -> np.ndarray:
        batch = batch[..., :1] if channels == 1 else batch
        return predict_proba(batch.astype(np.float32))

    explainer = lime_img.LimeImageExplainer(random_state=seed)
    explanation = explainer.explain_instance(
        rgb,
        classifier_fn,
        labels=(target,),
        top_labels=None,
        hide_color=hide_color,
        num_samples=int(budget),
        batch_size=min(int(budget), 256),
        segmentation_fn=lambda _: segmentation,
        random_seed=seed,
    )
    weights = dict(explanation.local_exp[target])
    attributions = np.zeros((height, width), dtype=np.float32)
    for segment, weight in weights.items():
        attributions[segmentation == segment] = weight
    return attributions
