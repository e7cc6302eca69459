"""The Gradio demo: handlers called directly, and the launched app through gradio_client."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO, write_image

gr = pytest.importorskip("gradio")

from apps import vision  # noqa: E402


@pytest.fixture(scope="module")
def service(shipped_digits):
    return vision.VisionService(shipped_digits)


def test_import_is_light():
    code = "import sys, apps.main, apps.vision, toolkit; print('tensorflow' in sys.modules, 'gradio' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_classify_upload_with_every_backend(service, digits_png):
    paths, labels = digits_png
    variants = ["float32", "float16", "dynamic", "int8", "qat_int8", "pruned_int8", "clustered_int8",
                "pruned_clustered_qat_int8"]  # the compression report's, in its order
    assert service.backends() == ["Keras", *(f"model_{name}.tflite" for name in variants)]
    for backend in service.backends():
        hits = 0
        for path, label in zip(paths, labels):
            top, seen, latency = vision.classify_image(service, str(path), None, backend)
            assert len(top) == 5 and abs(sum(top.values()) - 1) < 0.05
            hits += max(top, key=top.get) == label
            assert seen.dtype == np.uint8 and backend in latency and "ms" in latency
        assert hits >= 4, backend


def test_a_drawn_digit_is_recognised(service):
    # Black strokes on a transparent canvas, as the sketchpad sends them: a "1".
    canvas = np.zeros((280, 280, 4), np.uint8)
    canvas[40:240, 125:155] = (0, 0, 0, 255)
    top, seen, _ = vision.classify_image(service, None, {"composite": canvas, "background": None, "layers": []})
    assert max(top, key=top.get) == "1"
    assert seen.shape[0] >= 64  # the 8x8 model view, scaled up for display


@pytest.mark.parametrize(
    "content, message",
    [
        (b"this is not an image", "not a readable image"),
        (b"", "empty"),
        ("tiny", "too small"),
        ("huge", "too large"),
    ],
    ids=["not-an-image", "empty", "1x1", "huge"],
)
def test_bad_uploads_get_a_clear_message(service, tmp_path, content, message):
    path = tmp_path / "upload.png"
    if content == "tiny":
        write_image(path, np.zeros((1, 1, 3)))
    elif content == "huge":
        from PIL import Image

        Image.new("L", (8000, 6000)).save(path)  # 48 megapixels, a small file
    else:
        path.write_bytes(content)
    with pytest.raises(gr.Error, match=message):
        vision.classify_image(service, str(path), None, "Keras")


def test_rgba_upload_and_no_input(service, tmp_path):
    rgba = np.zeros((32, 32, 4), np.uint8)
    rgba[4:28, 14:18] = (0, 0, 0, 255)
    top, _, _ = vision.classify_image(service, str(write_image(tmp_path / "one.png", rgba)), None, "Keras")
    assert max(top, key=top.get) == "1"
    with pytest.raises(gr.Error, match="No image received"):
        vision.classify_image(service, None, None, "Keras")
    empty_canvas = {"composite": np.zeros((50, 50, 4), np.uint8), "background": None, "layers": []}
    with pytest.raises(gr.Error, match="No image received"):
        vision.classify_image(service, None, empty_canvas, "Keras")


@pytest.mark.parametrize("method", ["gradcam", "shap", "lime"])
def test_explain_handler(service, digits_png, method):
    image, note = vision.explain_image(service, str(digits_png[0][0]), None, method, "Keras")
    assert image.dtype == np.uint8 and image.shape[-1] == 3 and method in note


def test_lime_on_a_tflite_file_and_facts(service, digits_png):
    image, note = vision.explain_image(service, str(digits_png[0][0]), None, "lime", "model_int8.tflite")
    assert "model_int8.tflite" in note
    facts = vision.model_facts(service)
    assert "Keras test accuracy" in facts and "model_int8.tflite" in facts
    assert vision.download_file(service, "model_int8.tflite").endswith("model_int8.tflite")
    assert "not available" in vision.model_facts(vision.VisionService(REPO / "no_such_model"))


def test_compression_report_in_the_tab(service, digits_png, tmp_path):
    report = vision.compression_facts(service)
    for name in ("model_qat_int8.tflite", "model_pruned_int8.tflite", "model_clustered_int8.tflite",
                 "model_pruned_clustered_qat_int8.tflite"):
        assert f"`{name}`" in report and name in service.backends()
        assert vision.download_file(service, name).endswith(name)
    assert "gzipped vs float32" in report
    top, _, latency = vision.classify_image(service, str(digits_png[0][0]), None, "model_clustered_int8.tflite")
    assert max(top, key=top.get) == digits_png[1][0] and "model_clustered_int8.tflite" in latency
    from toolkit import load

    bare = load(service.model_dir).save(tmp_path / "bare")  # no exports: the tab says how to make the report
    assert "toolkit compress" in vision.compression_facts(vision.VisionService(bare))
    assert "not available" in vision.compression_facts(vision.VisionService(tmp_path / "missing"))


def test_launched_app_through_gradio_client(shipped_digits, digits_png, tmp_path):
    from gradio_client import Client, handle_file

    from apps.main import serve_in_background

    app = serve_in_background(shipped_digits)
    try:
        client = Client(app.local_url, verbose=False, ssl_verify=False)
        paths, labels = digits_png
        top, seen, latency = client.predict(handle_file(str(paths[0])), None, "model_int8.tflite",
                                            api_name="/classify_image")
        assert top["label"] == labels[0] and "ms" in latency
        bad = tmp_path / "notes.png"
        bad.write_text("not an image")
        with pytest.raises(Exception, match="not a readable image"):
            client.predict(handle_file(str(bad)), None, "Keras", api_name="/classify_image")
        # ...and the server keeps serving.
        top, _, _ = client.predict(handle_file(str(paths[1])), None, "Keras", api_name="/classify_image")
        assert top["label"] == labels[1]
        top, _, latency = client.predict(handle_file(str(paths[1])), None, "model_pruned_int8.tflite",
                                         api_name="/classify_image")
        assert top["label"] == labels[1] and "model_pruned_int8.tflite" in latency
    finally:
        app.close()


def test_each_tab_is_rendered_once(shipped_digits):
    from apps.main import build_app

    ids = []

    def walk(node):
        ids.append(node["id"])
        for child in node.get("children", []):
            walk(child)

    walk(build_app(shipped_digits).config["layout"])
    assert len(ids) == len(set(ids)), "a component appears twice in the page"


def test_every_input_change_that_clears_an_explanation_cancels_the_one_on_its_way(shipped_digits):
    """An explanation takes seconds: a new photo, text, recording, series, model or method clears the
    old one, and must also cancel one still running, or it lands next to the new input
    (tests/test_browser.py holds one to show it)."""
    from apps.main import build_app

    dependencies = build_app(shipped_digits).config["dependencies"]
    explanations = {dep["id"]: set(dep["outputs"]) for dep in dependencies
                    if str(dep["api_name"]).startswith("explain")}
    assert len(explanations) >= 5, explanations  # vision, detection, text, speech, time series
    cancelled_by = {}  # Gradio gives an event's cancels a dependency of their own, on the same trigger
    for dep in dependencies:
        for target in dep["targets"]:
            cancelled_by.setdefault(tuple(target), set()).update(dep["cancels"])
    input_events = {"change", "input", "upload", "clear", "stop_recording"}
    for explanation, outputs in explanations.items():
        clearing = [tuple(target) for dep in dependencies if outputs <= set(dep["outputs"])
                    for target in dep["targets"] if target[1] in input_events]
        assert clearing, f"nothing clears explanation {explanation}"
        for target in clearing:
            assert explanation in cancelled_by[target], f"{target} clears explanation {explanation}, not cancels it"


def test_the_tab_offers_the_shipped_models_photos_first(tmp_path):
    import gradio as gr
    import skimage.data
    from PIL import Image

    services = vision.tab_services()
    names = list(services)
    assert names[0].startswith("ImageNet") and any(name.startswith("Digits") for name in names)
    photo = tmp_path / "cat.jpg"
    Image.fromarray(skimage.data.chelsea()).save(photo)
    classify = vision.by_model(vision.classify_image, services, "classify_image")
    top, _, note = classify(str(photo), None, "model_int8.tflite", None)  # no model given: the first one
    assert max(top, key=top.get) in ("Egyptian Mau", "tabby cat", "tiger cat") and "ms" in note
    with pytest.raises(gr.Error, match="Unknown model"):
        classify(str(photo), None, "Keras", "no such model")


def test_concurrent_requests_share_one_pass_and_keep_their_own_errors(shipped_digits, digits_png, tmp_path):
    """The Classify event is batched (Gradio's batch=True): requests that arrive together are
    answered by one model pass, and a bad request in the batch gets its own message without
    failing the others; a lone bad request is a gr.Error."""
    paths, labels = digits_png
    services = vision.tab_services(shipped_digits)
    name = next(iter(services))
    bad = tmp_path / "notes.png"
    bad.write_text("not an image")
    batch = vision.classify_batch(services)
    uploads = [str(paths[0]), str(bad), str(paths[1]), str(paths[2])]
    tops, seens, notes = batch(uploads, [None] * 4, ["Keras", "Keras", "Keras", "model_int8.tflite"], [name] * 4)
    assert [max(t, key=t.get) for t in (tops[0], tops[2], tops[3])] == [labels[0], labels[1], labels[2]]
    assert "one pass for 2 requests" in notes[0] and "model_int8.tflite" in notes[3]
    assert tops[1] is None and seens[1] is None and notes[1].startswith("**Error:**")
    assert "not a readable image" in notes[1]
    with pytest.raises(gr.Error, match="not a readable image"):
        batch([str(bad)], [None], ["Keras"], [name])


def test_the_classify_event_reads_its_inputs_as_gradio_passes_them_unprocessed(shipped_digits, digits_png, tmp_path):
    """The Classify event has preprocess=False (no thread hop per input and request): the upload
    arrives as Gradio's file dict and the drawing as the Sketchpad's value, which the Sketchpad's
    own preprocess reads on the decoding threads; a drawing that cannot be read gets its own message."""
    from PIL import Image

    paths, labels = digits_png
    services = vision.tab_services(shipped_digits)
    name = next(iter(services))
    canvas = np.zeros((280, 280, 4), np.uint8)  # a "1" as the browser's sketchpad sends it
    canvas[40:240, 125:155] = (0, 0, 0, 255)
    Image.fromarray(canvas).save(tmp_path / "composite.png")
    drawing = {"background": None, "layers": [],
               "composite": {"path": str(tmp_path / "composite.png"), "meta": {"_type": "gradio.FileData"}}}
    upload = {"path": str(paths[0]), "meta": {"_type": "gradio.FileData"}}
    pad = gr.Sketchpad(type="numpy", image_mode="RGBA", canvas_size=(280, 280))
    batch = vision.classify_batch(services, pad)
    tops, _, notes = batch([upload, None, None], [None, drawing, {"layers": "not a list"}], ["Keras"] * 3, [name] * 3)
    assert max(tops[0], key=tops[0].get) == labels[0] and max(tops[1], key=tops[1].get) == "1"
    assert tops[2] is None and "drawing could not be read" in notes[2]


def test_the_classify_event_sends_its_outputs_as_its_components_postprocess_them(shipped_digits, digits_png, tmp_path):
    """The Classify event has postprocess=False: its handler runs each output component's own
    postprocess (no thread hop per output and request), so the page gets what Gradio would send."""
    from PIL import Image

    from apps.main import build_app

    paths, labels = digits_png
    services = vision.tab_services(shipped_digits)
    name = next(iter(services))
    bad = tmp_path / "notes.png"
    bad.write_text("not an image")
    components = [gr.Label(num_top_classes=vision.TOP_K), gr.Image(type="numpy", format="jpeg"), gr.Markdown()]
    uploads, sketches, files = [str(paths[0]), str(bad), str(paths[1])], [None] * 3, ["Keras"] * 3
    raw = vision.classify_batch(services)(uploads, sketches, files, [name] * 3)
    sent = vision.classify_batch(services, None, components)(uploads, sketches, files, [name] * 3)
    expected = [components[0].postprocess(top) for top in raw[0]]
    assert sent[0] == [e.model_dump() if hasattr(e, "model_dump") else e for e in expected]
    assert [top.get("label") for top in sent[0]] == [labels[0], None, labels[1]]
    for seen, image in zip(sent[1], raw[1]):
        assert (seen is None) == (image is None)
        if seen is not None:  # a JPEG in Gradio's cache, as the page shows it
            assert seen["path"].endswith(".jpeg") and np.asarray(Image.open(seen["path"])).shape == image.shape
    assert sent[2][1] == raw[2][1] and sent[2][1].startswith("**Error:**") and "ms" in sent[2][0]
    demo = build_app(shipped_digits)
    classify = [fn for fn in demo.fns.values() if fn.api_name == "classify_image"]
    assert classify and all(not fn.postprocess and not fn.preprocess and fn.batch for fn in classify)


def test_the_page_loads_no_model(shipped_digits):
    """Building the page reads the cards only: models load on first use."""
    from apps.main import build_app

    vision.shared_services.cache_clear()  # earlier tests in this file loaded the shared services' models
    services = vision.shared_services(str(shipped_digits))
    build_app(shipped_digits)
    assert all(s.slot.task is None for s in services.values())
    assert services[next(iter(services))].backends()[0] == "Keras"


def test_explanations_run_in_a_separate_lower_priority_process(tmp_path):
    """The explanation process: another process at the lowest CPU priority and one thread, whose errors come
    back as the toolkit's message (a gr.Error), never as a trace."""
    import os

    from apps import common
    from toolkit.storage import read_card

    assert common.run_explanation(os.getpid) != os.getpid()
    assert common.run_explanation(os.nice, 0) == common.EXPLAIN_NICENESS
    import tensorflow as tf  # one thread for its TensorFlow: an explanation never takes both cores

    assert common.run_explanation(tf.config.threading.get_intra_op_parallelism_threads) == 1
    assert common.run_explanation(tf.config.threading.get_inter_op_parallelism_threads) == 1
    with pytest.raises(gr.Error) as raised:
        common.run_explanation(read_card, str(tmp_path / "no-model-here"))
    assert "no-model-here" in raised.value.message and "Traceback" not in raised.value.message


def test_the_explanation_process_ends_with_a_killed_server():
    import time
    from pathlib import Path

    if not Path("/proc/self/status").exists():
        pytest.skip("needs /proc (Linux) to see whether a process runs")
    # the pool itself, not run_explanation: the server process then skips Gradio's import (~4 CPU-s), and
    # the process checked is the same explanation process
    code = ("import os, signal; from apps import common; print(common.explainer_pool().submit(os.getpid).result(), "
            "flush=True); os.kill(os.getpid(), signal.SIGKILL)")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    worker = int(out.stdout.split()[0])

    def alive() -> bool:
        status = Path(f"/proc/{worker}/status")
        try:
            return "\nState:\tZ" not in status.read_text()  # a zombie has ended
        except OSError:
            return False

    deadline = time.time() + 30
    while alive() and time.time() < deadline:
        time.sleep(0.5)
    assert not alive()


def test_session_configs_read_each_components_signature_once(monkeypatch):
    """A new session's copy of the page's config (each API call without a session, each new page)
    reads each component class's signature once per server, not once per component and session;
    the config is the same as Gradio's own."""
    import inspect

    import gradio.blocks

    from apps.main import cache_component_signatures

    monkeypatch.setattr(gradio.blocks, "inspect", inspect)
    blocks = [gr.Slider(0, 10, value=3, label="steps"), gr.Dropdown(["a", "b"], value="a"), gr.Image(format="jpeg")]
    plain = [b.get_config() for b in blocks]
    cache_component_signatures()
    cache_component_signatures()  # idempotent
    cached = gradio.blocks.inspect
    assert cached is not inspect and cached.signature(gr.Slider.__init__) is cached.signature(gr.Slider.__init__)
    assert [b.get_config() for b in blocks] == plain
    assert cached.isfunction(len) is False and cached.signature(len) == inspect.signature(len)  # the rest is inspect's


def test_a_new_session_copies_a_components_config_only_when_read(monkeypatch):
    """Each API call without a session gets a new one: it copies only the configs it reads (its
    inputs'), and a deep link still lists every component's config, the same as Gradio's own."""
    import gradio.blocks
    import gradio.route_utils
    import gradio.state_holder

    from apps.main import lazy_session_configs

    original = next(c for c in gradio.state_holder.SessionState.__mro__ if c.__module__ == "gradio.state_holder")
    for module in (gradio.state_holder, gradio.route_utils, gradio.blocks):
        monkeypatch.setattr(module, "SessionState", original)
    with gr.Blocks() as demo:
        slider = gr.Slider(0, 10, value=3, label="steps")
        gr.Dropdown(["a", "b"], value="a")
        gr.Image(format="jpeg")
    lazy_session_configs()
    lazy_session_configs()  # idempotent
    lazy = gradio.state_holder.SessionState
    assert lazy is not original and issubclass(lazy, original)
    assert gradio.route_utils.SessionState is lazy and gradio.blocks.SessionState is lazy
    made = []
    real = type(demo.default_config).config_for_block
    monkeypatch.setattr(type(demo.default_config), "config_for_block",
                        staticmethod(lambda *args, **kwargs: made.append(args[0]) or real(*args, **kwargs)))
    session, plain = lazy(demo), original(demo)
    made.clear()
    session._update_value_in_config(slider._id, 5)  # what reading an input does
    assert made == [slider._id]
    plain._update_value_in_config(slider._id, 5)
    assert list(session.components) == list(plain.components)  # a deep link: every component, as Gradio's
    assert dict(session.config_values.items()) == dict(plain.config_values.items())
