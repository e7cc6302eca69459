"""The detection tab: handlers called directly on the shipped raccoon detector, and the launched app
through gradio_client."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import SHARED_DATA, write_image

gr = pytest.importorskip("gradio")

from apps import detection  # noqa: E402

RACCOON = SHARED_DATA / "raccoon"
needs_raccoons = pytest.mark.skipif(not RACCOON.is_dir(), reason="../shared/data/raccoon is not here")


@pytest.fixture(scope="module")
def service():
    if not (detection.DEFAULT_MODEL_DIR / "card.json").is_file():
        pytest.skip("saved_models/vision/raccoon_detector is not built (make models)")
    return detection.DetectionService()


@pytest.fixture(scope="module")
def raccoon_photo():
    """A held-out raccoon photo (the shipped model's test part) and its boxes."""
    if not RACCOON.is_dir():
        pytest.skip("../shared/data/raccoon is not here")
    from toolkit.detection import load_boxes, split

    _, test = split(load_boxes(str(RACCOON)), 0.25, 0)
    i = next(i for i, b in enumerate(test.boxes) if len(b) == 1)
    return test.files[i], test.boxes[i][0]


def test_import_is_light():
    import subprocess
    import sys

    code = "import sys, apps.detection; print('tensorflow' in sys.modules, 'keras' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False"]


def iou(a, b) -> float:
    from toolkit.detection.metrics import box_iou

    return float(box_iou(np.asarray(a)[None], np.asarray(b)[None])[0, 0])


def test_detect_with_every_backend_and_the_threshold_refilters(service, raccoon_photo):
    path, truth = raccoon_photo
    backends = service.backends()
    assert backends[0] == detection.KERAS and any(b.endswith(".tflite") for b in backends)
    for backend in backends:
        picture, table, state, menu, note = detection.detect_objects(service, path, None, backend, 0.3)
        assert picture.dtype == np.uint8 and picture.ndim == 3 and backend in note and " ms " in note
        assert table and table[0][1] == "raccoon" and iou(table[0][3:], truth) >= 0.5, table  # photo pixels
        assert [row[2] for row in table] == sorted((row[2] for row in table), reverse=True)
        assert menu["choices"][0].startswith("#0 raccoon")
    # The slider re-filters the stored answer: no model run, the same boxes above the threshold.
    everything = state["detections"]
    assert len(everything) >= len(table) and all(d["score"] >= 0.05 for d in everything)  # the NMS's floor
    _, rows, _ = detection.filter_detections(state, 0.0)
    assert len(rows) == len(everything)
    top = everything[0]["score"]
    _, rows, menu = detection.filter_detections(state, top)
    assert len(rows) == 1 and rows[0][2] == top and len(menu["choices"]) == 1
    _, rows, menu = detection.filter_detections(state, min(1.0, top + 0.01))
    assert rows == [] and menu["choices"] == [] and menu["value"] is None
    assert detection.filter_detections(None, 0.5)[1] == []  # nothing detected yet: empty outputs
    with pytest.raises(gr.Error, match="threshold"):
        detection.filter_detections(state, float("nan"))


def test_a_click_picks_the_box_under_it(service, raccoon_photo):
    path, truth = raccoon_photo
    _, table, state, _, _ = detection.detect_objects(service, path, None, detection.KERAS, 0.3)
    x1, y1, x2, y2 = table[0][3:]
    centre = [(x1 + x2) / 2 / state["scale"], (y1 + y2) / 2 / state["scale"]]  # in the shown picture's pixels
    assert detection.pick_box(state, 0.3, centre).startswith("#0 ")
    assert detection.pick_box(state, 0.3, [-5, -5]) is None and detection.pick_box(None, 0.3, centre) is None
    assert detection.box_number("#0 raccoon 0.93") == 0 and detection.box_number(2) == 2


def test_explain_a_box(service, raccoon_photo):
    path, _ = raccoon_photo
    image, note = detection.explain_detection(service, path, None, "model_int8.tflite", "#0 raccoon 0.9")
    assert image.dtype == np.uint8 and "D-RISE" in note and "model_int8.tflite" in note
    with pytest.raises(gr.Error, match="box to explain"):
        detection.explain_detection(service, path, None, detection.KERAS, "no box")
    with pytest.raises(gr.Error, match="detection number"):
        detection.explain_detection(service, path, None, detection.KERAS, "#99 raccoon")


def test_webcam_picture_and_huge_photo_are_shown_small(service):
    import skimage.data

    frame = skimage.data.chelsea()  # a webcam frame arrives as an array
    picture, table, state, _, note = detection.detect_objects(service, None, frame, detection.KERAS, 0.0)
    assert picture.shape == frame.shape and "Keras" in note
    big = np.repeat(np.repeat(frame, 4, 0), 4, 1)  # 1200 x 1804: shown at DISPLAY_SIDE, boxes in its pixels
    picture, big_table, state, _, _ = detection.detect_objects(service, None, big, detection.KERAS, 0.0)
    assert max(picture.shape[:2]) == detection.DISPLAY_SIDE and state["scale"] == pytest.approx(1804 / 800, rel=1e-3)
    for small, large in zip(table[:3], big_table[:3]):
        np.testing.assert_allclose(np.array(large[3:]), np.array(small[3:]) * 4, rtol=0.05, atol=12)


@pytest.mark.parametrize("content, message", [
    (b"this is not an image", "not a readable image"),
    (b"", "empty"),
    ("tiny", "too small"),
    ("huge", "too large"),
], ids=["not-an-image", "empty", "4x4", "huge"])
def test_bad_uploads_get_one_clear_message(service, tmp_path, content, message):
    bad = tmp_path / "photo.png"
    if content == "tiny":
        write_image(bad, np.zeros((4, 4, 3)))
    elif content == "huge":
        from PIL import Image

        Image.new("L", (8000, 6000)).save(bad)  # 48 megapixels, a small file
    else:
        bad.write_bytes(content)
    with pytest.raises(gr.Error, match=message):
        detection.detect_objects(service, str(bad), None, detection.KERAS, 0.3)


def test_no_photo_unknown_file_and_bad_threshold(service, tmp_path):
    with pytest.raises(gr.Error, match="No photo received"):
        detection.detect_objects(service, None, None, detection.KERAS, 0.3)
    photo = write_image(tmp_path / "grey.png", np.full((40, 50, 3), 128, np.uint8))
    with pytest.raises(gr.Error, match="Unknown model file"):
        detection.detect_objects(service, str(photo), None, "other.tflite", 0.3)
    with pytest.raises(gr.Error, match="threshold"):
        detection.detect_objects(service, str(photo), None, detection.KERAS, 7)
    with pytest.raises(gr.Error, match="webcam picture"):
        detection.detect_objects(service, None, np.zeros((4, 4)), detection.KERAS, 0.3)


def test_concurrent_requests_share_one_pass_and_keep_their_own_errors(service, raccoon_photo, tmp_path):
    path, _ = raccoon_photo
    bad = tmp_path / "notes.png"
    bad.write_text("not an image")
    batch = detection.detect_batch(service)
    pictures, tables, states, menus, notes = batch([path, str(bad), path], [None] * 3,
                                                   ["Keras", "Keras", "Keras"], [0.3, 0.3, 0.5])
    assert "one pass for 2 requests" in notes[0] and tables[0][0][1] == "raccoon"
    assert pictures[1] is None and notes[1].startswith("**Error:**") and "not a readable image" in notes[1]
    assert all(row[2] >= 0.5 for row in tables[2])
    with pytest.raises(gr.Error, match="not a readable image"):
        batch([str(bad)], [None], ["Keras"], [0.3])


def test_facts_and_a_missing_model(tmp_path):
    missing = detection.DetectionService(tmp_path / "missing")
    assert "not available" in detection.model_facts(missing)
    with pytest.raises(gr.Error, match="not available"):
        detection.detect_objects(missing, None, np.zeros((8, 8, 3), np.uint8), detection.KERAS, 0.3)
    if (detection.DEFAULT_MODEL_DIR / "card.json").is_file():
        facts = detection.model_facts(detection.DetectionService())
        assert "mAP@0.5" in facts and "model_int8.tflite" in facts


@needs_raccoons
def test_launched_app_through_gradio_client(service, raccoon_photo, tmp_path):
    from gradio_client import Client, handle_file

    from apps.main import serve_in_background

    path, truth = raccoon_photo
    app = serve_in_background()
    try:
        client = Client(app.local_url, verbose=False, ssl_verify=False)
        answer = client.predict(handle_file(path), None, "model_int8.tflite", 0.3, api_name="/detect_objects")
        table, note = answer[1], answer[-1]  # picture, table, box menu, note (the stored answer is not in the API)
        rows = table["data"] if isinstance(table, dict) else table
        assert rows[0][1] == "raccoon" and iou([float(v) for v in rows[0][3:]], truth) >= 0.5 and "ms" in note
        bad = tmp_path / "notes.png"
        bad.write_text("not an image")
        with pytest.raises(Exception, match="not a readable image"):
            client.predict(handle_file(str(bad)), None, "Keras", 0.3, api_name="/detect_objects")
        overlay, why = client.predict(handle_file(path), None, "model_int8.tflite", "#0", api_name="/explain_detection")
        assert "D-RISE" in why
    finally:
        app.close()
