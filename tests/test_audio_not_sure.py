"""The audio classifier's "not sure": calibrated inside ``fit`` on its validation recordings and
generated non-speech sounds; saved in the card and its feature file; read by ``predict``, the
TFLite runner (max probability alone) and the Speech tab. Real FSDD recordings of three digits."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from test_audio_pretrained import needs_weights

from toolkit.audio import AudioClassifier, AudioFormat
from toolkit.audio.calibrate import generated_sounds

RECORDINGS = Path(__file__).resolve().parents[2] / "shared" / "data" / "spoken_digits" / "recordings"
TRAIN, HELD = ("jackson", "nicolas", "yweweler"), "theo"
pytestmark = [needs_weights, pytest.mark.skipif(not RECORDINGS.is_dir(), reason=f"needs {RECORDINGS}")]


def files(speakers, digits=("0", "1", "2"), per=20) -> list[Path]:
    return [RECORDINGS / f"{d}_{s}_{i}.wav" for d in digits for s in speakers for i in range(per)]


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    paths = files(TRAIN, per=50)
    labels = [p.name.split("_")[0] for p in paths]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf = AudioClassifier(duration=1.0, epochs=40, copies=1, seed=0).fit((paths, labels))
    return clf, clf.save(tmp_path_factory.mktemp("not_sure") / "model")


def test_noise_and_tones_are_not_sure_a_new_speakers_words_mostly_are(model):
    clf, _ = model
    rule = clf.calibration_
    assert rule is not None and rule.uses_features and "feature_distance" in rule.checks()
    assert rule.report["measured_on"].startswith("held-out validation recordings")
    sounds = generated_sounds(clf.config.audio_format, n=10, seed=5)  # fit calibrated on seed 0
    for kind in ("white_noise", "hum", "sweeps"):
        answers = clf.assess(sounds[kind])
        assert np.mean([a["not_sure"] for a in answers]) >= 0.7, kind
        assert any((a["why"] or "").startswith("sounds unlike the training recordings") for a in answers), kind
    held = files([HELD], per=10)
    answers = clf.assess(held)
    assert np.mean([a["label"] == p.name[0] for a, p in zip(answers, held)]) >= 0.9
    assert np.mean([a["not_sure"] for a in answers]) <= 0.25  # a new voice saying known words


def test_the_rule_survives_save_and_load_and_a_tflite_file_checks_max_probability(model):
    clf, directory = model
    card = json.loads((directory / "card.json").read_text())
    assert card["calibration"]["feature_reference_file"] == "ood_features.npz"
    assert (directory / "ood_features.npz").is_file()
    loaded = AudioClassifier.load(directory)
    noise = generated_sounds(AudioFormat(8000, 1.0), n=4, seed=9)["white_noise"]
    assert [a["not_sure"] for a in loaded.assess(noise)] == [a["not_sure"] for a in clf.assess(noise)]
    batch = clf.prepare(noise)
    rows = clf.calibration_.assess(batch, clf.probabilities(batch))  # no features: the .tflite files' rule
    assert all(r["checked"] == ["max_probability"] for r in rows)


def test_the_speech_tab_marks_an_unsure_answer(model, tmp_path):
    import soundfile as sf

    from apps.speech import SpeechService, recognise

    _, directory = model
    service = SpeechService(str(directory))
    path = tmp_path / "hum.wav"
    sf.write(path, generated_sounds(AudioFormat(8000, 1.0), n=1, seed=3)["white_noise"][0], 8000)
    top, _, note = recognise(service, str(path))
    assert all(label.endswith("(unsure)") for label in top) and "Not sure: this recording sounds unlike" in note
    top, _, note = recognise(service, str(RECORDINGS / f"1_{TRAIN[0]}_30.wav"))
    assert "Not sure" not in note and max(top, key=top.get) == "1"
