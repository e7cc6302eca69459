"""Speech tab: record a word with the microphone or upload a recording; see the waveform and the
spectrogram the model hears, the top-3 words, why (occlusion, Grad-CAM or LIME over the
spectrogram), and how fast Keras and each TFLite file answer.

Plain handler functions (tested directly) plus ``build_demo(model_dir) -> gr.Blocks``. Nothing
heavy happens at import time: the model and its TFLite files load on the first request (or in
``warm_up``). Every request goes through the traced serving function or a LiteRT session, never
``model.predict``.
"""

from __future__ import annotations

import functools
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from apps.common import (EXPLAIN, KERAS, MAKE_MODELS, SAVED_MODELS, UNSURE_MARK, ModelService, card_facts, data_error,
                         milliseconds, not_sure_note, upload_path, user_errors)

DEFAULT_MODEL_DIR = SAVED_MODELS / "audio" / "spoken_digits"
TITLE = "Speech"
TOP_K = 3
#: recordings are answered two at a time (a spectrogram picture is drawn for each)
RECOGNISE = {"concurrency_id": "speech", "concurrency_limit": 2}
METHODS = ("occlusion", "gradcam", "lime")
NO_AUDIO = "No recording received. Record a word with the microphone or upload a WAV, FLAC or OGG file first."


class SpeechService(ModelService):
    """One saved audio classifier and its TFLite files (LiteRT sessions), loaded once and shared by all requests."""

    what = "speech"
    default_dir = DEFAULT_MODEL_DIR

    def warm(self, task) -> None:
        task.probabilities(np.zeros((1, task.config.audio_format.samples), np.float32))

    def open_file(self, path: Path):
        task = self.task
        return task.open_tflite(path, card=task.card())


def recording(audio: Any) -> tuple[np.ndarray, int]:
    """(samples, rate) of the request's audio: an uploaded or recorded file (Gradio's path or file
    dict: decoded with soundfile, so a file that is not audio gets a DataError naming it), or a
    ``(rate, samples)`` pair."""
    from toolkit.audio import decode

    if isinstance(audio, (tuple, list)) and len(audio) == 2 and not isinstance(audio[1], (str, dict)):
        rate, samples = audio
        if not isinstance(rate, (int, np.integer)):
            raise data_error(f"Expected (sample rate, samples). Received a rate of type {type(rate).__name__}.")
        return np.asarray(samples), int(rate)
    path = upload_path(audio)
    if path is None:
        raise data_error(NO_AUDIO)
    if not path.is_file():
        raise data_error(f"Expected an uploaded recording. Received {path.name!r}, which is not a file here. "
                         "Upload the recording again.")
    samples, rate = decode(path)
    return samples, rate


def prepared(service: SpeechService, audio: Any) -> tuple[np.ndarray, list[str]]:
    """The model's (1, samples) input for the request's audio, and the warnings it raised
    (clipping) as notes for the page."""
    samples, rate = recording(audio)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        batch = service.task.prepare((samples, rate))
    return batch, [str(w.message) for w in caught if issubclass(w.category, UserWarning)]


# ---------------------------------------------------------------------- handlers


@user_errors
def recognise(service: SpeechService, audio: Any, backend: str = KERAS):
    """Top-3 words with probabilities, the waveform and spectrogram the model hears, and a note
    with the chosen file's latency (the model call alone) and any warning about the recording."""
    from toolkit.audio.explain import quick_picture

    predictor = service.predictor(backend)
    batch, notes = prepared(service, audio)
    start = time.perf_counter()
    probs, features = predictor.probabilities_and_features(batch)
    ms = (time.perf_counter() - start) * 1000
    (answer,) = predictor.assess_batch(batch, probs, k=TOP_K, features=features)  # temperature, "not sure"
    mark = UNSURE_MARK if answer["not_sure"] else ""
    top = {row["label"] + mark: row["probability"] for row in answer["top_k"]}
    picture = quick_picture(service.task.spectrogram(batch), batch[0])  # a few ms: matplotlib takes hundreds
    note = f"**{backend or KERAS}**: {milliseconds(ms)} for this recording."
    if answer["not_sure"]:
        note = f"{not_sure_note('recording', answer['why'])}\n\n{note}"
    note += "".join(f"\n\n> {n}" for n in notes)
    return top, picture, note


@user_errors
def explain_recording(service: SpeechService, audio: Any, method: str = "occlusion", backend: str = KERAS):
    """The explanation over the spectrogram for the predicted word, and what it cost. LIME only
    needs predictions, so the chosen file answers them; occlusion and Grad-CAM use the Keras model."""
    if method not in METHODS:
        raise data_error(f"Unknown explanation method {method!r}. Choose one of {list(METHODS)}.")
    keras_only = method != "lime" and backend not in (None, "", KERAS)
    predictor = service.predictor(KERAS if keras_only else backend)
    batch, _ = prepared(service, audio)
    explanation = service.task.explain(batch, method=method, predictor=None if predictor is service.task
                                       else predictor)
    source = f"{KERAS} (needs the network's layers)" if keras_only else (backend or KERAS)
    note = (f"**{method}** for **{explanation.target}** on {source}: {explanation.seconds * 1000:.0f} ms. "
            + ("Warm colours mark the regions that drove the answer." if method == "gradcam" else
               "Red supports the word, blue speaks against it."))
    return explanation.image, note


def clear_outputs():
    """Empty results, so that no answer stays on screen once the recording has changed."""
    return None, None, "", None, ""


def clear_explanation():
    """An empty explanation, so that no overlay of an earlier recording stays beside a new answer."""
    return None, ""


def model_facts(service: SpeechService) -> str:
    """Markdown facts from the card: words, input, accuracy, each TFLite file."""
    card = service.slot.card()  # read without loading the model: building the page stays fast
    if card is None:
        return f"**Model not available** ({service.model_dir}). {MAKE_MODELS}"
    spec = card.get("input") or {}
    metrics = card.get("metrics") or {}
    summary = [f"**Model** `{service.model_dir.name}`: words {', '.join(card.get('labels') or [])}; input "
               f"{spec.get('duration', '?')} s of mono samples at {spec.get('sample_rate', '?')} Hz (any recording "
               "is resampled, trimmed and normalised first)."]
    if isinstance(metrics.get("test_accuracy"), (int, float)):
        summary.append(f"**Keras test accuracy** {metrics['test_accuracy']:.4f}.")
    return card_facts(card, None, summary)


# ---------------------------------------------------------------------- UI


@functools.lru_cache(maxsize=4)
def shared_service(model_dir: str | None = None) -> SpeechService:
    """One service per model folder, so rebuilding the app does not reload the model."""
    return SpeechService(model_dir)


def warm_up(model_dir: str | Path | None = None) -> None:
    """Load the model ahead of the first request (``apps.main.launch`` runs it in the background)."""
    shared_service(str(model_dir) if model_dir is not None else None).warm_up()


def build_demo(model_dir: str | Path | None = None):
    import gradio as gr

    service = shared_service(str(model_dir) if model_dir is not None else None)
    with gr.Blocks(title=TITLE) as demo:
        gr.Markdown("### Spoken words\nSay a digit (zero to nine) into the microphone or upload a recording, then "
                    "see what the model hears, its top 3 and why. The `.tflite` files run the whole pipeline, "
                    "spectrogram included, as a phone would.")
        with gr.Row():
            with gr.Column():
                audio = gr.Audio(sources=["microphone", "upload"], type="filepath", label="Recording",
                                 elem_id="speech-recording")
                backend = gr.Dropdown(service.backends(), value=KERAS, label="Model file",
                                      allow_custom_value=True)  # API callers may name a file the card lists later
                method = gr.Radio(list(METHODS), value="occlusion", label="Explanation method")
                with gr.Row():
                    recognise_btn = gr.Button("Recognise", variant="primary")
                    explain_btn = gr.Button("Explain")
            with gr.Column():
                labels = gr.Label(num_top_classes=TOP_K, label="Top 3", elem_id="speech-top3")
                latency = gr.Markdown()
                heard = gr.Image(label="What the model hears: waveform (top), log-mel spectrogram (bottom; "
                                         "time across, mel bands up)", type="numpy", height=260)
                overlay = gr.Image(label="Explanation", type="numpy", height=260)
                explain_note = gr.Markdown()
        with gr.Accordion("Model facts (from card.json)", open=False):
            gr.Markdown(model_facts(service))

        answer = [labels, heard, latency]
        stale = [labels, heard, latency, overlay, explain_note]
        recognise_fn = functools.partial(recognise, service)
        recognise_fn.__name__ = "recognise"
        explain_fn = functools.partial(explain_recording, service)
        explain_fn.__name__ = "explain_recording"
        explaining = explain_btn.click(clear_explanation, None, [overlay, explain_note], api_name=False,
                                       queue=False).then(
            explain_fn, [audio, method, backend], [overlay, explain_note], api_name="explain_recording", **EXPLAIN)
        # A new request first clears what belonged to the previous recording, then answers; a new
        # recording also cancels an explanation still on its way (it belongs to the old one).
        stale_explanation = {"cancels": [explaining]}
        recognise_btn.click(clear_explanation, None, [overlay, explain_note], api_name=False, queue=False).then(
            recognise_fn, [audio, backend], answer, api_name="recognise", **RECOGNISE)
        for event in (audio.stop_recording, audio.upload):
            event(clear_outputs, None, stale, api_name=False, queue=False, **stale_explanation).then(
                recognise_fn, [audio, backend], answer, api_name=False, **RECOGNISE)
        audio.clear(clear_outputs, None, stale, api_name=False, queue=False, **stale_explanation)
        backend.change(clear_outputs, None, stale, api_name=False, queue=False, **stale_explanation)
        method.change(clear_explanation, None, [overlay, explain_note], api_name=False, queue=False,
                      **stale_explanation)
    return demo
