"""Make your own: checked examples, the task's own recipe, a checked phone file in a zip, zips read
safely, sessions kept apart. Tiny images and a stand-in "pretrained" backbone (mobilenet_v3_small
at 32x32 with fixed random weights: the `fake_pretrained` fixture of conftest.py) keep it fast; the real timings
and accuracies are in benchmarks/make_your_own.py."""

from __future__ import annotations

import json
import os
import threading
import time
import zipfile

import numpy as np
import pytest
from conftest import write_image

from toolkit import make_your_own as mine
from toolkit.errors import DataError
from toolkit.make_your_own import TrainingCancelled, check_examples, images_from_zip, load_model_zip

FAST = {"image_size": (32, 32), "epochs": 3, "augment_passes": 0, "patience": 2}


def photos(folder, n=6, seed=0):
    """Two visibly different classes of small RGB images (red-ish and blue-ish), as files."""
    rng = np.random.default_rng(seed)
    out = {}
    for name, channel in (("red", 0), ("blue", 2)):
        files = []
        for i in range(n):
            image = rng.integers(0, 80, (36, 40, 3))
            image[..., channel] += 170
            files.append(write_image(folder / name / f"{name}{i}.png", image))
        out[name] = files
    return out


SENTENCES = {
    "happy": ["what a great day", "I love this phone", "wonderful service, thanks", "great food and great people",
              "this is excellent", "so happy with it", "love it, works great"],
    "sad": ["this is terrible", "I hate the battery", "awful service", "the worst food ever", "broken after a day",
            "very bad, do not buy", "terrible and awful"],
}


# ---------------------------------------------------------------------- bad examples


@pytest.mark.parametrize("examples, words", [
    ({"cat": ["a"] * 5}, "at least 2 classes"),
    ({}, "at least 2 classes"),
    ({"cat": ["a"] * 5, "dog": []}, "'dog' has no examples"),
    ({"cat": ["a"] * 5, "dog": ["b"]}, "'dog' has 1 example."),
    ({"Cat": ["a"] * 5, " cat  ": ["b"] * 5}, "same name"),
    ({"cat": ["a"] * 5, "": ["b"] * 5}, "empty class name"),
    ({"cat": ["a"] * 5, "../up": ["b"] * 5}, "without / or \\"),
    ({"cat": ["a"] * 5, ".hidden": ["b"] * 5}, "not starting with '.'"),
    ({"cat": ["a"] * 5, "dog": ["b"] * 4 + ["   "]}, "sentence 5 is empty"),
    ({"cat": ["a"] * 5, "dog": ["b"] * 4 + ["x" * 2000]}, "at most 1000"),
    ({"cat": ["a"] * 5, "dog": ["b"] * 501}, "at most 500 per class"),
])
def test_bad_text_examples_are_refused_with_a_clear_message(examples, words):
    with pytest.raises(DataError, match="Expected") as info:
        check_examples("text", examples)
    assert words in str(info.value)


def test_bad_image_examples_are_refused_with_a_clear_message(tmp_path, monkeypatch):
    good = photos(tmp_path)
    note = tmp_path / "notes.png"
    note.write_text("not an image")
    with pytest.raises(DataError, match="notes.png is not a readable image"):
        check_examples("image", {"red": good["red"], "blue": good["blue"][:4] + [note]})
    with pytest.raises(DataError, match="not a file"):
        check_examples("image", {"red": good["red"], "blue": good["blue"][:4] + [tmp_path / "gone.png"]})
    monkeypatch.setattr(mine, "MAX_IMAGE_BYTES", 100)
    with pytest.raises(DataError, match="at most 0 MB|Make it smaller"):
        check_examples("image", good)
    with pytest.raises(DataError, match="Expected the kind"):
        check_examples("video", good)
    with pytest.raises(DataError, match="expected a recording"):  # photos given as recordings
        check_examples("audio", good)
    with pytest.raises(DataError, match="image array"):
        check_examples("image", {"red": [np.zeros((3, 3, 3))] * 5, "blue": good["blue"]})


def test_checked_examples_keep_order_bytes_and_original_names(tmp_path):
    good = photos(tmp_path)
    checked = check_examples("image", good)
    assert list(checked) == ["red", "blue"]
    data, ending, original = checked["red"][0]
    assert ending == ".png" and original == "red0.png" and data == good["red"][0].read_bytes()
    assert check_examples("text", {" a  b ": ["x\ty"] * 5, "c": ["z"] * 5})["a b"][0] == "x y"


# ---------------------------------------------------------------------- zips


def make_zip(path, entries: dict, mode=None):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            info = zipfile.ZipInfo(name)
            if mode is not None:
                info.external_attr = mode << 16
            archive.writestr(info, data, zipfile.ZIP_DEFLATED)
    return path


def test_a_zip_of_one_class_gives_its_images(tmp_path):
    good = photos(tmp_path)
    flat = make_zip(tmp_path / "flat.zip", {f.name: f.read_bytes() for f in good["red"]} | {"__MACOSX/._x": b"x"})
    assert [name for _, name in images_from_zip(flat)] == [f.name for f in good["red"]]
    folder = make_zip(tmp_path / "folder.zip", {f"red/{f.name}": f.read_bytes() for f in good["red"]})
    assert len(images_from_zip(folder)) == 6


@pytest.mark.parametrize("entries, words", [
    ({"../evil.png": b"x"}, "outside its own folder"),
    ({"/etc/evil.png": b"x"}, "outside its own folder"),
    ({"a/../../evil.png": b"x"}, "outside its own folder"),
    ({"C:/evil.png": b"x"}, "outside its own folder"),
    ({"a/b/deep.png": b"x"}, "nested folders"),
    ({"top.png": b"x", "a/inner.png": b"x"}, "nested folders"),
    ({"readme.txt": b"hello"}, "is not a readable image"),
    ({}, "holds no files"),
])
def test_unsafe_or_wrong_zips_are_refused_before_anything_is_kept(tmp_path, entries, words):
    upload = make_zip(tmp_path / "up.zip", entries)
    with pytest.raises(DataError) as info:
        images_from_zip(upload)
    assert words in str(info.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["up.zip"]  # nothing written beside it


def test_links_ten_thousand_files_bombs_and_non_zips_are_refused(tmp_path, monkeypatch):
    link = make_zip(tmp_path / "link.zip", {"x.png": b"/etc/passwd"}, mode=0o120777)
    with pytest.raises(DataError, match="holds a link"):
        images_from_zip(link)
    many = make_zip(tmp_path / "many.zip", {f"{i}.png": b"" for i in range(10_000)})
    with pytest.raises(DataError, match="10,000 entries. Expected at most 500"):
        images_from_zip(many)
    monkeypatch.setattr(mine, "MAX_ZIP_BYTES", 1_000_000)
    bomb = make_zip(tmp_path / "bomb.zip", {"zeros.png": b"\0" * 2_000_000})
    assert bomb.stat().st_size < 10_000
    with pytest.raises(DataError, match="unpacks to 2 MB. Expected at most 0 MB; nothing was extracted"):
        images_from_zip(bomb)
    (tmp_path / "fake.zip").write_bytes(b"PK not really")
    with pytest.raises(DataError, match="not a readable zip"):
        images_from_zip(tmp_path / "fake.zip")


def test_a_model_zip_with_escaping_names_writes_nothing_outside(tmp_path):
    work = tmp_path / "session"
    for entries, words in (({"../card.json": b"{}"}, "outside its own folder"),
                           ({"sub/card.json": b"{}"}, "has folders"),
                           ({"we ird.json": b"{}"}, "Expected only the files of a model"),
                           ({"labels.txt": b"a\n"}, "has no card.json")):
        with pytest.raises(DataError, match=words):
            load_model_zip(make_zip(tmp_path / "m.zip", entries), work)
    outside = {p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if "session" not in p.parts}
    assert outside == {"m.zip"}


# ---------------------------------------------------------------------- training


def test_images_train_to_a_checked_int8_file_in_a_zip_that_loads_again(fake_pretrained, tmp_path):
    steps = []
    result = mine.train_from_examples("image", photos(tmp_path / "in"), tmp_path / "work",
                                      progress=lambda f, m: steps.append((f, m)), **FAST)
    assert result.class_names == ["blue", "red"]
    assert result.metrics["n_held_out"] == 2 and result.metrics["n_train"] == 10  # 1 of 6 per class held out
    assert result.metrics["held_out_accuracy"] in (0.0, 0.5, 1.0)
    assert result.confusion_matrix.shape == (2, 2) and result.confusion_matrix.sum() == 2
    assert len(result.wrong) == round(2 * (1 - result.metrics["held_out_accuracy"]))
    assert [f for f, _ in steps] == sorted(f for f, _ in steps) and steps[-1][0] == 1.0
    assert any("Training the head, epoch 1; validation accuracy" in m for _, m in steps)
    names = set(zipfile.ZipFile(result.zip_path).namelist())
    assert {"model_int8.tflite", "labels.txt", "card.json", "model.keras"} <= names
    card = json.loads(zipfile.ZipFile(result.zip_path).read("card.json"))
    entry = card["tflite"][0]
    assert entry["file"] == "model_int8.tflite" and entry["metadata"] is True and "latency_ms_p50" in entry
    assert 0 <= entry["agreement_with_keras"] <= 1 and entry["n_test"] == 2  # checked on the held-out photos
    assert zipfile.ZipFile(result.zip_path).read("labels.txt").decode().split() == ["blue", "red"]
    assert str(result.zip_path).startswith(str(tmp_path / "work"))

    task, folder = load_model_zip(result.zip_path, tmp_path / "again")
    image = np.full((36, 40, 3), 30, np.uint8)
    np.testing.assert_allclose(task.predict_proba(image), result.task.predict_proba(image), atol=1e-5)
    assert folder.parent == tmp_path / "again"


def test_cancel_stops_the_training_and_keeps_nothing(fake_pretrained, tmp_path):
    cancel = threading.Event()

    def progress(fraction, message):
        if message.startswith("Training the head"):
            cancel.set()

    with pytest.raises(TrainingCancelled, match="cancelled"):
        mine.train_from_examples("image", photos(tmp_path / "in"), tmp_path / "work", progress=progress,
                                 cancel=cancel, **FAST)
    assert list((tmp_path / "work").iterdir()) == []


def test_texts_train_with_the_tfidf_peer_on_the_same_held_out_sentences(tmp_path):
    result = mine.train_from_examples("text", SENTENCES, tmp_path / "work", encoder="fasttext", epochs=3)
    m = result.metrics
    assert m["n_held_out"] == 2 and 0 <= m["tfidf_held_out_accuracy"] <= 1 and 0 <= m["held_out_accuracy"] <= 1
    names = set(zipfile.ZipFile(result.zip_path).namelist())
    assert {"model_dynamic.tflite", "vocab.txt", "labels.txt", "card.json", "model.keras"} <= names
    assert result.tflite["agreement_with_keras"] >= 0.5


# ---------------------------------------------------------------------- sessions and the tab's handlers


def test_sessions_are_private_and_swept(tmp_path, monkeypatch):
    from apps import make_your_own as tab

    monkeypatch.setattr(mine, "sessions_root", lambda: tmp_path)
    one, two = tab.session(None), tab.session(None)
    assert one["folder"] != two["folder"] and oct(os.stat(one["folder"]).st_mode & 0o777) == "0o700"
    stolen = {**one, "model": two["folder"]}  # a model path outside the session's own folder
    with pytest.raises(DataError, match="No model yet"):
        tab.session_task(stolen)
    old = time.time() - 2 * mine.SESSION_MAX_AGE_S
    os.utime(two["folder"], (old, old))
    assert mine.sweep_sessions(tmp_path) == [tmp_path / os.path.basename(two["folder"])]
    tab.remove_session(one)
    assert list(tmp_path.iterdir()) == []


def test_page_rows_and_api_pairs_become_examples(tmp_path):
    from apps import make_your_own as tab

    examples = tab.collect("text", ["a", "", "b"], [None] * 3, [[]] * 3, ["x\ny\n\n", "", "z"])
    assert examples == {"a": ["x", "y"], "b": ["z"]}
    with pytest.raises(DataError, match="row 2 has examples but no name"):
        tab.collect("text", ["a", " "], [None] * 2, [[]] * 2, ["x", "y"])
    same = tab.collect("text", ["a", "a"], [None] * 2, [[]] * 2, ["x", "y"])
    with pytest.raises(DataError, match="same name"):
        check_examples("text", same)
    assert tab.pairs(["s1", "s2", "s3"], "pos, neg\npos", "sentence") == {"pos": ["s1", "s3"], "neg": ["s2"]}
    with pytest.raises(DataError, match="one label per sentence"):
        tab.pairs(["s1"], "a,b", "sentence")
    assert tab.cancel_training({"folder": str(tmp_path)}) == "Nothing to cancel."


# ---------------------------------------------------------------------- CSV, the phone file, the worker


def test_sentences_from_a_csv_and_clear_errors_for_bad_ones(tmp_path):
    from apps import make_your_own as tab

    good = tmp_path / "s.csv"
    good.write_text("text,label\n" + "".join(f'"{t}, really",{c}\n' for c, ts in SENTENCES.items() for t in ts))
    got = mine.sentences_from_csv(good)
    assert got["happy"][0] == "what a great day, really" and len(got["sad"]) == 7
    rows = tab.collect("text", ["happy", ""], [None] * 2, [[]] * 2, ["one more", ""], csv=str(good))
    assert len(rows["happy"]) == 8 and rows["happy"][0] == "one more" and len(rows["sad"]) == 7
    assert tab.collect("image", [""], [None], [[]], [""], csv=str(good)) == {}  # a CSV is for sentences
    wrong = tmp_path / "s.json"
    wrong.write_text("{}")
    with pytest.raises(DataError, match="not a .csv or .tsv file"):
        mine.sentences_from_csv(wrong)
    one = tmp_path / "one.csv"  # a CSV of one class: the page's rows give the others
    one.write_text("text,label\nawful,sad\nbroken,sad\n")
    assert mine.sentences_from_csv(one) == {"sad": ["awful", "broken"]}
    columns = tmp_path / "c.csv"
    columns.write_text("words,mood\nhello,happy\n")
    with pytest.raises(DataError, match="(?i)column") as refused:
        mine.sentences_from_csv(columns)
    assert str(tmp_path) not in str(refused.value)  # named as the user named it, not by a server path
    latin = tmp_path / "l.csv"
    latin.write_bytes("text,label\ncaf\xe9,a\n".encode("latin-1"))
    with pytest.raises(DataError, match="UTF-8"):
        mine.sentences_from_csv(latin)


def test_try_it_with_the_phone_file_and_the_keras_model(fake_pretrained, tmp_path, monkeypatch):
    from apps import make_your_own as tab

    monkeypatch.setattr(tab, "IN_WORKER", False)
    monkeypatch.setattr(mine, "sessions_root", lambda: tmp_path / "sessions")
    monkeypatch.setattr(tab, "TRAIN_OPTIONS", FAST)
    state, result = tab.run_training(tab.session(None), "image", photos(tmp_path / "in"))
    image = str(photos(tmp_path / "try", n=1)["red"][0])
    lite, keras = (tab.try_it(state, image, None, engine) for engine in tab.ENGINES)
    assert set(lite) == set(keras) == {"blue", "red"} and abs(sum(lite.values()) - 1) < 0.02
    assert max(lite, key=lite.get) == max(keras, key=keras.get) or abs(lite["red"] - 0.5) < 0.05
    with pytest.raises(DataError, match="Expected the model to try as one of"):
        tab.try_it(state, image, None, "phone")
    with pytest.raises(DataError, match="No model yet"):
        tab.try_it(tab.new_state(), image, None, tab.ENGINES[0])


def test_the_worker_process_trains_reports_progress_errors_and_cancels(tmp_path):
    from toolkit.training_worker import TrainingWorker

    worker = TrainingWorker()
    try:
        with pytest.raises(DataError, match="at least 2 classes"):  # the worker's own error class comes back
            worker.train("text", {"cat": ["a"] * 5}, tmp_path / "bad")
        steps = []
        result = worker.train("text", SENTENCES, tmp_path / "work", progress=lambda f, m: steps.append(m),
                              encoder="fasttext", epochs=3)
        assert result.task is None and result.zip_path.is_file() and result.class_names == ["happy", "sad"]
        assert steps[-1].startswith("Done") and any(m.startswith("Training the head") for m in steps)
        cancel = threading.Event()
        cancel.set()
        with pytest.raises(TrainingCancelled):
            worker.train("text", SENTENCES, tmp_path / "cancelled", cancel=cancel, encoder="fasttext", epochs=3)
        assert worker.alive
    finally:
        worker.close()
    assert not worker.alive


def tones(n=6, rate=8000, seed=0):
    """Two classes of short recordings (a low and a high tone with noise), as microphone takes."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(0.6 * rate)) / rate
    return {name: [(rate, (0.4 * np.sin(2 * np.pi * f * (1 + 0.02 * i) * t) + rng.normal(0, 0.01, len(t)))
                    .astype(np.float32)) for i in range(n)] for name, f in (("low", 300.0), ("high", 2200.0))}


def test_recordings_from_the_microphone_train_on_the_pretrained_speech_embedding_to_a_tried_int8_file(tmp_path,
                                                                                                       monkeypatch):
    import importlib.util

    from apps import make_your_own as tab

    if importlib.util.find_spec("openwakeword") is None:
        pytest.skip("the pretrained speech embedding needs `pip install --no-deps openwakeword==0.4.0`")
    monkeypatch.setattr(tab, "IN_WORKER", False)
    monkeypatch.setattr(mine, "sessions_root", lambda: tmp_path / "sessions")
    monkeypatch.setattr(tab, "TRAIN_OPTIONS", {"epochs": 3})
    state, takes = tab.session(None), {}
    for name, recordings in tones().items():
        shots = []
        for take in recordings:  # as the microphone's "Add this recording" keeps them
            state, shots, note = tab.add_take(state, take, shots)
        takes[name] = shots
    assert note == "6 recording(s)" and all(p.startswith(state["folder"]) for p in takes["low"])
    examples = tab.collect("audio", list(takes), [None, None], list(takes.values()), ["", ""])
    state, result = tab.run_training(state, "audio", examples)
    assert result.class_names == ["high", "low"] and result.metrics["n_held_out"] == 2
    names = set(zipfile.ZipFile(result.zip_path).namelist())
    assert {"model_int8.tflite", "labels.txt", "card.json", "model.keras"} <= names
    card = json.loads(zipfile.ZipFile(result.zip_path).read("card.json"))
    assert card["config"]["backbone"] == "speech_embedding" and 0 <= result.tflite["agreement_with_keras"] <= 1
    answers = [tab.try_it(state, None, None, engine, takes["high"][0]) for engine in tab.ENGINES]
    assert all(set(a) == {"high", "low"} for a in answers)
    with pytest.raises(DataError, match="Expected a recording to try"):
        tab.try_it(state, None, None, tab.ENGINES[0], None)
    with pytest.raises(DataError, match="silent"):
        tab.add_take(state, (8000, np.zeros(4000, np.float32)), [])


@pytest.mark.parametrize("item, words", [
    ((8000, np.zeros(4000, np.float32)), "silent"),
    ((0, np.ones(10, np.float32)), "sample rate"),
    (b"not audio at all", "decode"),
])
def test_bad_recordings_are_refused_with_a_clear_message(item, words):
    good = tones()["low"]
    with pytest.raises(DataError, match=words):
        check_examples("audio", {"a": good, "b": good[:4] + [item]})
