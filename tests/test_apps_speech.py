"""The speech tab: handlers called directly (on the shipped spoken-digits model), and the launched
tab through gradio_client."""

from __future__ import annotations

import numpy as np
import pytest

gr = pytest.importorskip("gradio")
sf = pytest.importorskip("soundfile")

from apps import speech  # noqa: E402
from apps.common import REPO, UNSURE_MARK  # noqa: E402

RECORDINGS = REPO.parent / "shared" / "data" / "spoken_digits" / "recordings"
SHIPPED = speech.DEFAULT_MODEL_DIR


def test_import_is_light():
    import subprocess
    import sys

    code = "import sys, apps.speech; print('tensorflow' in sys.modules or 'gradio' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert out.stdout.strip() == "False", out.stderr


@pytest.fixture(scope="module")
def service():
    if not (SHIPPED / "card.json").is_file():
        pytest.skip(f"{SHIPPED} is absent: run `make models`")
    return speech.SpeechService(SHIPPED)


def word(seconds: float = 0.5, rate: int = 8000, channels: int = 1) -> np.ndarray:
    """A vowel-like sound: a 140 Hz voice with two formant-like partials, faded in and out."""
    t = np.arange(int(seconds * rate)) / rate
    wave = sum(a * np.sin(2 * np.pi * f * t) for a, f in ((0.5, 140), (0.3, 700), (0.2, 1200)))
    wave *= np.hanning(len(t))
    return np.repeat(wave[:, None], channels, axis=1) if channels > 1 else wave


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("speech")
    paths = {"vowel": folder / "vowel.wav", "stereo_96k": folder / "stereo_96k.wav", "silence": folder / "silence.wav",
             "short": folder / "short.wav", "long": folder / "long.wav", "not_audio": folder / "notes.wav",
             "pcm24": folder / "pcm24.flac"}
    sf.write(paths["vowel"], word(), 8000, subtype="PCM_16")
    sf.write(paths["stereo_96k"], word(0.6, 96000, 2), 96000, subtype="PCM_16")
    sf.write(paths["pcm24"], word(0.6, 16000), 16000, subtype="PCM_24")
    sf.write(paths["silence"], np.zeros(8000), 8000, subtype="PCM_16")
    sf.write(paths["short"], word(0.05), 8000, subtype="PCM_16")
    sf.write(paths["long"], np.zeros(8000 * 600, np.int16), 8000, subtype="PCM_16")  # 10 minutes
    paths["not_audio"].write_text("these are my notes, not a recording")
    return paths


def test_recognise_gives_top3_picture_and_latency(service, files):
    top, picture, note = speech.recognise(service, str(files["vowel"]))
    assert len(top) == 3 and all(0 <= p <= 1 for p in top.values()) and sum(top.values()) <= 1 + 1e-5
    assert {label.removesuffix(UNSURE_MARK) for label in top} <= set(service.task.class_names_)
    assert picture.ndim == 3 and picture.shape[-1] == 3 and picture.shape[0] > 100
    assert "**Keras**" in note and "ms" in note
    # Gradio's file dict and a (rate, samples) pair (what an API caller may send) give the same answer
    again, _, _ = speech.recognise(service, {"path": str(files["vowel"])})
    pair, _, _ = speech.recognise(service, (8000, (word() * 32767).astype(np.int16)))
    assert list(again) == list(top) and list(pair)[0] == list(top)[0]


def test_odd_but_valid_recordings_are_answered(service, files):
    for name in ("stereo_96k", "pcm24"):
        top, picture, note = speech.recognise(service, str(files[name]))
        assert len(top) == 3 and picture.shape[-1] == 3


@pytest.mark.skipif(not RECORDINGS.is_dir(), reason="../shared/data/spoken_digits is absent")
def test_every_file_agrees_with_keras(service):
    path = RECORDINGS / "7_theo_3.wav"
    keras_top, _, _ = speech.recognise(service, str(path))
    assert list(keras_top)[0].removesuffix(UNSURE_MARK) == "7"  # "(unsure)": Keras also reads the feature distance
    files = service.backends()[1:]
    assert files, "the shipped model has TFLite files"
    for backend in files:
        top, _, note = speech.recognise(service, str(path), backend)
        assert list(top)[0].removesuffix(UNSURE_MARK) == "7" and backend in note


@pytest.mark.parametrize("case, message", [
    ("missing", "No recording received"),
    ("silence", "silent"),
    ("short", "too short"),
    ("long", "at most 60 s"),
    ("not_audio", "Could not decode notes.wav"),
])
def test_bad_recordings_are_one_message(service, files, case, message):
    audio = None if case == "missing" else str(files[case])
    with pytest.raises(gr.Error, match=message):
        speech.recognise(service, audio)
    # ...and the service keeps answering
    top, _, _ = speech.recognise(service, str(files["vowel"]))
    assert len(top) == 3


def test_bad_request_values(service, files):
    with pytest.raises(gr.Error, match="Unknown model file"):
        speech.recognise(service, str(files["vowel"]), "../model.keras")
    with pytest.raises(gr.Error, match="Unknown explanation method"):
        speech.explain_recording(service, str(files["vowel"]), "shap")
    with pytest.raises(gr.Error, match="not a file here"):
        speech.recognise(service, {"path": "/nonexistent/rec.wav"})
    with pytest.raises(gr.Error, match="sample rate"):
        speech.recognise(service, ("8000", [0.1, 0.2]))


def test_explanations(service, files):
    image, note = speech.explain_recording(service, str(files["vowel"]), "gradcam")
    assert image.ndim == 3 and "gradcam" in note and "Keras" in note
    tflite = service.backends()[-1]
    image, note = speech.explain_recording(service, str(files["vowel"]), "lime", tflite)
    assert image.shape[-1] == 3 and tflite in note
    _, note = speech.explain_recording(service, str(files["vowel"]), "occlusion", tflite)
    assert "needs the network" in note  # occlusion reads the Keras model's layers


def test_facts_and_clearing(service, tmp_path):
    facts = speech.model_facts(service)
    assert "model_int8.tflite" in facts and "8000 Hz" in facts
    assert "not available" in speech.model_facts(speech.SpeechService(tmp_path / "none"))
    assert speech.clear_outputs() == (None, None, "", None, "")
    with pytest.raises(gr.Error, match="not available"):
        speech.recognise(speech.SpeechService(tmp_path / "none"), "x.wav")


def test_launched_tab_through_gradio_client(service, files):
    from gradio_client import Client, handle_file

    from apps.common import guard_inputs

    demo = guard_inputs(speech.build_demo(SHIPPED))
    demo.queue(default_concurrency_limit=2)
    demo.launch(server_name="127.0.0.1", server_port=None, prevent_thread_lock=True, quiet=True,
                max_file_size="10mb", allowed_paths=[])
    try:
        client = Client(demo.local_url, verbose=False, ssl_verify=False)
        top, picture, note = client.predict(handle_file(str(files["vowel"])), "model_int8.tflite",
                                            api_name="/recognise")
        assert len(top["confidences"]) == 3 and "model_int8.tflite" in note
        with pytest.raises(Exception, match="Could not decode notes.wav"):
            client.predict(handle_file(str(files["not_audio"])), "Keras", api_name="/recognise")
        # ...and the server keeps serving.
        top, _, note = client.predict(handle_file(str(files["stereo_96k"])), "Keras", api_name="/recognise")
        assert len(top["confidences"]) == 3 and "Keras" in note
    finally:
        demo.close()
