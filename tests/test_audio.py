"""Audio classifier: decoding and preparing recordings (and every kind of bad input), speaker
splits, and train -> predict -> evaluate -> export -> explain through the CLI on tiny tones."""

from __future__ import annotations

import dataclasses
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from conftest import SHARED_DATA, one_error_line, quiet_main, run

sf = pytest.importorskip("soundfile")

from toolkit.audio import (AudioClassifier, AudioFormat, decode, group_split, load_audio, load_audio_folder,  # noqa: E402
                           predict_waveform, prepare_waveform)
from toolkit.errors import DataError  # noqa: E402

RATE = 8000
FREQS = {"low": 300.0, "mid": 900.0, "high": 2200.0}
FSDD = SHARED_DATA / "spoken_digits" / "recordings"
TINY = ["--backbone", "scratch", "--filters", "4", "8", "--n-mels", "16", "--duration", "0.5", "--epochs", "10", "--learning-rate", "0.01", "--verbose", "0",
        "--batch-size", "8"]


def tone(freq: float, seconds: float = 0.4, rate: int = RATE, seed: int = 0, amplitude: float = 0.3) -> np.ndarray:
    """A tone with a fade in/out and a little noise: 'a word' whose class is its pitch."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    freq = freq * rng.uniform(0.95, 1.05)
    envelope = np.sin(np.pi * t / t[-1]) ** 2
    return (amplitude * envelope * np.sin(2 * np.pi * freq * t) + 0.005 * rng.standard_normal(len(t))).astype("float32")


def write_tones(folder, per_speaker: int = 4, speakers=("ann", "bob", "cid")):
    """FSDD-style names: {label}_{speaker}_{index}.wav, with silence around each tone."""
    folder.mkdir(parents=True, exist_ok=True)
    seed = 0
    for label, freq in FREQS.items():
        for speaker in speakers:
            for i in range(per_speaker):
                seed += 1
                wave = np.concatenate([np.zeros(800, "float32"), tone(freq, seed=seed), np.zeros(1200, "float32")])
                sf.write(folder / f"{label}_{speaker}_{i}.wav", wave, RATE, subtype="PCM_16")
    return folder


@pytest.fixture(scope="module")
def tones_dir(tmp_path_factory):
    return write_tones(tmp_path_factory.mktemp("tones") / "recordings")


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tones_dir):
    out = tmp_path_factory.mktemp("speech") / "model"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        code, text = quiet_main("train", "audio_classifier", "--data", tones_dir, "--label-from-name", r"^([a-z]+)_",
                                "--group-from-name", r"^[a-z]+_([a-z]+)_", "--test-groups", "cid", "--out", out,
                                "--seed", "0", *TINY)
    assert code == 0, text
    return out, json.loads(text)


# ---------------------------------------------------------------------------- preparing recordings


def test_prepare_trims_centres_and_normalises():
    fmt = AudioFormat(RATE, 0.5)
    wave = np.concatenate([np.zeros(3000, "float32"), tone(900, 0.3, amplitude=0.02), np.zeros(200, "float32")])
    out = prepare_waveform(wave, RATE, fmt)
    assert out.shape == (4000,) and out.dtype == np.float32
    energy = out.reshape(10, 400).std(axis=1)
    assert energy[4:6].min() > 10 * energy[[0, -1]].max()  # the tone sits in the middle, silence at the ends
    voiced = out[np.abs(out) > 0.01 * np.abs(out).max()]
    assert np.isclose(20 * np.log10(np.sqrt(np.mean(voiced ** 2))), -14, atol=1.0)  # loudness normalised
    long = prepare_waveform(np.concatenate([tone(300, 2.0), tone(2200, 0.3, amplitude=0.9)]), RATE, fmt)
    assert long.shape == (4000,)  # cut to the loudest stretch


@pytest.mark.parametrize("subtype, channels, rate", [("PCM_U8", 1, RATE), ("PCM_24", 1, RATE), ("PCM_16", 2, RATE),
                                                     ("PCM_16", 1, 96000), ("FLOAT", 1, 44100)])
def test_formats_decode_to_the_same_input(tmp_path, subtype, channels, rate):
    """8-bit, 24-bit, stereo, 96 kHz and 44.1 kHz float: the same 8 kHz mono model input."""
    reference = tone(900, 0.4, rate=rate, seed=3)
    data = np.stack([reference] * channels, axis=1) if channels > 1 else reference
    path = tmp_path / "x.wav"
    sf.write(path, data, rate, subtype=subtype)
    got = load_audio(path, AudioFormat(RATE, 0.5))
    expected = prepare_waveform(reference, rate, AudioFormat(RATE, 0.5))
    assert got.shape == (4000,) and np.abs(got).max() <= 1
    spectrum = lambda w: np.abs(np.fft.rfft(w))  # noqa: E731  (trimming may shift by a few samples)
    assert np.corrcoef(spectrum(got), spectrum(expected))[0, 1] > 0.98


@pytest.mark.parametrize("fmt", ["FLAC", "OGG", "MP3"])
def test_compressed_formats(tmp_path, fmt):
    if fmt not in sf.available_formats():
        pytest.skip(f"libsndfile {sf.__libsndfile_version__} has no {fmt}")
    path = tmp_path / f"x.{fmt.lower()}"
    sf.write(path, tone(900, 0.5, seed=1), RATE if fmt != "MP3" else 16000, format=fmt) if fmt != "MP3" else \
        sf.write(path, tone(900, 0.5, rate=16000, seed=1), 16000, format=fmt)
    assert load_audio(path).shape == (8000,)


def test_silence(tmp_path):
    sf.write(tmp_path / "quiet.wav", np.zeros(4000, "float32"), RATE)
    with pytest.raises(DataError, match="quiet.wav is silent"):
        load_audio(tmp_path / "quiet.wav")


def test_too_short(tmp_path):
    sf.write(tmp_path / "blip.wav", tone(900, 0.05), RATE)
    with pytest.raises(DataError, match=r"blip.wav is too short: 0.050 s. Expected at least 0.1 s"):
        load_audio(tmp_path / "blip.wav")


def test_ten_minutes_refused_before_decoding(tmp_path):
    sf.write(tmp_path / "lecture.wav", np.zeros(600 * RATE, "int16"), RATE, subtype="PCM_16")
    with pytest.raises(DataError, match=r"at most 60 s\). Received lecture.wav: 600.0 s"):
        load_audio(tmp_path / "lecture.wav")


def test_clipping_warns_and_still_works(tmp_path):
    sf.write(tmp_path / "loud.wav", np.clip(tone(300, 0.5, amplitude=5.0), -1, 1), RATE)
    with pytest.warns(UserWarning, match="loud.wav is clipped"):
        out = load_audio(tmp_path / "loud.wav")
    assert np.abs(out).max() <= 1.0


def test_not_audio(tmp_path):
    (tmp_path / "photo.wav").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(200))
    with pytest.raises(DataError, match="Could not decode photo.wav as audio"):
        decode(tmp_path / "photo.wav")


def test_mp3_without_a_decoder(tmp_path, monkeypatch):
    (tmp_path / "word.mp3").write_bytes(b"ID3" + bytes(100))
    monkeypatch.setattr(sf, "available_formats", lambda: {"WAV": "", "FLAC": ""})
    with pytest.raises(DataError, match="word.mp3: the installed libsndfile .* has no MP3 decoder. Convert"):
        decode(tmp_path / "word.mp3")


def test_without_soundfile(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "soundfile", None)
    with pytest.raises(DataError, match="pip install soundfile"):
        decode(tmp_path / "x.wav")


@pytest.mark.parametrize("wave, rate, match", [
    (np.zeros((0,), "float32"), RATE, "shape"), (np.full(4000, np.nan, "float32"), RATE, "NaN"),
    (tone(900), 0, "sample rate"), (tone(900), "fast", "sample rate")])
def test_bad_arrays(wave, rate, match):
    with pytest.raises(DataError, match=match):
        prepare_waveform(wave, rate)


def test_microphone_int16_and_channels_first():
    wave = tone(900, 0.5, seed=2)
    as_int = (wave * 32767).astype("int16")
    a = prepare_waveform(wave, RATE)
    assert np.corrcoef(prepare_waveform(as_int, RATE), a)[0, 1] > 0.999
    assert np.corrcoef(prepare_waveform(np.stack([wave, wave]), RATE), a)[0, 1] > 0.999


# ---------------------------------------------------------------------------- folders and splits


def test_folder_labels_groups_and_a_bad_file(tmp_path):
    folder = write_tones(tmp_path / "rec", per_speaker=2)
    (folder / "low_ann_9.wav").write_bytes(b"not audio")
    with pytest.warns(UserWarning, match=r"Skipped 1 of 19 files .*low_ann_9.wav"):
        data = load_audio_folder(folder, AudioFormat(RATE, 0.5), r"^([a-z]+)_", r"^[a-z]+_([a-z]+)_")
    assert data.class_names == ["high", "low", "mid"] and len(data) == 18 and data.x.shape == (18, 4000)
    train, test = group_split(data, 0.34, seed=0)
    assert set(data.groups[train]).isdisjoint(data.groups[test]) and len(set(data.groups[test])) == 1
    train, test = group_split(data, 0.2, test_groups=["bob"])
    assert set(data.groups[test]) == {"bob"} and "bob" not in set(data.groups[train])
    with pytest.raises(DataError, match=r"Unknown test groups \['zed'\]"):
        group_split(data, 0.2, test_groups=["zed"])
    with pytest.raises(DataError, match="does not match the file name"):
        load_audio_folder(folder, label_from_name=r"^(\d+)_")
    with pytest.raises(DataError, match="capturing group"):
        load_audio_folder(folder, label_from_name=r"^\d+_")


def test_subfolders_per_class(tmp_path):
    for label, freq in FREQS.items():
        (tmp_path / label).mkdir()
        for i in range(2):
            sf.write(tmp_path / label / f"{i}.flac", tone(freq, seed=i), RATE, format="FLAC")
    data = load_audio_folder(tmp_path, AudioFormat(RATE, 0.5))
    assert data.class_names == sorted(FREQS) and data.groups is None and len(data) == 6
    with pytest.raises(DataError, match="Expected audio files"):
        load_audio_folder(tmp_path / "low" / "..", AudioFormat(RATE, 0.5), label_from_name=r"^(x)")


@pytest.mark.skipif(not FSDD.is_dir(), reason="../shared/data/spoken_digits is absent")
def test_fsdd_names_give_digits_and_speakers():
    from toolkit.audio import list_audio_files

    files, labels, groups = list_audio_files(FSDD, r"^(\d+)_", r"^\d+_([a-z]+)_")
    assert len(files) == 2500 and sorted(set(labels)) == [str(d) for d in range(10)]
    assert sorted(set(groups)) == ["george", "jackson", "nicolas", "theo", "yweweler"]


# ---------------------------------------------------------------------------- train, predict, evaluate, export


def test_train_holds_out_the_speaker(trained):
    out, summary = trained
    card = json.loads((out / "card.json").read_text())
    assert card["task"] == "audio_classifier" and card["data"]["test_groups"] == ["cid"]
    assert card["input"]["shape"] == [4000] and card["input"]["sample_rate"] == RATE
    assert card["labels"] == ["high", "low", "mid"] and summary["metrics"]["test_accuracy"] >= 0.9  # pitch: easy
    assert (out / "confusion_matrix.png").is_file()


def test_predict_evaluate_explain_cli(trained, tones_dir, tmp_path, capsys):
    out, _ = trained
    code, text, err = run(capsys, "predict", out, "--audio", tones_dir / "low_cid_0.wav", tones_dir / "high_cid_1.wav",
                          "--top-k", "2")
    assert code == 0, err
    rows = json.loads(text)
    assert [len(r["top_k"]) for r in rows] == [2, 2] and rows[0]["audio"].endswith("low_cid_0.wav")
    assert abs(sum(p["probability"] for p in rows[0]["top_k"])) <= 1.0 + 1e-5
    code, text, err = run(capsys, "evaluate", out, "--data", tones_dir, "--out", tmp_path / "ev")
    assert code == 0, err
    report = json.loads(text)
    assert np.array(report["confusion_matrix"]).sum() == 36 and set(report["per_class"]) == set(FREQS)
    code, text, err = run(capsys, "explain", out, "--audio", tones_dir / "mid_ann_0.wav", "--out", tmp_path / "why.png")
    assert code == 0, err and (tmp_path / "why.png").stat().st_size > 1000
    assert json.loads(text)["method"] == "occlusion"
    (tmp_path / "bad.wav").write_bytes(b"nope")
    code, _, err = run(capsys, "predict", out, "--audio", tmp_path / "bad.wav")
    assert one_error_line(code, err) and "Could not decode bad.wav" in err


def test_export_builtin_ops_int8_float16(trained, tones_dir, capsys):
    out, _ = trained
    code, text, err = run(capsys, "export", out, "--quantization", "float32", "float16", "int8")
    assert code == 0, err
    entries = {e["quantization"]: e for e in json.loads(text)}
    for name, entry in entries.items():
        assert not [op for op in entry["ops"] if "FLEX" in op.upper() or op == "CUSTOM"], entry["ops"]
        assert entry["n_test"] == 12 and entry["agreement_with_keras"] >= (1.0 if name != "int8" else 0.9), entry
    assert entries["int8"]["input"]["dtype"] == "float32" and entries["int8"]["size_bytes"] < 1_000_000
    assert {"CONV_2D", "LOG", "FULLY_CONNECTED", "QUANTIZE", "DEQUANTIZE"} <= set(entries["int8"]["ops"])
    from ai_edge_litert.interpreter import Interpreter

    # the front end float, the conv net int8 (selective quantization)
    details = Interpreter(model_path=str(Path(out) / "model_int8.tflite")).get_tensor_details()
    int8 = {d["name"] for d in details if d["dtype"] == np.int8}
    assert any("conv" in name for name in int8) and not any("logmel" in name for name in int8), sorted(int8)[:5]
    code, text, err = run(capsys, "predict", out, "--audio", tones_dir / "low_cid_0.wav", "--tflite",
                          "model_int8.tflite")
    assert code == 0, err and json.loads(text)[0]["label"] in FREQS


def test_export_checks_score_the_recordings_evaluate_scores(trained, tmp_path, monkeypatch):
    """The test recordings are prepared already: preparing them again would trim and centre them
    again (not the identity), so the file's accuracy would not be comparable with evaluate's."""
    clf = AudioClassifier.load(trained[0])
    data = clf.reload_data()
    keras_accuracy = clf.evaluate(data.test)["accuracy"]
    directory = clf.save(tmp_path / "copy")
    monkeypatch.setattr(AudioClassifier, "_prepare", lambda self, x: pytest.fail("the export check prepared twice"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        path = clf.export(directory, quantization="float32", data=data)
    entry = next(e for e in clf.tflite_ if e["file"] == path.name)
    assert entry["test_accuracy"] == keras_accuracy and entry["agreement_with_keras"] == 1.0, entry


def test_python_api_demo_functions(trained):
    from toolkit.audio import explanation_image, spectrogram_figure

    clf = AudioClassifier.load(trained[0])
    wave = (tone(2200, 0.4, rate=16000, seed=9) * 32767).astype("int16")  # a microphone: int16 at 16 kHz
    result = predict_waveform(clf, wave, 16000, k=3)
    assert [r["label"] for r in result["top_k"]] and len(result["top_k"]) == 3 and result["ms"] > 0
    lite = AudioClassifier.open_tflite(trained[0] / "model_float32.tflite") if (
        trained[0] / "model_float32.tflite").is_file() else None
    if lite is not None:
        assert predict_waveform(lite, wave, 16000)["label"] == result["label"]
    assert spectrogram_figure(clf, wave, 16000).ndim == 3
    image, summary = explanation_image(clf, wave, 16000, method="gradcam")
    assert image.dtype == np.uint8 and summary["method"] == "gradcam"
    explanation = clf.explain((wave, 16000))
    assert explanation.attributions.shape == clf.spectrogram((wave, 16000)).shape
    with pytest.raises(DataError, match="silent"):
        predict_waveform(clf, np.zeros(8000, "int16"), 16000)


def test_occlusion_finds_the_tone():
    """A model that knows the tones: occlusion's mass sits on the tone's mel bands, not elsewhere."""
    from toolkit.audio import AudioData

    fmt = AudioFormat(RATE, 0.5)
    x = np.stack([prepare_waveform(tone(f, seed=i), RATE, fmt) for i in range(20) for f in FREQS.values()])
    y = np.tile(np.arange(3), 20)
    clf = AudioClassifier(backbone="scratch", filters=(4, 8), n_mels=16, duration=0.5, epochs=12, augment=False, batch_size=8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf.fit(AudioData(x, y, list(FREQS)))
    assert clf.evaluate(AudioData(x, y, list(FREQS)))["accuracy"] == 1.0
    explanation = clf.explain(x[2], target="high", budget=4)
    spec = clf.spectrogram(x[2])
    band = spec.mean(axis=0).argmax()  # the tone's mel band
    weight = np.abs(explanation.attributions).sum(axis=0)
    near = weight[max(0, band - 2): band + 3].sum()
    assert near > 0.5 * weight.sum(), (band, weight.round(3))


def _shipped():
    from conftest import REPO

    directory = REPO / "saved_models" / "audio" / "spoken_digits"
    if not (directory / "card.json").is_file():
        pytest.skip(f"{directory} is missing; run `make models`")
    return directory, json.loads((directory / "card.json").read_text())


def test_shipped_spoken_digits_model():
    from toolkit.storage import sha256_file

    directory, card = _shipped()
    assert card["command"].startswith("toolkit train audio_classifier") and card["labels"] == [str(d) for d in range(10)]
    assert card["input"]["sample_rate"] == 8000 and card["input"]["shape"] == [8000]
    files = {e["quantization"]: e for e in card["tflite"]}
    assert {"float32", "int8"} <= set(files) and files["int8"]["size_bytes"] <= 1_000_000
    for entry in files.values():
        assert sha256_file(directory / entry["file"]) == entry["sha256"]
        assert not [op for op in entry["ops"] if "FLEX" in op.upper()]
    for path in directory.iterdir():
        assert path.stat().st_size < 5 * 1024 * 1024, path
    if FSDD.is_dir():  # a recording it was trained on: the file and the Keras model say the same
        clf = AudioClassifier.load(directory)
        lite = AudioClassifier.open_tflite(directory / "model_int8.tflite")
        files7 = sorted(FSDD.glob("7_*_1*.wav"))[:6]
        assert list(lite.predict(files7)) == list(clf.predict(files7))


def test_lime_on_time_segments_weighs_the_sound_not_the_silence(trained):
    clf = AudioClassifier.load(trained[0])
    x = prepare_waveform(tone(2200, 0.4, seed=5), RATE, AudioFormat(RATE, 0.5))  # tone in 0.05-0.45 s
    explanation = clf.explain(x, method="lime", target="high", budget=200)
    weights = explanation.attributions[:, 0]  # one weight per frame, the same over the mel bands
    assert explanation.attributions.shape == clf.spectrogram(x).shape and explanation.summary()["evaluations"] == 200
    assert weights[len(weights) // 4 : 3 * len(weights) // 4].mean() > np.r_[weights[:2], weights[-2:]].mean()


# ---------------------------------------------------------------------------- training recipe parts


def test_speed_perturbation_moves_the_pitch_and_only_while_training():
    import keras

    from toolkit.audio.layers import WaveAugment

    t = np.arange(RATE) / RATE
    wave = (0.3 * np.sin(2 * np.pi * 1000 * t)).astype("float32")
    batch = np.repeat(wave[None], 32, axis=0)
    layer = WaveAugment(shift=0.0, gain_db=0.0, noise=0.0, speed=0.2, seed=1)
    assert np.array_equal(np.asarray(layer(keras.ops.convert_to_tensor(batch), training=False)), batch)
    out = np.asarray(layer(keras.ops.convert_to_tensor(batch), training=True))
    middle = out[:, 2000:6000] * np.hanning(4000)  # inside the clip at any factor
    peaks = np.argmax(np.abs(np.fft.rfft(middle, axis=1)), axis=1) * RATE / 4000
    assert peaks.min() >= 790 and peaks.max() <= 1210 and peaks.max() - peaks.min() > 150, peaks
    assert WaveAugment.from_config(layer.get_config()).speed == 0.2


def test_playback_speed_moves_the_pitch_at_a_fixed_factor():
    from toolkit.audio.layers import PlaybackSpeed

    t = np.arange(RATE) / RATE
    wave = (0.3 * np.sin(2 * np.pi * 1000 * t)).astype("float32")[None]
    assert np.allclose(np.asarray(PlaybackSpeed(1.0)(wave)), wave, atol=1e-6)
    for factor in (0.9, 1.1):
        out = np.asarray(PlaybackSpeed(factor)(wave))[0]
        middle = out[2000:6000] * np.hanning(4000)
        peak = np.argmax(np.abs(np.fft.rfft(middle))) * RATE / 4000
        assert abs(peak - 1000 * factor) <= 3, (factor, peak)
        edge = int(RATE * (1 - 1 / factor) / 2) if factor > 1 else 0  # played faster: silence beyond the ends
        assert factor < 1 or (np.abs(out[: edge - 2]).max() == 0 and np.abs(out[-edge + 2 :]).max() == 0)
    assert PlaybackSpeed.from_config(PlaybackSpeed(1.1).get_config()).factor == 1.1


def test_test_speeds_average_the_same_head_inside_the_model():
    from toolkit.audio import AudioClassifierConfig
    from toolkit.audio.layers import PlaybackSpeed

    with pytest.raises(ValueError, match="test_speeds"):
        AudioClassifierConfig(test_speeds=(0.9, 3.0))
    clf = AudioClassifier(backbone="scratch", filters=(4, 8), n_mels=16, duration=0.5, test_speeds=(0.9, 1, 1.1))
    assert clf.config.test_speeds == (0.9, 1.0, 1.1)
    model = clf._build_model(3)
    wrapped = clf._inference_model(model)
    assert {"speed_0", "speed_2", "speed_average", "logmel", "head"} <= {layer.name for layer in wrapped.layers}
    x = np.random.default_rng(0).normal(0, 0.1, (2, 4000)).astype("float32")
    head, frontend = model.get_layer("head"), model.get_layer("logmel")
    expected = np.mean([np.asarray(head(frontend(PlaybackSpeed(f)(x)))) for f in (0.9, 1.0, 1.1)], axis=0)
    assert np.allclose(np.asarray(wrapped(x)), expected, atol=1e-5)
    assert not np.allclose(expected, np.asarray(head(frontend(x))), atol=1e-4)
    for off in ((1.0,), ()):
        clf.config = dataclasses.replace(clf.config, test_speeds=off)
        assert clf._inference_model(model) is model


def test_members_train_apart_and_average_inside_one_model(tones_dir, trained, tmp_path):
    import keras

    from toolkit.audio.network import averaged_head, member_loss

    with pytest.raises(ValueError, match="members"):
        AudioClassifier(members=0)
    clf = AudioClassifier(backbone="scratch", filters=(4, 8), n_mels=16, duration=0.5, members=3, test_speeds=())
    head = clf._build_model(3).get_layer("head")
    x = np.random.default_rng(0).normal(0, 1, (2, 30, 16, 1)).astype("float32")
    stacked = np.asarray(head(x))
    assert stacked.shape == (2, 3, 3) and not np.allclose(stacked[:, 0], stacked[:, 1], atol=1e-4)  # own weights each
    assert {"conv1", "relu1", "predictions", "m1_conv1", "m2_predictions"} <= {layer.name for layer in head.layers}
    assert np.allclose(np.asarray(averaged_head(head)(x)), stacked.mean(1), atol=1e-6)
    y = np.eye(3, dtype="float32")[[0, 2]]
    expected = np.mean([np.asarray(keras.losses.categorical_crossentropy(y, stacked[:, k])) for k in range(3)], axis=0)
    assert np.allclose(np.asarray(member_loss(y, stacked)), expected, atol=1e-5)  # each member its own loss
    # trained: one saved model that answers the members' average; transfer from a one-net base seeds every member
    base = AudioClassifier.load(trained[0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf = AudioClassifier(backbone="scratch", filters=(4, 8), n_mels=16, duration=0.5, members=2, epochs=2, batch_size=8,
                              label_from_name=r"^([a-z]+)_", transfer_from=str(trained[0]), freeze_base=True).fit(tones_dir)
    head = clf.model_.get_layer("head")
    assert head.get_layer("member_average") is not None and len(clf.history_["accuracy"]) == 2
    assert np.allclose(head.get_layer("m1_conv1").get_weights()[0], base.model_.get_layer("head").get_layer("conv1").get_weights()[0])
    again = AudioClassifier.load(clf.save(tmp_path / "ensemble"))
    wave = tone(900.0)
    assert np.allclose(again.probabilities(again.prepare(wave)), clf.probabilities(clf.prepare(wave)), atol=1e-5)
    assert again.explain(wave, method="gradcam").attributions.shape == (30, 16)


def test_mixup_blends_recordings_and_labels_alike():
    from toolkit.audio.network import training_batches as _training_batches

    levels = np.array([0.1, 0.5, 0.9], "float32")
    y = np.eye(3, dtype="float32")[np.arange(30) % 3]
    x = np.repeat(levels[np.arange(30) % 3][:, None], 16, axis=1)  # each class a constant level
    mixed = [(np.asarray(a), np.asarray(b)) for a, b in _training_batches(x, y, 10, 0.4, seed=0)]
    waves, labels = np.concatenate([m[0] for m in mixed]), np.concatenate([m[1] for m in mixed])
    assert waves.shape == (30, 16) and np.allclose(labels.sum(1), 1.0, atol=1e-5)
    assert np.allclose(waves[:, 0], labels @ levels, atol=1e-5)  # the same weight on the waves and the labels
    assert (labels.max(1) < 0.99).sum() >= 5  # blends, not just the originals
    plain = np.concatenate([np.asarray(b) for _, b in _training_batches(x, y, 10, 0.0, seed=0)])
    assert sorted(plain.max(1).tolist()) == [1.0] * 30


def test_recipe_settings_are_checked_and_build():
    from toolkit.audio import AudioClassifierConfig

    for bad in ({"speed": 1.0}, {"mixup": -1}, {"label_smoothing": 1.0}, {"schedule": "step"}, {"convs_per_block": 0},
                {"normalization": "pcen"}):
        with pytest.raises(ValueError):
            AudioClassifierConfig(**bad)
    clf = AudioClassifier(backbone="scratch", filters=(4, 8), n_mels=16, duration=0.5, convs_per_block=2, pooling="average")
    model = clf._build_model(3)
    names = [layer.name for layer in model.get_layer("head").layers]
    assert {"conv0_0", "conv0", "conv1_0", "conv1", "relu1", "gap"} <= set(names)


def test_band_normalization_mean_and_variance():
    from toolkit.audio.layers import BandNormalization

    rng = np.random.default_rng(0)
    spec = (rng.normal(2.0, 1.0, (3, 20, 8, 1)) * np.array([1.0, 3.0, 0.2])[:, None, None, None]).astype("float32")
    centred = np.asarray(BandNormalization()(spec))
    assert np.allclose(centred.mean(axis=1), 0, atol=1e-5) and not np.allclose(centred.std(axis=(1, 2, 3)), 1, atol=0.1)
    scaled = np.asarray(BandNormalization(scale=True)(spec))
    assert np.allclose(scaled.mean(axis=1), 0, atol=1e-5) and np.allclose(scaled.std(axis=(1, 2, 3)), 1, atol=0.02)  # epsilon 1e-3
    assert BandNormalization.from_config(BandNormalization(scale=True).get_config()).scale
    names = {layer.name: layer for layer in AudioClassifier(backbone="scratch", filters=(4,), n_mels=16, duration=0.5,
                                                            normalization="meanvar")._build_model(3).get_layer("head").layers}
    assert names["band_norm"].scale


def test_logmel_magnitude_is_alpha_max_plus_beta_min():
    from toolkit.audio.layers import LogMelSpectrogram, dft_kernel

    wave = np.random.default_rng(1).normal(0, 0.1, (1, 4000)).astype("float32")
    layer = LogMelSpectrogram(RATE, 256, 128, 16, floor=1.0)
    out = np.asarray(layer(wave))[0, ..., 0]
    frames = np.lib.stride_tricks.sliding_window_view(wave[0], 256)[::128]
    spectrum = frames @ dft_kernel(256)[:, 0, :]
    a, b = np.abs(spectrum[:, :129]), np.abs(spectrum[:, 129:])
    expected = np.log((0.96 * np.maximum(a, b) + 0.4 * np.minimum(a, b)) @ layer.mel.numpy() + 1.0)
    assert np.allclose(out, expected, atol=1e-4)
    true = np.log(np.hypot(a, b) @ layer.mel.numpy() + 1.0)  # within the estimate's 4%
    assert np.all(np.abs(np.expm1(out) / np.expm1(true) - 1) < 0.05)


def test_test_size_zero_trains_on_every_speaker():
    from toolkit.cli_args import build_parser

    parser = build_parser()
    args = parser.parse_args(["train", "audio_classifier", "--data", "d", "--out", "o", "--test-size", "0"])
    assert args.test_size == 0  # the shipped model's make models line
    with pytest.raises(SystemExit):
        parser.parse_args(["train", "audio_classifier", "--data", "d", "--out", "o", "--test-size", "1"])


def test_quick_picture_draws_the_wave_and_where_the_energy_is():
    from toolkit.audio.explain import quick_picture

    wave = np.zeros(8000, "float32")
    wave[4000:6000] = tone(900, 0.25)
    spec = np.zeros((61, 40), "float32")
    spec[30:45, :10] = 5.0  # energy in the second half, low bands
    picture = quick_picture(spec, wave, width=300, wave_height=50, spec_height=80)
    assert picture.shape == (50 + 4 + 80, 300, 3) and picture.dtype == np.uint8
    upper, lower = picture[:50].mean(-1), picture[54:].mean(-1)
    ink = (upper < 128).sum(0)  # inked pixels per column: a centre line in silence, the swing where the tone is
    assert ink[:100].max() <= 1 and ink[160:220].mean() > 10
    assert lower[-20:, 150:210].mean() > 3 * lower[:20, 150:210].mean() + 1  # bright at the bottom (low bands)
    assert lower[-20:, :100].mean() < 5  # silence is dark
