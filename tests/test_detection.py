"""Object detection: boxes data (VOC, COCO, generated), augmentation, mAP, and the detector's
train -> predict -> evaluate -> save/load -> export (builtin ops only) -> explain round trip."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from conftest import SHARED_DATA, run, write_image

from toolkit.detection import (DetectionData, ObjectDetector, augment, load_boxes, make_shapes,
                               mean_average_precision, read_coco, read_voc, split)
from toolkit.detection.metrics import average_precision
from toolkit.errors import DataError

VOC = """<annotation><folder>images</folder><filename>{file}</filename>
<size><width>{w}</width><height>{h}</height><depth>3</depth></size>{objects}</annotation>"""
OBJECT = "<object><name>{name}</name><bndbox><xmin>{0}</xmin><ymin>{1}</ymin><xmax>{2}</xmax><ymax>{3}</ymax></bndbox></object>"


def write_voc(root, items, flat=False):
    """items: (file name, image array, [(name, box), ...]) -> a LabelImg-style folder."""
    images = root if flat else root / "images"
    annotations = root if flat else root / "annotations"
    images.mkdir(parents=True, exist_ok=True)
    annotations.mkdir(parents=True, exist_ok=True)
    for file, image, objects in items:
        write_image(images / file, image)
        body = "".join(OBJECT.format(*box, name=name) for name, box in objects)
        (annotations / (file.rsplit(".", 1)[0] + ".xml")).write_text(
            VOC.format(file=file, w=image.shape[1], h=image.shape[0], objects=body))
    return root


def shapes_voc(root, data: DetectionData, flat=False):
    items = [(f"img{i}.png", image, [(data.class_names[c], [int(round(v)) for v in box]) for box, c in zip(b, lab)])
             for i, (image, b, lab) in enumerate(zip(data.images, data.boxes, data.labels))]
    return write_voc(root, items, flat)


@pytest.fixture(scope="module")
def shapes():
    return make_shapes(64, size=96, seed=1)


# ---------------------------------------------------------------------------- data


def test_generated_shapes_have_exact_boxes(shapes):
    assert len(shapes) == 64 and shapes.class_names == ["circle", "square", "triangle"]
    assert shapes.n_boxes > 64 and any(len(b) == 0 for b in make_shapes(60, seed=0).boxes)  # background images too
    for image, boxes, labels in zip(shapes.images, shapes.boxes, shapes.labels):
        assert image.shape == (96, 96, 3) and image.dtype == np.uint8
        assert np.all(boxes[:, 2] > boxes[:, 0]) and np.all(boxes <= 96) and np.all(boxes >= 0)
        for box, label in zip(boxes, labels):
            if label == 1:  # a filled square fills its box exactly: one colour, and the pixels around it are not
                x1, y1, x2, y2 = box.astype(int)
                patch = image[y1:y2, x1:x2].reshape(-1, 3)
                _, counts = np.unique(patch, axis=0, return_counts=True)
                assert counts.max() == len(patch)
                ring = image[max(y1 - 1, 0):y2 + 1, max(x1 - 1, 0):x2 + 1].reshape(-1, 3)  # one pixel more: not all
                assert np.unique(ring, axis=0, return_counts=True)[1].max() < len(ring) * 0.97


def test_voc_folders_both_layouts(tmp_path, shapes):
    part = shapes.subset(range(6))
    for flat in (False, True):
        data = read_voc(shapes_voc(tmp_path / str(flat), part, flat))
        assert len(data) == 6 and data.class_names == sorted({part.class_names[c] for c in np.concatenate(part.labels)})
        for ours, theirs, lab, lab0 in zip(data.boxes, part.boxes, data.labels, part.labels):
            np.testing.assert_allclose(ours, np.round(theirs), atol=0.5)
            assert [data.class_names[c] for c in lab] == [part.class_names[c] for c in lab0]


def test_background_image_is_allowed(tmp_path):
    image = np.full((40, 50, 3), 90, np.uint8)
    data = read_voc(write_voc(tmp_path, [("a.jpg", image, [("cat", [1, 2, 30, 20])]), ("b.jpg", image, [])]))
    assert [len(b) for b in data.boxes] == [1, 0] and data.class_names == ["cat"]


@pytest.mark.parametrize("box, message", [
    ([10, 5, 60, 20], r"a\.xml: object 0 \(cat\).*outside its 50x40 image"),
    ([10, 5, 10, 20], r"a\.xml: object 0 \(cat\) has no area"),
    ([30, 5, 10, 20], r"a\.xml: object 0 \(cat\) has no area"),
    ([-5, 5, 10, 20], r"outside"),
])
def test_bad_boxes_name_the_file_and_the_object(tmp_path, box, message):
    write_voc(tmp_path, [("a.jpg", np.zeros((40, 50, 3), np.uint8), [("cat", box)])])
    with pytest.raises(DataError, match=message):
        read_voc(tmp_path)


def test_xml_naming_a_missing_image(tmp_path):
    write_voc(tmp_path, [("a.jpg", np.zeros((40, 50, 3), np.uint8), [("cat", [1, 1, 9, 9])])])
    (tmp_path / "images" / "a.jpg").unlink()
    with pytest.raises(DataError, match=r"a\.xml: names the image 'a\.jpg', which is not in"):
        read_voc(tmp_path)
    with pytest.raises(DataError, match="No Pascal VOC"):
        read_voc(tmp_path / "images")


def test_unknown_class_at_evaluation(tmp_path):
    write_voc(tmp_path, [("a.jpg", np.zeros((40, 50, 3), np.uint8), [("cat", [1, 1, 9, 9]), ("dog", [2, 2, 8, 8])])])
    with pytest.raises(DataError, match=r"object 1 \(dog\) is labelled 'dog', a class this model does not know"):
        read_voc(tmp_path, class_names=["cat"])
    assert read_voc(tmp_path, class_names=["dog", "cat"]).labels[0].tolist() == [1, 0]


def _coco(tmp_path, annotations, images=None):
    write_image(tmp_path / "p.png", np.zeros((30, 40, 3), np.uint8))
    path = tmp_path / "boxes.json"
    path.write_text(json.dumps({"images": images or [{"id": 7, "file_name": "p.png", "width": 40, "height": 30}],
                                "annotations": annotations,
                                "categories": [{"id": 1, "name": "raccoon"}, {"id": 2, "name": "cat"}]}))
    return path


def test_coco_file(tmp_path):
    data = read_coco(_coco(tmp_path, [{"id": 1, "image_id": 7, "category_id": 2, "bbox": [5, 6, 10, 12]},
                                      {"id": 2, "image_id": 7, "category_id": 1, "bbox": [1, 1, 20, 20]}]))
    assert data.class_names == ["cat", "raccoon"]
    np.testing.assert_allclose(data.boxes[0], [[5, 6, 15, 18], [1, 1, 21, 21]])
    assert data.labels[0].tolist() == [0, 1]
    assert len(load_boxes(str(tmp_path / "boxes.json"))) == 1


@pytest.mark.parametrize("annotation, images, message", [
    ({"id": 3, "image_id": 8, "category_id": 1, "bbox": [1, 1, 5, 5]}, None, r"annotation 3 names image_id 8"),
    ({"id": 4, "image_id": 7, "category_id": 9, "bbox": [1, 1, 5, 5]}, None, r"annotation 4 names category_id 9"),
    ({"id": 5, "image_id": 7, "category_id": 1, "bbox": [30, 1, 20, 5]}, None, r"annotation 5 \(raccoon\).*outside"),
    ({"id": 6, "image_id": 7, "category_id": 1, "bbox": [1, 1, 0, 5]}, None, r"annotation 6 \(raccoon\) has no area"),
    ({"id": 1, "image_id": 7, "category_id": 1, "bbox": [1, 1, 5, 5]},
     [{"id": 7, "file_name": "p.png"}, {"id": 7, "file_name": "p.png"}], r"image id 7 appears twice"),
])
def test_coco_mismatched_ids_and_bad_boxes(tmp_path, annotation, images, message):
    with pytest.raises(DataError, match=message):
        read_coco(_coco(tmp_path, [annotation], images))


def test_augmentation_moves_boxes_with_pixels():
    image = np.zeros((80, 120, 3), np.uint8)
    image[10:30, 20:50] = 255
    boxes, labels = np.array([[20, 10, 50, 30]], np.float32), np.array([0])
    rng = np.random.default_rng(0)
    moved = 0
    for _ in range(30):
        out, b, lab = augment(image, boxes, labels, rng)
        for x1, y1, x2, y2 in b.astype(int):
            inside = out[y1 + 1:y2 - 1, x1 + 1:x2 - 1].astype(float).mean()
            ring = out.astype(float).sum() - out[y1:y2, x1:x2].astype(float).sum()
            assert inside > out.astype(float).mean() and ring / max(out.size, 1) < inside
            moved += not np.allclose(b, boxes)
    assert moved > 5


# ---------------------------------------------------------------------------- mAP


def test_average_precision_against_a_hand_computed_case():
    # 3 truths; detections by score: hit, miss, hit, miss. Precision at recall 1/3 is 1, at 2/3 is 2/3,
    # recall 1 is never reached: COCO's 101 points give (34 * 1 + 33 * 2/3 + 34 * 0) / 101.
    ap = average_precision(np.array([0.9, 0.8, 0.7, 0.6]), np.array([True, False, True, False]), 3)
    assert ap == pytest.approx((34 * 1 + 33 * 2 / 3) / 101)
    truth = [np.array([[0, 0, 10, 10]]), np.array([[0, 0, 10, 10], [20, 20, 30, 30]])]
    labels = [np.array([0]), np.array([0, 1])]
    perfect = mean_average_precision(truth, labels, truth, labels, [np.ones(1), np.ones(2)], ["a", "b"])
    assert perfect["map_50"] == 1.0 and perfect["map_50_95"] == 1.0
    shifted = [np.array([[2, 0, 12, 10]]), np.array([[0, 0, 10, 10], [40, 40, 50, 50]])]  # IoU 0.667; one miss
    scores = [np.array([0.9]), np.array([0.8, 0.7])]
    result = mean_average_precision(truth, labels, shifted, labels, scores, ["a", "b"])
    assert result["ap_50_per_class"] == {"a": 1.0, "b": 0.0} and result["map_50"] == 0.5
    # class a at 0.5:0.95: the shifted box (first by score) hits at IoU thresholds 0.5-0.65 (AP 1 at 4 of 10);
    # at the other 6 it misses, then the exact box hits: precision 1/2 up to recall 1/2, so 51 of the 101
    # recall points read 0.5 -> AP 51 * 0.5 / 101
    assert result["ap_50_95_per_class"]["a"] == pytest.approx((4 + 6 * 51 * 0.5 / 101) / 10, abs=1e-4)
    assert result["map_50_95"] == pytest.approx(((4 + 6 * 51 * 0.5 / 101) / 10 + 0) / 2, abs=1e-4)


# ---------------------------------------------------------------------------- the task


@pytest.fixture(scope="module")
def trained(shapes, tmp_path_factory):
    train, test = split(shapes, 0.25, 0)
    task = ObjectDetector(image_size=96, epochs=25, augment_passes=1, width=48)
    task.fit(train)
    directory = task.save(tmp_path_factory.mktemp("det") / "model")
    return task, test, directory


def test_fit_predict_evaluate(trained):
    task, test, _ = trained
    metrics = task.evaluate(test)
    assert metrics["map_50"] > metrics["baseline_whole_image_map_50"] + 0.2, metrics
    one = task.predict(test.images[0])
    assert set(one) == {"detections"} and all(set(d) == {"label", "score", "box"} for d in one["detections"])
    scores = [d["score"] for d in one["detections"]]
    assert scores == sorted(scores, reverse=True) and all(s >= task.config.min_score for s in scores)
    batch = task.predict(np.stack(test.images[:3]))
    assert len(batch) == 3 and batch[0] == one
    big = np.repeat(np.repeat(test.images[0], 2, 0), 3, 1)  # boxes come back in the input's pixels
    for small, large in zip(one["detections"], task.predict(big)["detections"]):
        np.testing.assert_allclose(large["box"], np.array(small["box"]) * [3, 2, 3, 2], atol=3)


def test_save_load_export_without_flex(trained):
    task, test, directory = trained
    loaded = ObjectDetector.load(directory)
    assert loaded.predict(test.images[:4]) == task.predict(test.images[:4])
    card = json.loads((directory / "card.json").read_text())
    assert card["backbone"]["stored"] is True and (directory / "model.keras").stat().st_size < 2_000_000
    keras_map = loaded.scores(test)["map_50"]
    for quantization, tolerance in (("float32", 0.005), ("int8", 0.1)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            path = loaded.export(quantization=quantization, data=test)
        entry = next(e for e in json.loads((directory / "card.json").read_text())["tflite"] if e["file"] == path.name)
        assert "NON_MAX_SUPPRESSION_V4" in entry["ops"] and not [o for o in entry["ops"] if "Flex" in o or o == "CUSTOM"]
        assert entry["metadata"] and abs(entry["test_map_50"] - keras_map) <= tolerance, entry
        lite = ObjectDetector.open_tflite(path)
        result = lite.predict(test.images[0])
        assert set(result) == {"detections"}
        check_detection_metadata(path, lite, task.class_names_, task.config.max_detections)
        # what the TFLite Task Library's ObjectDetector takes: uint8 raw pixels (int8 file) or float32
        # in, four float32 outputs; the int8 graph between them stays integer
        pixels = "uint8" if quantization == "int8" else "float32"
        assert entry["dtypes"] == {"input": pixels, "boxes": "float32", "classes": "float32", "scores": "float32",
                                   "count": "float32"} and entry["task_library_object_detector"] is True
        assert lite.phone_api_problems() == [] and lite.dtypes == entry["dtypes"]
        assert entry["input"]["dtype"] == pixels and entry["output"]["dtype"] == "float32"
        if quantization == "int8":
            assert entry["input"]["zero_point"] == 0 and entry["input"]["scale"] == pytest.approx(1.0, abs=1e-3)
            assert {"CONV_2D", "DEPTHWISE_CONV_2D", "QUANTIZE", "DEQUANTIZE"} <= set(entry["ops"])
            convs = [d for d in lite.session.interpreter._get_ops_details() if d["op_name"] == "CONV_2D"]
            tensors = {t["index"]: t for t in lite.session.interpreter.get_tensor_details()}
            assert convs and all(np.dtype(tensors[d["inputs"][0]]["dtype"]) == np.int8 for d in convs)
        from toolkit.edge.metadata import read_metadata

        image = read_metadata(path)["inputs"][0]
        assert f"; {pixels} 0-255" in image["description"] and image["normalization"] == {"mean": [0.0], "std": [1.0]}
    assert (directory / "labels.txt").read_text().split() == task.class_names_


def test_phone_api_problems_name_what_the_task_library_refuses(trained, tmp_path):
    """A file with int8 input and outputs and no metadata (the converter's full-integer defaults) is
    refused, each reason named; full_pixel_range pins the calibration so uint8 reads raw pixels.
    The file is the task's own decoding and NMS (its export graph) on a stand-in for the backbone and
    head: what is checked is the file's input, outputs and metadata, and converting EfficientNet-Lite
    costs 20 CPU-s (the real detector's int8 file is converted and checked by the test above)."""
    import keras

    from toolkit.detection import model as net
    from toolkit.detection.detector import full_pixel_range
    from toolkit.detection.runner import TFLiteDetector
    from toolkit.edge.export import write_tflite

    task, test, _ = trained
    plan = task._export_plan(test, "int8")
    assert plan.representative.min() == 0 and plan.representative.max() == 255 and plan.int8_io == ("uint8", "float32")
    cfg, n = task.config, len(task.class_names_)
    pixels = keras.Input(task.model_.input_shape[1:])
    grid = keras.layers.AveragePooling2D(net.STRIDE)(pixels)  # the head's (G, G) maps, as the detector's
    stand_in = keras.Model(pixels, [keras.layers.Conv2D(n, 1)(grid), keras.layers.Conv2D(4, 1)(grid)])
    exported = net.export_model(stand_in, n, cfg.max_detections, cfg.iou_threshold, cfg.score_threshold)
    assert [tuple(o.shape) for o in exported.outputs] == [tuple(o.shape) for o in plan.model.outputs]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # int8 in and out; a few calibration images do (the file's types and metadata are checked, not its scales)
        write_tflite(exported, tmp_path / "plain.tflite", "int8", plan.representative[:8])
    problems = TFLiteDetector(tmp_path / "plain.tflite", card=task._export_card()).phone_api_problems()
    assert "the input is int8, expected uint8 or float32" in problems and "the file has no TFLite metadata" in problems
    assert {p for p in problems if p.endswith("output is int8, expected float32")} == {
        f"the {w} output is int8, expected float32" for w in ("boxes", "classes", "scores", "count")}
    grey = np.full((2, 8, 8, 3), 100.0, np.float32)
    pinned = full_pixel_range(grey)
    assert pinned.min() == 0 and pinned.max() == 255 and (pinned[1] == 100).all() and (grey == 100).all()
    assert np.count_nonzero(pinned != grey) == 6  # one black and one white pixel, three channels each


def check_detection_metadata(path, lite, class_names, k):
    """The file's metadata, read back, describes the four outputs in the file's own order, as phone
    detection APIs read them, and carries the labels."""
    from toolkit.detection.runner import output_order
    from toolkit.edge.metadata import DETECTION_OUTPUTS, TENSOR_VALUE_LABELS, read_metadata

    meta = read_metadata(path)
    assert meta["name"] == "ObjectDetector" and meta["labels"] == class_names and "labels.txt" in meta["files"]
    assert meta["inputs"][0]["content"]["size"] == [lite.image_size] * 2
    outputs = {o["name"]: (o, d) for o, d in zip(meta["outputs"], lite.session.outputs)}
    expected = [""] * 4
    for name, position in zip(DETECTION_OUTPUTS, output_order([d["name"] for d in lite.session.outputs])):
        expected[position] = name
    assert list(outputs) == expected  # the metadata follows the file's output order
    location, detail = outputs["location"]
    assert list(detail["shape"]) == [1, k, 4] and location["content"]["bounding_box"] == {
        "index": [1, 0, 3, 2], "type": "BOUNDARIES", "coordinate_type": "RATIO"}
    assert location["content"]["range"] == [2, 2] and "[ymin, xmin, ymax, xmax]" in location["description"]
    category, detail = outputs["category"]
    assert list(detail["shape"]) == [1, k] and category["associated_files"][0]["type"] == TENSOR_VALUE_LABELS
    assert list(outputs["number of detections"][1]["shape"]) == [1]


def test_export_refuses_dynamic(trained):
    from toolkit.errors import ExportError

    with pytest.raises(ExportError, match="dynamic"):
        trained[0].export(quantization="dynamic")


def test_explain_one_box(trained, tmp_path):
    task, test, _ = trained
    index = next(i for i, r in enumerate(task.predict(test.images)) if r["detections"])
    explanation = task.explain(test.images[index], budget=64)
    assert explanation.method == "drise" and explanation.attributions.shape == test.images[index].shape[:2]
    assert explanation.image.dtype == np.uint8 and explanation.extra["saliency_in_box"] > explanation.extra[
        "box_area_share"]  # the box's own pixels matter more than their share of the image
    assert explanation.save(tmp_path / "why.png").stat().st_size > 0
    with pytest.raises(DataError, match="detection number"):
        task.explain(test.images[index], target=99, budget=8)


def test_cli_round_trip(tmp_path, capsys, shapes):
    folder = shapes_voc(tmp_path / "voc", shapes.subset(range(40)))
    out = tmp_path / "m"
    code, stdout, err = run(capsys, "train", "object_detector", "--data", folder, "--out", out, "--image-size", "64",
                            "--epochs", "2", "--augment-passes", "0", "--width", "16", "--test-size", "0.5")
    assert code == 0, err
    assert "test_map_50" in json.loads(stdout)["metrics"]
    image = folder / "images" / "img0.png"
    code, stdout, err = run(capsys, "predict", out, "--image", image)
    assert code == 0, err
    rows = json.loads(stdout)
    assert rows[0]["image"] == str(image) and isinstance(rows[0]["detections"], list)
    code, stdout, err = run(capsys, "evaluate", out, "--data", folder)
    assert code == 0 and {"map_50", "map_50_95", "ap_50_per_class"} <= set(json.loads(stdout)), err
    bad = write_voc(tmp_path / "bad", [("z.png", shapes.images[0], [("hexagon", [1, 1, 20, 20])])])
    code, stdout, err = run(capsys, "evaluate", out, "--data", bad)
    assert code != 0 and "hexagon" in err and "Traceback" not in err


@pytest.mark.skipif(not (SHARED_DATA / "raccoon").is_dir(), reason="../shared/data/raccoon is not here")
def test_raccoon_folder_reads():
    data = read_voc(SHARED_DATA / "raccoon")
    assert len(data) == 160 and data.class_names == ["raccoon"] and data.n_boxes >= 160


def test_shipped_raccoon_detector():
    from conftest import REPO

    directory = REPO / "saved_models" / "vision" / "raccoon_detector"
    if not (directory / "card.json").is_file():
        pytest.skip("saved_models/vision/raccoon_detector is not built (make models)")
    card = json.loads((directory / "card.json").read_text())
    for path in directory.iterdir():
        assert path.stat().st_size < 5_000_000, path
    assert card["backbone"]["stored"] is True and card["labels"] == ["raccoon"]
    task = ObjectDetector.load(directory)
    int8 = [e for e in card["tflite"] if e["quantization"] == "int8"]
    assert int8 and "NON_MAX_SUPPRESSION_V4" in int8[0]["ops"] and int8[0]["task_library_object_detector"]
    assert int8[0]["dtypes"]["input"] == "uint8" and set(int8[0]["dtypes"].values()) == {"uint8", "float32"}
    assert ObjectDetector.open_tflite(directory / int8[0]["file"]).phone_api_problems() == []
    if (SHARED_DATA / "raccoon").is_dir():
        test = task.reload_data()
        assert len(test) == 40 and task.scores(test)["map_50"] == pytest.approx(card["metrics"]["test_map_50"], abs=1e-6)
        lite = ObjectDetector.open_tflite(directory / int8[0]["file"])
        assert lite.predict(test.images[0])["detections"][0]["label"] == "raccoon"


def test_first_head_weights_depend_on_the_seed_only(shapes):
    """A process that already read the ImageNet backbone (remembered, no random numbers drawn)
    trains the same detector as a fresh one."""
    from toolkit.transfer import efficientnet_lite

    few = shapes.subset(range(32))  # two shuffled batches: the seed decides the head's start and the order

    def head_weights():
        task = ObjectDetector(image_size=64, epochs=1, augment_passes=0, width=8, seed=3)
        return task.fit(few, verbose=0).head_.get_weights()

    efficientnet_lite._imagenet_backbone_weights.cache_clear()
    fresh = head_weights()
    again = head_weights()  # the backbone's weights are remembered now
    assert all(np.array_equal(a, b) for a, b in zip(fresh, again))
