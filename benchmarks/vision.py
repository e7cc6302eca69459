"""Vision benchmarks on the shipped digits model: accuracy, size, latency, explanations, demo.

Also retrains the same recipe with three seeds, so the accuracy of the shipped model is shown
beside the spread one should expect from `make models`.
"""

from __future__ import annotations

import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from .common import p50_ms, target

REPO = Path(__file__).resolve().parent.parent
SHIPPED = REPO / "saved_models" / "vision" / "digits_cnn"
#: the photo models of the vision tab, measured with a JPEG of scikit-image's chelsea (451x300)
PHOTO_MODELS = {"ImageNet": REPO / "saved_models" / "vision" / "imagenet_efficientnet_lite0",
                "ants/bees": REPO / "saved_models" / "vision" / "ants_bees"}


def digits_model() -> dict:
    from toolkit import TFLiteModel, load
    from toolkit.data import load_digits

    clf = load(SHIPPED)
    test = load_digits().test
    keras_pred = clf.predict(test.x)
    keras_acc = float(np.mean(keras_pred == np.array(clf.class_names_)[test.y]))
    float_file = TFLiteModel(SHIPPED / "model_float32.tflite")
    int8_file = TFLiteModel(SHIPPED / "model_int8.tflite")
    int8_pred = int8_file.predict(test.x)
    int8_acc = float(np.mean(int8_pred == np.array(clf.class_names_)[test.y]))
    agreement = float(np.mean(int8_pred == keras_pred))
    size_ratio = (SHIPPED / "model_int8.tflite").stat().st_size / (SHIPPED / "model_float32.tflite").stat().st_size

    one = test.x[:1]
    predict_ms = p50_ms(lambda: clf.model_.predict(one, verbose=0), runs=30)
    call_ms = p50_ms(lambda: clf.predict_proba(one), runs=100)
    float_ms = float_file.latency_ms(one, runs=500)
    int8_ms = int8_file.latency_ms(one, runs=500)

    rows = [
        target("digits: Keras test accuracy", keras_acc, ">= 0.99", keras_acc >= 0.99),
        target("digits: int8 TFLite test accuracy", int8_acc, "within 0.5 point of Keras",
               int8_acc >= keras_acc - 0.005),
        target("digits: top-1 agreement Keras vs int8", agreement, ">= 0.995", agreement >= 0.995),
        target("digits: int8 size / float32 size", size_ratio, "<= 0.30", size_ratio <= 0.30, "x"),
        target("one image: model.predict p50", predict_ms, "reference", True, "ms"),
        target("one image: task.predict_proba (Keras, compiled) p50", call_ms, "reference", True, "ms"),
        target("one image: float32 TFLite p50", float_ms, "reference", True, "ms"),
        target("one image: int8 TFLite p50", int8_ms, "reference", True, "ms"),
        target("speed-up of int8 TFLite over model.predict", predict_ms / int8_ms, ">= 20", predict_ms / int8_ms >= 20,
               "x"),
    ]
    return {"rows": rows, "sizes_bytes": {
        "model_float32.tflite": (SHIPPED / "model_float32.tflite").stat().st_size,
        "model_int8.tflite": (SHIPPED / "model_int8.tflite").stat().st_size,
    }}


def explanations() -> dict:
    from toolkit import load
    from toolkit.data import load_digits

    clf = load(SHIPPED)
    images = load_digits().test.x[:6]
    goals = {"gradcam": 0.5, "shap": 5.0, "lime": 5.0}
    rows = []
    for method, goal in goals.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            start = time.perf_counter()
            clf.explain(images[0], method=method)
            cold = time.perf_counter() - start
            seconds = [clf.explain(img, method=method).seconds for img in images[1:]]
        p50 = float(np.median(seconds))
        rows.append(target(f"explanation {method} p50 (first call {cold:.2f} s)", p50, f"<= {goal} s", p50 <= goal,
                           "s"))
    return {"rows": rows}


def demo_latency() -> dict:
    from gradio_client import Client, handle_file
    from PIL import Image

    from apps.main import serve_in_background
    from toolkit.data import load_digits

    image = np.kron(load_digits().test.x[0, ..., 0], np.ones((4, 4))).astype(np.uint8)
    path = Path(tempfile.mkdtemp()) / "digit.png"
    Image.fromarray(image).save(path)
    app = serve_in_background(SHIPPED)
    rows = []
    try:
        # The demo is plain HTTP on 127.0.0.1, so TLS verification has nothing to verify; with it
        # on, httpx builds a TLS context for every request (about 25 ms each, client-side).
        fast = Client(app.local_url, verbose=False, ssl_verify=False)
        default = Client(app.local_url, verbose=False)
        for backend in ("Keras", "model_int8.tflite"):
            ms = p50_ms(lambda: fast.predict(handle_file(str(path)), None, backend, api_name="/classify_image"),
                        runs=40, warmup=3)
            rows.append(target(f"demo predict request via gradio_client p50 ({backend})", ms, "<= 100 ms",
                               ms <= 100, "ms", note="`Client(ssl_verify=False)`: plain HTTP on localhost"))
        ms = p50_ms(lambda: default.predict(handle_file(str(path)), None, "Keras", api_name="/classify_image"),
                    runs=40, warmup=3)
        rows.append(target("demo predict request, gradio_client with default TLS settings p50 (Keras)", ms,
                           "reference", True, "ms", note="httpx builds a TLS context for each of the 3 HTTP calls (client-side)"))
    finally:
        app.close()
    return {"rows": rows}


def photo_demo_rows() -> list[dict]:
    """The photo models' predict request p50: ``apps.vision.classify_image`` (what the tab's
    Classify button runs: read the upload, prepare it, probabilities and features, "not sure",
    top-5) on a JPEG, Keras and the int8 file. (The HTTP round trip through Gradio adds what the
    digits rows above show over the model's own time.)"""
    import skimage.data
    from PIL import Image

    from apps.vision import VisionService, classify_image

    path = Path(tempfile.mkdtemp()) / "chelsea.jpg"
    Image.fromarray(skimage.data.chelsea()).save(path, quality=90)
    rows = []
    for name, directory in PHOTO_MODELS.items():
        if not directory.is_dir():
            continue
        service = VisionService(directory)
        service.warm_up()
        for backend in ("Keras", "model_int8.tflite"):
            ms = p50_ms(lambda: classify_image(service, str(path), None, backend), runs=30, warmup=3)
            rows.append(target(f"{name}: demo predict (apps.vision.classify_image) p50 ({backend})", ms, "<= 100 ms",
                               ms <= 100, "ms", note="a 451x300 JPEG upload: decode, resize, model, 'not sure', top-5"))
    return rows


def photo_demo() -> dict:
    return {"rows": photo_demo_rows()}


def digits_seeds(seeds=(0, 1, 2)) -> dict:
    """The `make models` recipe with several seeds: the spread behind the shipped number."""
    from toolkit import ImageClassifier

    accuracies, seconds = [], []
    for seed in seeds:
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            clf = ImageClassifier(seed=seed).fit("digits")
        seconds.append(time.perf_counter() - start)
        accuracies.append(clf.evaluate("digits")["accuracy"])
    mean, low = float(np.mean(accuracies)), float(np.min(accuracies))
    return {
        "accuracies": accuracies,
        "train_seconds": seconds,
        "rows": [
            target(f"digits recipe over seeds {list(seeds)}: mean test accuracy (min {low:.4f})", mean, ">= 0.99",
                   mean >= 0.99),
            target("digits recipe: training time p50", float(np.median(seconds)), "reference", True, "s"),
        ],
    }
