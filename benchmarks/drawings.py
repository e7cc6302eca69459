"""The sketchpad: how many drawn digits the shipped digits model reads, through the digits-style
preprocessing (toolkit.data.drawings.digit_image) and, as the peer in the same run, the same images
squeezed whole to 8x8 (light ink on black).

The test set is ``drawn_digits(400, seed=0)``: 200 digits typed in six DejaVu fonts (40-200 px,
off centre, 280x280 and 400x300 canvases, both polarities) and 200 drawn with pen strokes
(4-30 px wide, rotated up to 10 degrees, on transparent canvases). The preprocessing's stroke
width was chosen on other renders (seed 1), never on these.
"""

from __future__ import annotations

import time

import numpy as np

from .common import target

SHIPPED = "saved_models/vision/digits_cnn"


def _squeezed(task, image: np.ndarray) -> np.ndarray:
    """The peer: the whole canvas on white, inverted to light ink on black, resized to the model's input."""
    image = image.astype(np.float32)
    if image.shape[-1] == 4:
        alpha = image[..., 3:4] / 255.0
        image = image[..., :3] * alpha + 255.0 * (1 - alpha)
    gray = image.mean(axis=-1, keepdims=True)
    if np.median(np.concatenate([gray[0], gray[-1]])) > 127:
        gray = 255.0 - gray
    return task.prepare(gray)[0]


def run(n: int = 400, seed: int = 0) -> dict:
    import toolkit
    from toolkit.data.drawings import digit_image, drawn_digits

    task = toolkit.load(SHIPPED)
    rows, results = [], {}
    for kind in ("font", "stroke"):
        images, labels = drawn_digits(n // 2, seed=seed, kinds=(kind,))
        start = time.perf_counter()
        ours = np.stack([digit_image(im) for im in images])
        ms = (time.perf_counter() - start) / len(images) * 1000
        peer = np.stack([_squeezed(task, im) for im in images])
        results[kind] = {
            "digits_style": float((task.probabilities(ours).argmax(1) == labels).mean()),
            "squeezed": float((task.probabilities(peer).argmax(1) == labels).mean()),
            "ms_per_drawing": ms,
            "n": len(images),
        }
    both = np.mean([results[k]["digits_style"] for k in results])
    peer = np.mean([results[k]["squeezed"] for k in results])
    rows.append(target(f"drawn digits read by digits_cnn, digits-style preprocessing (squeezed whole: {peer:.3f})",
                       float(both), ">= 0.9", both >= 0.9,
                       note=f"{n} renders: fonts {results['font']['digits_style']:.3f}, "
                            f"pen strokes {results['stroke']['digits_style']:.3f}"))
    for kind, label in (("font", "typed in fonts"), ("stroke", "drawn with pen strokes")):
        r = results[kind]
        rows.append(target(f"drawn digits {label} (squeezed whole: {r['squeezed']:.3f})", r["digits_style"],
                           "reference", True, note=f"{r['n']} renders; {r['ms_per_drawing']:.1f} ms per drawing"))
    return {"rows": rows, "results": results, "seed": seed}
