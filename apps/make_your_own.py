"""Make your own tab: name classes, add examples (photos, a zip, webcam shots, sentences, a CSV, or
recordings), train, see how it does on held-out examples, explain it, try it, and download a checked
phone model.

The training is the toolkit's (``toolkit.make_your_own.train_from_examples``, which runs the
task's own ``train_recipe``). Each browser session has its own folder under the system's
temporary folder: made on first use, deleted when the page closes (``demo.unload`` and the
state's ``delete_callback``) or, for a session that never closes, by a sweep after an hour. A
handler only ever reads the folder of its own session, and only files it wrote there. One
training runs at a time per server (its own queue; Gradio shows the others their place), in one
niced worker process (``toolkit.training_worker``: the same ``train_from_examples``, progress and
cancel over a pipe), so the other tabs' predictions keep answering while it runs.
"""

from __future__ import annotations

import shutil
import threading
from pathlib import Path
from typing import Any

import numpy as np

from apps.common import EXPLAIN, data_error, upload_path, user_errors
from apps.make_your_own_examples import KINDS, class_examples, collect, files_of, kind_of, lines_of, pairs  # noqa: F401
from toolkit.serving import Memo

TITLE = "Make your own"
SLOTS = 5  # class rows on the page (3 shown, 2 under "More classes"); the API takes up to MAX_CLASSES
SHOWN_SLOTS = 3
ENGINES = ("Phone file (.tflite)", "Keras model")
TRAIN_QUEUE = {"concurrency_id": "make_your_own_train", "concurrency_limit": 1}
TASK_CACHE_SIZE = 8
#: the sessions' models (Keras tasks and phone files) by path, made once
TASK_CACHE = Memo(TASK_CACHE_SIZE)
CANCELS: dict[str, threading.Event] = {}
SESSIONS: dict[str, str] = {}  # Gradio session hash -> its folder (for demo.unload)
LOCK = threading.Lock()
#: extra recipe settings for every training of this server (config fields, e.g. {"epochs": 20}); empty: the
#: recipe's defaults (what `make bench` measures)
TRAIN_OPTIONS: dict = {}
#: trainings run in one niced worker process (toolkit.training_worker) so the other tabs keep answering;
#: False: in this process (tests that patch the toolkit in-process)
IN_WORKER = True
WORKER: Any = None


# ---------------------------------------------------------------------- sessions


def new_state() -> dict:
    return {"folder": None, "model": None, "kind": None}


def session(state: Any, request: Any = None) -> dict:
    """The session's state with its private folder made (the sweep of old folders runs then)."""
    from toolkit.make_your_own import new_session, sweep_sessions

    state = dict(state) if isinstance(state, dict) else new_state()
    folder = state.get("folder")
    if not folder or not Path(folder).is_dir():
        sweep_sessions()
        state["folder"] = str(new_session())
    hash_ = getattr(request, "session_hash", None)
    if hash_:
        SESSIONS[hash_] = state["folder"]
    return state


def remove_session(state: Any) -> None:
    """Delete a session's folder (the state's delete_callback)."""
    folder = state.get("folder") if isinstance(state, dict) else None
    if folder:
        forget_models(folder)
        shutil.rmtree(folder, ignore_errors=True)


def unload(request: Any = None) -> None:
    """The page closed: delete its session's folder."""
    folder = SESSIONS.pop(getattr(request, "session_hash", None) or "", None)
    if folder:
        remove_session({"folder": folder})


def forget_models(folder: str) -> None:
    TASK_CACHE.forget(lambda key: not key.startswith(folder))


def session_task(state: Any):
    """The session's trained (or reloaded) model; a DataError before there is one."""
    from toolkit.base import load

    model = session_folder_model(state)
    return cached(model, lambda: load(model))


def cached(key: str, make: Any) -> Any:
    """The model at ``key``, made by ``make()`` when it is not remembered."""
    return TASK_CACHE.get(key, make)


# ---------------------------------------------------------------------- training


def run_training(state: dict, kind: str, examples: dict, progress=None):
    """Train in the session's folder; returns (state, result). The cancel event is the session's."""
    from toolkit.make_your_own import train_from_examples

    folder = state["folder"]
    cancel = CANCELS.setdefault(folder, threading.Event())
    cancel.clear()
    say = (lambda fraction, message: progress(fraction, desc=message)) if progress is not None else None
    try:
        if IN_WORKER:
            result = training_worker().train(kind, examples, Path(folder) / "runs", progress=say, cancel=cancel,
                                             **TRAIN_OPTIONS)
        else:
            result = train_from_examples(kind, examples, Path(folder) / "runs", progress=say, cancel=cancel,
                                         **TRAIN_OPTIONS)
    finally:
        cancel.clear()
    if state.get("model"):
        forget_models(state["model"])
        shutil.rmtree(Path(state["model"]).parent, ignore_errors=True)  # one model per session on disk
    if result.task is not None:  # from the worker: loaded from its folder when first used
        TASK_CACHE.put(str(result.directory), result.task)
    return {**state, "model": str(result.directory), "kind": kind}, result


def training_worker(warm: tuple[str, ...] = ()):
    """The server's training process (started on first use; ``warm``: kinds it warms up at start)."""
    global WORKER
    from toolkit.training_worker import TrainingWorker

    with LOCK:
        if WORKER is None:
            WORKER = TrainingWorker(warm=warm)
    return WORKER


def summary(result) -> str:
    """The result in words: held-out accuracy beside its peers, the phone file's checks."""
    m = result.metrics
    lines = [f"### Held-out accuracy {m['held_out_accuracy']:.3f}",
             f"On {m['n_held_out']} examples the model never saw ({m['n_train']} trained it; "
             f"{m['epochs_run']} epochs, {result.seconds:.0f} s). Always guessing the largest class: "
             f"{m['majority_baseline']:.3f}."]
    if "tfidf_held_out_accuracy" in m:
        lines.append(f"TF-IDF + linear SVM on the same examples (the classical peer): "
                     f"{m['tfidf_held_out_accuracy']:.3f}.")
    t = result.tflite
    agreement = t.get("agreement_with_keras")
    lines.append(f"\n**Phone file** `{t['file']}`: {t['size_bytes'] / 2**20:.1f} MB, agrees with the Keras model on "
                 f"{agreement:.1%} of the held-out examples, {t['latency_ms_p50']:.1f} ms per example here "
                 f"(both in `card.json`)." if agreement is not None else f"\n**Phone file** `{t['file']}`.")
    if result.wrong:
        lines.append(f"\n**{len(result.wrong)} held-out example(s) it gets wrong** are shown below.")
    lines += [f"\n> {note}" for note in result.notes]
    return "\n".join(lines)


def wrong_outputs(result) -> tuple[list, str]:
    """The wrong held-out examples: a gallery (images) or a markdown list (sentences)."""
    if result.kind == "image":
        return [(w["file"], f"{w['example']}: {w['true']} -> {w['predicted']} ({w['probability']:.2f})")
                for w in result.wrong], ""
    rows = [f"- *{w['example']}*: **{w['true']}**, predicted {w['predicted']} ({w['probability']:.2f})"
            for w in result.wrong]
    return [], "\n".join(rows) if rows else ""


def train_outputs(state: dict, result) -> tuple:
    confusion = result.directory / "confusion_matrix.png"
    gallery, wrong_text = wrong_outputs(result)
    return (state, summary(result), str(confusion) if confusion.is_file() else None, gallery, wrong_text,
            str(result.zip_path))


def train_page(state, kind, *rows, csv=None, progress=None, request=None):
    """The Train button: the class rows (names, uploads, shots, sentences) and a CSV of sentences
    -> the results."""
    kind = kind_of(kind)
    names, uploads, shots, sentences = (list(rows[i * SLOTS:(i + 1) * SLOTS]) for i in range(4))
    state = session(state, request)
    examples = collect(kind, names, uploads, shots, sentences, csv)
    state, result = run_training(state, kind, examples, progress)
    return train_outputs(state, result)


def cancel_training(state) -> str:
    """The Cancel button: the session's training stops at its next step and keeps nothing."""
    folder = state.get("folder") if isinstance(state, dict) else None
    if folder and folder in CANCELS:
        CANCELS[folder].set()
        return "Cancelling: the training stops at its next step and keeps nothing."
    return "Nothing to cancel."


def api_result(state: dict, result) -> tuple:
    metrics = {**result.metrics, "class_names": result.class_names,
               "confusion_matrix": np.asarray(result.confusion_matrix).tolist(),
               "wrong": [{k: v for k, v in w.items() if k != "file"} for w in result.wrong],
               "tflite": {k: result.tflite[k] for k in ("file", "size_bytes", "agreement_with_keras",
                                                         "latency_ms_p50") if k in result.tflite}}
    return metrics, str(result.zip_path), state


def train_image_classifier(files, labels, state=None, progress=None, request=None):
    """API: image files (a .zip of one class counts as its images) and one label per file ->
    (metrics, the zip, session state)."""
    state = session(state, request)
    items = []
    for path in files_of(files):
        items.append(path)
    examples = pairs(items, labels, "file")
    examples = {label: [x for p in paths for x in class_examples("image", label, [p])] for label, paths in
                examples.items()}
    state, result = run_training(state, "image", examples, progress)
    return api_result(state, result)


def train_text_classifier(texts, labels, state=None, progress=None, request=None):
    """API: sentences (one per line) and one label per sentence -> (metrics, the zip, session state)."""
    state = session(state, request)
    state, result = run_training(state, "text", pairs(lines_of(texts), labels, "sentence"), progress)
    return api_result(state, result)


# ---------------------------------------------------------------------- using the model


def add_shot(state, shot, shots, request=None):
    """Keep a webcam shot in the session's folder; returns (state, shots, count note)."""
    from PIL import Image

    if shot is None:
        raise data_error("No webcam shot. Take a picture first.")
    array = np.asarray(shot)
    if array.ndim not in (2, 3) or array.size == 0:
        raise data_error(f"Expected a picture. Received an array of shape {array.shape}.")
    state = session(state, request)
    shots = list(shots or [])
    from toolkit.make_your_own import MAX_IMAGES_PER_CLASS

    if len(shots) >= MAX_IMAGES_PER_CLASS:
        raise data_error(f"Expected at most {MAX_IMAGES_PER_CLASS} images per class. Received more shots.")
    folder = Path(state["folder"]) / "shots"
    folder.mkdir(exist_ok=True)
    path = folder / f"{len(list(folder.iterdir())):05d}.png"
    Image.fromarray(np.clip(array, 0, 255).astype(np.uint8)).save(path)
    shots.append(str(path))
    return state, shots, f"{len(shots)} webcam shot(s)"


def add_take(state, take, shots, request=None):
    """Keep a microphone take (checked: decodes, not silent, at most 10 s) in the session's folder
    as WAV; returns (state, shots and takes, count note)."""
    from toolkit.audio.examples import check_recording
    from toolkit.make_your_own import MAX_IMAGES_PER_CLASS

    if take is None:
        raise data_error("No recording. Press the microphone's record button and say the word first.")
    data, _ = check_recording(tuple(take), "The recording")
    state, shots = session(state, request), list(shots or [])
    if sum(p.endswith(".wav") for p in shots) >= MAX_IMAGES_PER_CLASS:
        raise data_error(f"Expected at most {MAX_IMAGES_PER_CLASS} recordings per class. Received more takes.")
    folder = Path(state["folder"]) / "takes"
    folder.mkdir(exist_ok=True)
    path = folder / f"{len(list(folder.iterdir())):05d}.wav"
    path.write_bytes(data)
    shots.append(str(path))
    return state, shots, f"{sum(p.endswith('.wav') for p in shots)} recording(s)"


def session_file(state: Any):
    """The session's phone file (the checked .tflite of its model's folder) as a TFLiteModel."""
    from toolkit.base import read_card
    from toolkit.edge import TFLiteModel

    folder = Path(session_folder_model(state))
    entries = read_card(folder).get("tflite") or []
    if not entries or not (folder / entries[0]["file"]).is_file():
        raise data_error("This model has no phone file. Train it again to make one.")
    key = str(folder / entries[0]["file"])
    return cached(key, lambda: TFLiteModel(key))


def session_folder_model(state: Any) -> str:
    """The session's model folder (checked to lie in its own session folder)."""
    model = state.get("model") if isinstance(state, dict) else None
    folder = state.get("folder") if isinstance(state, dict) else None
    if not model or not folder or not Path(model).is_dir() or not str(Path(model).resolve()).startswith(
            str(Path(folder).resolve())):
        raise data_error("No model yet. Train one (or reload a zip you downloaded) first.")
    return model


def try_it(state, image, text, engine: str = ENGINES[0], recording: Any = None):
    """The session's model on one image, sentence or recording: class -> probability; ``engine``:
    the phone file (the int8/dynamic .tflite in the zip) or the Keras model."""
    from toolkit.base import task_class

    if engine not in ENGINES:
        raise data_error(f"Expected the model to try as one of {list(ENGINES)}. Received {engine!r}.")
    model = session_file(state) if engine == ENGINES[0] else session_task(state)
    kind = task_class(model.card["task"]).input_kind if engine == ENGINES[0] else model.input_kind
    probs = model.predict_proba(_try_input(model, image, text, kind, recording))[0]
    return {name: float(p) for name, p in zip(model.class_names_, probs)}


def _try_input(task, image, text, kind: str | None = None, recording: Any = None):
    kind = kind or task.input_kind
    if kind == "audio":
        path = upload_path(recording)
        if path is None:
            raise data_error("Expected a recording to try. Received nothing; record or upload one.")
        return task.prepare(str(path))
    if kind == "image":
        from apps.common import request_image

        return task.prepare(request_image(image))
    if not isinstance(text, str) or not text.strip():
        raise data_error("Expected a sentence to try. Received nothing; type one.")
    return [text]


def explain(state, image, text, method, recording: Any = None):
    """Why the session's model answers as it does for one example (the task's explainers)."""
    task = session_task(state)
    if method not in task.explain_methods:
        raise data_error(f"Unknown explanation method {method!r}. Choose one of {list(task.explain_methods)}.")
    x = _try_input(task, image, text, None, recording)
    if task.input_kind == "audio":
        x = [str(upload_path(recording))]  # the file: the task reads and explains it
    explanation = task.explain(x if task.input_kind == "text" else x[0], method=method)
    note = (f"**{method}** for class **{explanation.target}** "
            f"(probability {explanation.extra.get('probability', float('nan')):.3f}): {explanation.seconds:.1f} s.")
    return explanation.image, explanation.html or "", note


def reload_zip(state, upload, request=None):
    """Open a zip downloaded earlier: checked, extracted into the session's folder, loaded."""
    from toolkit.make_your_own import load_model_zip

    path = upload_path(upload)
    if path is None:
        raise data_error("No zip received. Upload the zip you downloaded from this tab.")
    state = session(state, request)
    task, folder = load_model_zip(path, Path(state["folder"]) / "loaded")
    if state.get("model"):
        forget_models(state["model"])
    TASK_CACHE.put(str(folder), task)
    metrics = task.metrics_ or {}
    accuracy = metrics.get("test_accuracy")
    note = (f"Loaded a {task.task_name.replace('_', ' ')} with classes {', '.join(task.class_names_)}"
            + (f"; held-out accuracy when it was trained: {accuracy:.3f}." if isinstance(accuracy, float) else "."))
    return {**state, "model": str(folder), "kind": task.input_kind}, note


# ---------------------------------------------------------------------- UI


def warm_up(**kwargs) -> None:
    """Sweep old session folders and start the training process, which trains two tiny models on
    generated examples so that the first user's training finds the backbones loaded and converted."""
    from toolkit.make_your_own import sweep_sessions

    sweep_sessions()
    if IN_WORKER:
        training_worker(warm=("image", "text")).start()


def build_demo(**kwargs):
    import gradio as gr

    from toolkit.make_your_own import LIMITS_TEXT

    def handler(fn, name):
        if "request" in fn.__annotations__:  # a string under `from __future__ import annotations`: Gradio
            fn.__annotations__["request"] = gr.Request  # injects the request only when it sees the class
        wrapped = user_errors(fn)
        wrapped.__name__ = name
        return wrapped

    with gr.Blocks(title=TITLE) as demo:
        gr.Markdown("### Make your own classifier\nName two or more classes, give each some examples, press "
                    "**Train**. It learns on a pretrained network (EfficientNet-Lite0 for photos, MiniLM for "
                    "sentences), tells you how it does on examples it never saw, and gives you a zip with a "
                    f"checked phone file.\n\n**Limits:** {LIMITS_TEXT}")
        state = gr.State(new_state(), delete_callback=remove_session)
        kind = gr.Radio(list(KINDS), value="Images", label="What to classify")
        names, uploads, shot_states, cams, shot_notes, sentences, image_parts = [], [], [], [], [], [], []
        cam_parts, mic_parts = [], []

        def class_row(i):
            with gr.Group():
                names.append(gr.Textbox(label=f"Class {i + 1} name", value="", max_lines=1))
                with gr.Row(visible=True) as images:
                    uploads.append(gr.File(label="Photos (or a .zip of them) or recordings", file_count="multiple",
                                           file_types=["image", ".zip", "audio"], type="filepath"))
                    with gr.Column() as cam:
                        cams.append(gr.Image(label="Webcam", sources=["webcam"], type="numpy", height=160))
                        add = gr.Button("Add this shot", size="sm")
                    with gr.Column(visible=False) as mic:
                        take = gr.Audio(label="Microphone", sources=["microphone"], type="numpy")
                        add_rec = gr.Button("Add this recording", size="sm")
                    shot_notes.append(gr.Markdown(""))
                image_parts.append(images)
                cam_parts.append(cam)
                mic_parts.append(mic)
                sentences.append(gr.Textbox(label="Sentences, one per line", lines=4, visible=False))
                shot_states.append(gr.State([]))
                add.click(handler(add_shot, "add_shot"), [state, cams[i], shot_states[i]],
                          [state, shot_states[i], shot_notes[i]], api_name=False)
                add_rec.click(handler(add_take, "add_take"), [state, take, shot_states[i]],
                              [state, shot_states[i], shot_notes[i]], api_name=False)

        for i in range(SHOWN_SLOTS):
            class_row(i)
        with gr.Accordion("More classes", open=False):
            for i in range(SHOWN_SLOTS, SLOTS):
                class_row(i)
        csv_file = gr.File(label="...or a CSV of sentences (a header row, then text and label columns)",
                           file_types=[".csv", ".tsv"], type="filepath", visible=False)
        with gr.Row():
            train_btn = gr.Button("Train", variant="primary")
            cancel_btn = gr.Button("Cancel training")
        status = gr.Markdown()
        with gr.Row():
            with gr.Column():
                results = gr.Markdown()
                download = gr.File(label="Download: phone file, labels, card, Keras model", interactive=False)
            confusion = gr.Image(label="Confusion matrix (held-out examples)", type="filepath", height=320)
        wrong_gallery = gr.Gallery(label="Held-out photos it gets wrong", columns=6, height=200)
        wrong_text = gr.Markdown()
        with gr.Accordion("Try it, explain it", open=True):
            with gr.Row():
                with gr.Column():
                    try_image = gr.Image(label="A photo", type="filepath", sources=["upload", "webcam"], height=200)
                    try_text = gr.Textbox(label="...or a sentence", max_lines=3)
                    try_recording = gr.Audio(label="...or a recording", sources=["upload", "microphone"],
                                             type="filepath")
                    engine = gr.Radio(list(ENGINES), value=ENGINES[0], label="Try with")
                    method = gr.Radio(["gradcam", "shap", "lime", "occlusion"], value="lime",
                                      label="Explanation method (occlusion: recordings; shap: photos, sentences)")
                    with gr.Row():
                        try_btn = gr.Button("Try it")
                        explain_btn = gr.Button("Explain")
                with gr.Column():
                    answer = gr.Label(label="Answer")
                    overlay = gr.Image(label="Explanation", type="numpy", height=200)
                    highlighted = gr.HTML()
                    explain_note = gr.Markdown()
        with gr.Accordion("Continue from a zip you downloaded", open=False):
            zip_upload = gr.File(label="The zip", file_types=[".zip"], type="filepath")
            reload_note = gr.Markdown()
        with gr.Row(visible=False):  # the API's inputs and outputs (files + labels in, metrics + zip out)
            api_files = gr.File(file_count="multiple", type="filepath", label="files")
            api_texts = gr.Textbox(label="texts")
            api_labels = gr.Textbox(label="labels")
            api_metrics = gr.JSON(label="metrics")
            api_zip = gr.File(label="zip")
            api_image_btn = gr.Button()
            api_text_btn = gr.Button()

        def kind_changed(choice):
            chosen = kind_of(choice)
            return ([gr.update(visible=chosen != "text") for _ in image_parts]
                    + [gr.update(visible=chosen == "image") for _ in cam_parts]
                    + [gr.update(visible=chosen == "audio") for _ in mic_parts]
                    + [gr.update(visible=chosen == "text") for _ in [*sentences, csv_file]])

        kind.change(kind_changed, [kind], image_parts + cam_parts + mic_parts + sentences + [csv_file], api_name=False)

        row_inputs = [*names, *uploads, *shot_states, *sentences]

        def train(values: dict, progress=gr.Progress(), request: gr.Request = None):
            rows = [values[block] for block in row_inputs]
            return train_page(values[state], values[kind], *rows, csv=values[csv_file], progress=progress,
                              request=request)

        def train_images(files, labels, state, progress=gr.Progress(), request: gr.Request = None):
            return train_image_classifier(files, labels, state, progress, request)

        def train_texts(texts, labels, state, progress=gr.Progress(), request: gr.Request = None):
            return train_text_classifier(texts, labels, state, progress, request)

        outputs = [state, results, confusion, wrong_gallery, wrong_text, download]
        train_btn.click(handler(train, "train"), {state, kind, csv_file, *row_inputs}, outputs, api_name=False, **TRAIN_QUEUE)
        cancel_btn.click(cancel_training, [state], [status], api_name=False, queue=False)
        api_image_btn.click(handler(train_images, "train_image_classifier"), [api_files, api_labels, state],
                            [api_metrics, api_zip, state], api_name="train_image_classifier", **TRAIN_QUEUE)
        api_text_btn.click(handler(train_texts, "train_text_classifier"), [api_texts, api_labels, state],
                           [api_metrics, api_zip, state], api_name="train_text_classifier", **TRAIN_QUEUE)
        try_btn.click(handler(try_it, "try_it"), [state, try_image, try_text, engine, try_recording], [answer],
                      api_name=False)
        explain_btn.click(handler(explain, "explain"), [state, try_image, try_text, method, try_recording],
                          [overlay, highlighted, explain_note], api_name=False, **EXPLAIN)

        def reload(state, upload, request: gr.Request = None):
            return reload_zip(state, upload, request)

        zip_upload.upload(handler(reload, "reload_zip"), [state, zip_upload], [state, reload_note], api_name=False)

        def closed(request: gr.Request):
            unload(request)

        closed.__annotations__["request"] = gr.Request
        demo.unload(closed)
    return demo
