"""Boxes data for the object detector (:mod:`toolkit.detection`): Pascal VOC folders, COCO JSON
and a generated shapes set (the detector's augmentation and resizing: :mod:`toolkit.detection.data`).

A :class:`DetectionData` holds the images (uint8 RGB arrays of any size), each image's boxes in
pixel coordinates ``[xmin, ymin, xmax, ymax]``, the class index of each box and the class names.
An image with no boxes is a background image (allowed: it teaches the model what is not an object).

Layouts read:

- Pascal VOC as LabelImg writes it: ``images/`` + ``annotations/*.xml`` (the image is found by the
  XML's ``<filename>`` in ``images/``, else by the XML's stem), or the flat layout with the ``.xml``
  files beside the images. Only images with an XML file are read (an XML without ``<object>`` is a
  background image).
- COCO JSON (``images``, ``annotations`` with ``bbox = [x, y, width, height]``, ``categories``)
  with the image folder given separately.

Every box is checked: inside its image (one pixel of slack, then clipped), positive area, a known
class when the classes are fixed (evaluation); each failure is a :class:`DataError` naming the
file and the object.
"""

from __future__ import annotations

import dataclasses
import json
import os
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .images import read_image
from ..errors import DataError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif")
#: pixels a box may pass its image's edge by (annotation tools round) before it is an error
EDGE_SLACK = 1.0
SHAPES = ("circle", "square", "triangle")


@dataclasses.dataclass
class DetectionData:
    """Images with their boxes (``[xmin, ymin, xmax, ymax]`` pixels) and class indices."""

    images: list[np.ndarray]
    boxes: list[np.ndarray]
    labels: list[np.ndarray]
    class_names: list[str]
    files: list[str] = dataclasses.field(default_factory=list)
    source: str | None = None  # what the card records to reload it (a path or a built-in name)

    def __post_init__(self) -> None:
        if not self.files:
            self.files = [f"image {i}" for i in range(len(self.images))]
        self.boxes = [np.asarray(b, np.float32).reshape(-1, 4) for b in self.boxes]
        self.labels = [np.asarray(lab, np.int64).reshape(-1) for lab in self.labels]

    def __len__(self) -> int:
        return len(self.images)

    def subset(self, index: Sequence[int]) -> "DetectionData":
        return DetectionData([self.images[i] for i in index], [self.boxes[i] for i in index],
                             [self.labels[i] for i in index], list(self.class_names),
                             [self.files[i] for i in index], self.source)

    @property
    def n_boxes(self) -> int:
        return int(sum(len(b) for b in self.boxes))

    def relabelled(self, class_names: Sequence[str]) -> "DetectionData":
        """The same boxes with class indices into ``class_names`` (a model's classes); a class the
        model does not know is a DataError naming the file and the object."""
        class_names = list(class_names)
        if class_names == self.class_names:
            return self
        where = {name: i for i, name in enumerate(class_names)}
        labels = []
        for file, lab in zip(self.files, self.labels):
            for k, index in enumerate(lab):
                name = self.class_names[index]
                if name not in where:
                    raise DataError(f"{file}: object {k} is labelled {name!r}, a class this model does not know. "
                                    f"Expected one of {class_names}. Drop or rename that object, or retrain with it.")
            labels.append(np.array([where[self.class_names[i]] for i in lab], np.int64))
        return DetectionData(self.images, self.boxes, labels, class_names, self.files, self.source)


def split(data: DetectionData, test_size: float, seed: int = 0) -> tuple[DetectionData, DetectionData]:
    """(train, test): a random ``test_size`` share of the images held out."""
    if not 0 < test_size < 1:
        raise ValueError(f"test_size must be in (0, 1). Received {test_size!r}.")
    n = len(data)
    n_test = max(1, int(round(n * test_size)))
    if n - n_test < 1:
        raise DataError(f"Expected at least 2 images to split into train and test. Received {n}.")
    order = np.random.default_rng(seed).permutation(n)
    return data.subset(np.sort(order[n_test:])), data.subset(np.sort(order[:n_test]))


# ---------------------------------------------------------------------------- checks


def check_box(box: Sequence[float], width: int, height: int, file: str, what: str) -> np.ndarray:
    """One box ``[xmin, ymin, xmax, ymax]`` inside a ``width`` x ``height`` image, clipped to it."""
    xmin, ymin, xmax, ymax = (float(v) for v in box)
    if not np.all(np.isfinite([xmin, ymin, xmax, ymax])):
        raise DataError(f"{file}: {what} has a coordinate that is not a number: {list(box)}.")
    if xmax <= xmin or ymax <= ymin:
        raise DataError(f"{file}: {what} has no area: [xmin, ymin, xmax, ymax] = {[xmin, ymin, xmax, ymax]}. "
                        "Expected xmax > xmin and ymax > ymin. Fix or delete that object.")
    if xmin < -EDGE_SLACK or ymin < -EDGE_SLACK or xmax > width + EDGE_SLACK or ymax > height + EDGE_SLACK:
        raise DataError(f"{file}: {what} [xmin, ymin, xmax, ymax] = {[xmin, ymin, xmax, ymax]} lies outside its "
                        f"{width}x{height} image. Expected 0 <= x <= {width} and 0 <= y <= {height}. Fix the "
                        "annotation (was it made on a resized copy of the image?).")
    return np.array([max(xmin, 0), max(ymin, 0), min(xmax, width), min(ymax, height)], np.float32)


def _class_index(name: str, classes: list[str], fixed: bool, file: str, what: str) -> int:
    if name not in classes:
        if fixed:
            raise DataError(f"{file}: {what} is labelled {name!r}, a class this model does not know. Expected one "
                            f"of {classes}. Drop or rename that object, or retrain with it.")
        classes.append(name)
    return classes.index(name)


# ---------------------------------------------------------------------------- Pascal VOC


def _xml_files(root: Path) -> tuple[list[Path], Path]:
    annotations = root / "annotations"
    if not annotations.is_dir():
        annotations = root / "Annotations" if (root / "Annotations").is_dir() else root
    return sorted(annotations.glob("*.xml")), annotations


def _image_for(xml: Path, filename: str | None, root: Path) -> Path:
    folders = [root / "images", root / "JPEGImages", xml.parent, root]
    names = ([filename] if filename else []) + [xml.stem + s for s in IMAGE_SUFFIXES]
    for folder in folders:
        for name in names:
            if (folder / name).is_file():
                return folder / name
    raise DataError(f"{xml}: names the image {filename or xml.stem!r}, which is not in "
                    f"{[str(f) for f in folders if f.is_dir()]}. Put the image there or delete the XML file.")


def read_voc(folder: str | os.PathLike, class_names: Sequence[str] | None = None) -> DetectionData:
    """A Pascal VOC folder (``images/`` + ``annotations/*.xml``, or the flat layout). With
    ``class_names`` the classes are fixed (an unknown one is an error), else they are the names
    found, sorted."""
    root = Path(folder)
    if not root.is_dir():
        raise DataError(f"Boxes folder not found: {str(root)!r}. Expected a Pascal VOC folder (images/ + "
                        "annotations/*.xml) or a COCO .json file.")
    xmls, where = _xml_files(root)
    if not xmls:
        raise DataError(f"No Pascal VOC .xml files in {str(where)!r}. Expected annotations/*.xml (as LabelImg "
                        "writes them) or .xml files beside the images; for COCO pass the .json file.")
    classes, fixed = list(class_names or []), class_names is not None
    images, boxes, labels, files = [], [], [], []
    for xml in xmls:
        try:
            tree = ET.parse(xml).getroot()
        except ET.ParseError as exc:
            raise DataError(f"{xml} is not valid XML ({exc}). Expected a Pascal VOC annotation.") from exc
        path = _image_for(xml, (tree.findtext("filename") or "").strip() or None, root)
        image = read_image(path)
        height, width = image.shape[:2]
        b, lab = [], []
        for k, obj in enumerate(tree.findall("object")):
            name = (obj.findtext("name") or "").strip()
            what = f"object {k} ({name or 'no name'})"
            if not name:
                raise DataError(f"{xml}: {what} has no <name>. Expected the class of the box.")
            box = obj.find("bndbox")
            try:
                coords = [float(box.findtext(t)) for t in ("xmin", "ymin", "xmax", "ymax")]
            except (AttributeError, TypeError, ValueError) as exc:
                raise DataError(f"{xml}: {what} has no complete <bndbox> (xmin, ymin, xmax, ymax numbers).") from exc
            b.append(check_box(coords, width, height, str(xml), what))
            lab.append(_class_index(name, classes, fixed, str(xml), what))
        images.append(image if image.shape[2] == 3 else np.repeat(image, 3, axis=2))
        boxes.append(np.array(b, np.float32).reshape(-1, 4))
        labels.append(np.array(lab, np.int64))
        files.append(str(path))
    data = DetectionData(images, boxes, labels, classes, files, str(root))
    return data if fixed else data.relabelled(sorted(classes))


# ---------------------------------------------------------------------------- COCO


def read_coco(path: str | os.PathLike, images: str | os.PathLike | None = None,
              class_names: Sequence[str] | None = None) -> DetectionData:
    """A COCO JSON file (``bbox`` = ``[x, y, width, height]`` pixels); images in ``images`` (default:
    the JSON's folder). Annotations naming an unknown image or category are errors."""
    path = Path(path)
    try:
        coco = json.loads(path.read_text())
        entries, annotations, categories = coco["images"], coco.get("annotations", []), coco["categories"]
    except FileNotFoundError as exc:
        raise DataError(f"COCO file not found: {str(path)!r}.") from exc
    except (ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{path} is not a COCO detection file ({exc}). Expected a JSON object with 'images', "
                        "'annotations' and 'categories'.") from exc
    folder = Path(images) if images is not None else path.parent
    names = {c["id"]: str(c["name"]) for c in categories}
    classes, fixed = list(class_names or []), class_names is not None
    by_id: dict[Any, int] = {}
    out_images, files, sizes = [], [], []
    for entry in entries:
        if entry.get("id") in by_id:
            raise DataError(f"{path}: image id {entry.get('id')!r} appears twice. Expected unique image ids.")
        image = read_image(folder / entry["file_name"])
        by_id[entry["id"]] = len(out_images)
        out_images.append(image if image.shape[2] == 3 else np.repeat(image, 3, axis=2))
        files.append(str(folder / entry["file_name"]))
        sizes.append(image.shape[:2])
    boxes = [[] for _ in out_images]
    labels = [[] for _ in out_images]
    for ann in annotations:
        what = f"annotation {ann.get('id', '?')}"
        if ann.get("image_id") not in by_id:
            raise DataError(f"{path}: {what} names image_id {ann.get('image_id')!r}, which is not in 'images'. "
                            f"Expected one of {sorted(by_id)[:10]}. The ids do not match: fix the file.")
        if ann.get("category_id") not in names:
            raise DataError(f"{path}: {what} names category_id {ann.get('category_id')!r}, which is not in "
                            f"'categories' {sorted(names)}. The ids do not match: fix the file.")
        i = by_id[ann["image_id"]]
        x, y, w, h = (float(v) for v in ann["bbox"])
        height, width = sizes[i]
        name = names[ann["category_id"]]
        what = f"{what} ({name})"
        boxes[i].append(check_box([x, y, x + w, y + h], width, height, f"{path} [{files[i]}]", what))
        labels[i].append(_class_index(name, classes, fixed, f"{path} [{files[i]}]", what))
    data = DetectionData(out_images, boxes, labels, classes, files, str(path))
    return data if fixed else data.relabelled(sorted(classes))


# ---------------------------------------------------------------------------- any source


def load_boxes(source: Any, images: str | os.PathLike | None = None,
               class_names: Sequence[str] | None = None) -> DetectionData:
    """``source``: a DetectionData, a Pascal VOC folder, a COCO ``.json`` (with ``images``), or
    ``"shapes"`` / ``"shapes:N"`` (the generated set: 200 or N images, seed 0)."""
    if isinstance(source, DetectionData):
        return source.relabelled(class_names) if class_names is not None else source
    if isinstance(source, str) and (source == "shapes" or source.startswith("shapes:")):
        count = source.partition(":")[2]
        if count and not count.isdigit():
            raise DataError(f"Expected 'shapes' or 'shapes:N' (N images). Received {source!r}.")
        data = make_shapes(int(count) if count else 200)
        return data.relabelled(class_names) if class_names is not None else data
    if not isinstance(source, (str, os.PathLike)):
        raise DataError(f"Expected a Pascal VOC folder, a COCO .json file or 'shapes'. Received "
                        f"{type(source).__name__}.")
    path = Path(source)
    if path.suffix.lower() == ".json":
        return read_coco(path, images, class_names)
    return read_voc(path, class_names)


# ---------------------------------------------------------------------------- generated shapes


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """Photo-like clutter: smooth colour fields, soft blobs and grain."""
    import cv2

    coarse = rng.uniform(40, 215, (4, 4, 3)).astype(np.float32)
    image = cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC)
    for _ in range(rng.integers(3, 8)):  # out-of-focus blobs, like leaves or shadows
        centre = tuple(int(v) for v in rng.integers(0, size, 2))
        cv2.circle(image, centre, int(rng.integers(size // 12, size // 4)), rng.uniform(30, 220, 3).tolist(), -1)
    image = cv2.GaussianBlur(image, (0, 0), size / 20)
    image += rng.normal(0, 8, image.shape).astype(np.float32)
    return image


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    x1, y1 = np.maximum(a[0], b[:, 0]), np.maximum(a[1], b[:, 1])
    x2, y2 = np.minimum(a[2], b[:, 2]), np.minimum(a[3], b[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = lambda x: (x[..., 2] - x[..., 0]) * (x[..., 3] - x[..., 1])  # noqa: E731
    return inter / (area(a) + area(b) - inter)


def make_shapes(n: int = 200, size: int = 128, seed: int = 0, max_objects: int = 4,
                min_side: int = 18, max_side: int = 48) -> DetectionData:
    """Circles, squares and triangles (1 to ``max_objects`` an image, random colours, sides
    ``min_side``..``max_side`` pixels, never touching) on photo-like backgrounds, with exact
    boxes; about one image in twenty is a background image with none."""
    import cv2

    rng = np.random.default_rng(seed)
    images, boxes, labels = [], [], []
    for i in range(n):
        image = _background(rng, size)
        placed: list[np.ndarray] = []
        lab = []
        count = 0 if rng.uniform() < 0.05 else int(rng.integers(1, max_objects + 1))
        for _ in range(count * 10):
            if len(placed) == count:
                break
            side = int(rng.integers(min_side, max_side + 1))
            x0, y0 = (int(v) for v in rng.integers(0, size - side, 2))
            box = np.array([x0, y0, x0 + side, y0 + side], np.float32)
            if placed and np.max(_iou(box + [-2, -2, 2, 2], np.array(placed))) > 0:  # apart: every box exact
                continue
            kind = int(rng.integers(len(SHAPES)))
            colour = rng.uniform(0, 255, 3)
            colour = (colour if np.abs(colour - image[y0:y0 + side, x0:x0 + side].mean((0, 1))).max() > 60
                      else 255 - image[y0:y0 + side, x0:x0 + side].mean((0, 1))).tolist()
            if kind == 0:
                r = side // 2
                cv2.circle(image, (x0 + r, y0 + r), r, colour, -1)
                box = np.array([x0, y0, x0 + 2 * r + 1, y0 + 2 * r + 1], np.float32)
            elif kind == 1:
                cv2.rectangle(image, (x0, y0), (x0 + side - 1, y0 + side - 1), colour, -1)
            else:
                cv2.fillPoly(image, [np.array([[x0 + side // 2, y0], [x0, y0 + side - 1],
                                               [x0 + side - 1, y0 + side - 1]], np.int32)], colour)
            placed.append(np.minimum(box, size))
            lab.append(kind)
        images.append(np.clip(image, 0, 255).astype(np.uint8))
        boxes.append(np.array(placed, np.float32).reshape(-1, 4))
        labels.append(np.array(lab, np.int64))
    source = ("shapes" if n == 200 else f"shapes:{n}") if (seed, size, max_objects, min_side, max_side) == (
        0, 128, 4, 18, 48) else None  # what load_boxes remakes
    return DetectionData(images, boxes, labels, list(SHAPES), [f"shapes/{i}.png" for i in range(n)], source)
