"""The task contract, for every registered task: fit -> predict -> save -> load -> same predictions
-> export -> the TFLite file agrees."""

from __future__ import annotations

import functools
import warnings

import numpy as np
import pytest
from conftest import REPO

from toolkit.base import registered_tasks
from toolkit.errors import ExportError, NotFittedError


def _vision_case():
    from toolkit import ImageClassifier

    rng = np.random.default_rng(0)
    x = rng.uniform(0, 50, (48, 10, 10, 3)).astype("float32")
    y = np.array(["left", "right"] * 24)
    for i, label in enumerate(y):
        x[i, :, :5 if label == "left" else 5:] += 180
    return dict(task=ImageClassifier(epochs=2, batch_size=16), data=(x, y), sample=x[:8],
                exports={"float32": 1.0, "int8": 0.85})


def _nlp_case():
    from toolkit.nlp import TextClassifier

    words = {"good": "great fine lovely nice superb", "bad": "awful poor broken sad terrible"}
    rng = np.random.default_rng(0)
    texts, labels = [], []
    for i in range(64):
        label = ("good", "bad")[i % 2]
        texts.append(" ".join(rng.choice(words[label].split(), 3)) + " item")
        labels.append(label)
    return dict(task=TextClassifier(encoder="cnn", epochs=3, sequence_length=8), data=(texts, labels),
                sample=texts[:8], exports={"float32": 1.0, "dynamic": 0.85})


def _seq2seq_case():
    from toolkit.nlp.dates import DateTranslator, generate_dates

    inputs, targets = generate_dates(300, seed=0)
    task = DateTranslator(n_train=300, epochs=1, units=16, embedding_dim=8, batch_size=32)
    return dict(task=task, data=(inputs, targets), sample=inputs[:8], exports={"float32": 1.0})


def _timeseries_case():
    from toolkit.timeseries import Forecaster, make_windows

    t = np.arange(200)
    y = (10 + 3 * np.sin(2 * np.pi * t / 12) + np.random.default_rng(0).normal(0, 0.2, 200)).astype("float32")
    task = Forecaster(model="lstm", horizon=4, window=12, epochs=2, classical=("theta",))
    windows, _ = make_windows(y[:, None], 12, 4)
    return dict(task=task, data=y, sample=windows[:8], exports={"float32": 1.0},
                same=lambda a, b: np.isclose(a, b, rtol=1e-3, atol=1e-4))


def _anomaly_case():
    from toolkit.timeseries import AnomalyDetector, synthetic_sensor

    data = synthetic_sensor(400, seed=0, anomalies=False)
    series = synthetic_sensor(400, seed=1)["temperature"].to_numpy("float32")
    task = AnomalyDetector(window=16, epochs=2)
    return dict(task=task, data=data, sample=np.stack([series[i * 40 : i * 40 + 60, None] for i in range(8)]),
                exports={"float32": 0.99})


def _smooth_images(n: int = 48, size: int = 16):
    """Blurry blobs, raw pixels: something an autoencoder can learn in an epoch."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:size, :size]
    centres = rng.uniform(4, size - 4, (n, 2))
    blobs = 230 * np.exp(-((yy - centres[:, :1, None]) ** 2 + (xx - centres[:, 1:, None]) ** 2) / 12)
    return blobs[..., None].astype("float32")


def _within_pixel_error(a, b):  # the parity goal of the generative exports: 0.02 on the 0-1 scale
    return np.abs(np.asarray(a, float) - np.asarray(b, float)) <= 0.02 * 255


def _vae_case():
    from types import SimpleNamespace

    from toolkit.generative import VAE, TFLiteImageModel

    x = _smooth_images()
    task = VAE(latent_dim=2, filters=(8, 16), hidden_units=16, epochs=1, batch_size=16)

    def lite(path):  # the TFLite file is the decoder: it must turn the encodings into the same reconstructions
        decoder = TFLiteImageModel(path)
        return SimpleNamespace(predict=lambda images: decoder.predict(task.encode(images)))

    return dict(task=task, data=x, sample=x[:8], exports={"float32": 1.0, "float16": 1.0}, lite=lite,
                same=_within_pixel_error)


def _gan_case():
    from toolkit.generative import GAN

    task = GAN(latent_dim=4, generator_filters=(8, 4), discriminator_filters=(4, 8), epochs=1, batch_size=16)
    z = np.random.default_rng(1).standard_normal((8, 4)).astype("float32")
    return dict(task=task, data=_smooth_images(), sample=z, exports={"float32": 1.0, "float16": 1.0},
                same=_within_pixel_error)


def _denoiser_case():
    from toolkit.generative import Denoiser, add_noise

    x = _smooth_images()
    task = Denoiser(filters=(4, 8), epochs=1, batch_size=16)
    return dict(task=task, data=x, sample=add_noise(x[:8], 0.3, seed=1), exports={"float32": 1.0, "float16": 1.0},
                same=_within_pixel_error)


def _agent_case(algorithm: str):
    import gymnasium as gym

    from conftest import TINY_DQN
    from toolkit.rl import A2CAgent, DQNAgent, run_episodes

    if algorithm == "dqn":
        task = DQNAgent(**TINY_DQN)
    else:
        task = A2CAgent(total_timesteps=400, n_envs=2, hidden_units=(16,), eval_freq=0)
    states = run_episodes(lambda o: np.zeros(len(o), int), [gym.make("CartPole-v1")], 2, 0, collect=True).states
    return dict(task=task, data="CartPole-v1", sample=states[:8], exports={"float32": 1.0})


def _audio_case():
    from toolkit.audio import AudioClassifier

    rng = np.random.default_rng(0)
    t = np.arange(4000) / 8000
    labels = np.array(["low", "high"] * 20)
    x = np.stack([0.3 * np.sin(2 * np.pi * (300 if label == "low" else 2000) * rng.uniform(0.95, 1.05) * t)
                  + 0.01 * rng.standard_normal(4000) for label in labels]).astype("float32")
    task = AudioClassifier(backbone="scratch", filters=(4, 8), n_mels=16, duration=0.5, epochs=2, batch_size=8)
    return dict(task=task, data=(x, labels), sample=x[:8], exports={"float32": 1.0, "int8": 0.85})


def _detector_case():
    from toolkit.detection import ObjectDetector, make_shapes
    from toolkit.detection.metrics import box_iou

    data = make_shapes(48, size=64, seed=0, min_side=14, max_side=30)

    def same(a, b):  # per image: each box of one (but those within 0.01 of the threshold, which may fall
        # either side of it) has a box in the other with the same label, IoU >= 0.5 and a score within 0.1
        def covered(x, y):
            return all(any(p["label"] == q["label"] and abs(p["score"] - q["score"]) <= 0.1
                           and box_iou(np.array([p["box"]]), np.array([q["box"]]))[0, 0] >= 0.5 for q in y)
                       for p in x if p["score"] >= 0.21)

        def one(x, y):
            return covered(x["detections"], y["detections"]) and covered(y["detections"], x["detections"])
        return np.array([one(x, y) for x, y in zip(np.atleast_1d(a), np.atleast_1d(b))])

    task = ObjectDetector(image_size=64, epochs=8, augment_passes=0, width=16, min_score=0.2)
    # float16 only: each detector conversion costs about 20 CPU-s, and the float32 and int8 files are exported and
    # checked (mAP within 0.005 / 0.1 of Keras, ops, metadata) by tests/test_detection.py's save/load/export test
    return dict(task=task, data=data, sample=np.stack(data.images[:8]), exports={"float16": 1.0}, same=same)


# One tiny recipe per task. A task registered without a recipe fails the test below.
CASES = {"image_classifier": _vision_case, "text_classifier": _nlp_case, "date_translator": _seq2seq_case,
         "forecaster": _timeseries_case, "anomaly_detector": _anomaly_case, "vae": _vae_case, "gan": _gan_case, "denoiser": _denoiser_case,
         "dqn": lambda: _agent_case("dqn"), "a2c": lambda: _agent_case("a2c"),
         "audio_classifier": _audio_case, "object_detector": _detector_case}


def test_every_task_has_a_contract_case():
    tasks = set(registered_tasks())
    assert tasks and tasks <= set(CASES), f"add a contract case for {sorted(tasks - set(CASES))}"


def _outputs(model, sample, tags):
    return model.translate(sample) if "translator" in tags else model.predict(sample)


# The two longest cases (about a minute each) run from their own files, so that `--dist loadfile` can give them
# to the other worker; every case still runs exactly once (checked below).
OWN_FILE = {"object_detector": "test_contract_detector.py", "date_translator": "test_contract_dates.py"}


def test_every_case_runs_once():
    assert set(OWN_FILE) <= set(CASES)
    for name, file in OWN_FILE.items():
        assert f'check_contract("{name}"' in (REPO / "tests" / file).read_text(), (name, file)


@pytest.mark.parametrize("name", sorted(set(CASES) - set(OWN_FILE)))
def test_contract(name, tmp_path):
    check_contract(name, tmp_path)


def check_contract(name, tmp_path):
    case = CASES[name]()
    task, data, sample = case["task"], case["data"], case["sample"]
    cls = type(task)
    assert cls.task_name == name and cls.default_explain_method() in cls.explain_methods
    outputs = functools.partial(_outputs, tags=cls.tags)
    with pytest.raises(NotFittedError):
        task.predict(sample)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert task.fit(data) is task
    before = outputs(task, sample)
    one, batch = np.asarray(outputs(task, sample[:1])), np.asarray(before)
    assert np.asarray(task.predict(sample[0])).shape in (one.shape, batch.shape[1:])  # one sample or a batch
    assert isinstance(task.evaluate(data), dict)

    directory = task.save(tmp_path / name)
    loaded = type(task).load(directory)
    np.testing.assert_array_equal(outputs(loaded, sample), before)
    if "classifier" in cls.tags:
        np.testing.assert_allclose(loaded.predict_proba(sample), task.predict_proba(sample), atol=1e-6)

    for quantization, goal in case["exports"].items():
        path = loaded.export(quantization=quantization, data=data)
        same = case.get("same", np.equal)  # regression outputs: close enough
        lite = case["lite"](path) if "lite" in case else cls.open_tflite(path)
        assert "lite" in case or isinstance(lite, cls.runner_class())
        agreement = np.mean(same(np.asarray(outputs(lite, sample)), np.asarray(before)))
        assert agreement >= goal, (quantization, agreement)
    assert [e["quantization"] for e in type(task).load(directory).tflite_] == list(case["exports"])
    for refused in cls.refused_quantizations:  # declared refusals are refused, with the reason
        with pytest.raises(ExportError, match=refused):
            loaded.export(quantization=refused, data=data)
