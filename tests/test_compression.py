"""Compression through tensorflow-model-optimization: the tf_keras bridge, pruning, clustering,
QAT and the collaborative variants, the report, the CLI verb, and Keras 3 left untouched."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

from conftest import REPO
from toolkit.cli import main
from toolkit.errors import ExportError, ModelFormatError

# A seeded Keras 3 fit, save and reload: run in a fresh process and after the bridge in this one.
KERAS3_PROBE = """
import os, tempfile
import numpy as np, keras, tensorflow as tf
keras.utils.set_random_seed(3)
x = np.random.default_rng(3).normal(size=(64, 6)).astype("float32")
y = (x.sum(axis=1) > 0).astype("int64")
model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(8, activation="relu"),
                          keras.layers.Dense(2, activation="softmax")])
model.compile(optimizer=keras.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy")
model.fit(x, y, epochs=2, batch_size=16, shuffle=False, verbose=0)
path = os.path.join(tempfile.mkdtemp(), "probe.keras")
model.save(path)
again = keras.saving.load_model(path)
PROBE = {
    "keras": keras.__version__,
    "dense": keras.layers.Dense.__module__,
    "tf_keras_is_keras3": tf.keras.layers.Dense is keras.layers.Dense,
    "legacy_env": os.environ.get("TF_USE_LEGACY_KERAS"),
    "weights": [w.tolist() for w in model.get_weights()],
    "outputs": np.asarray(again(x[:4], training=False)).tolist(),
}
"""


def _probe() -> dict:
    scope: dict = {}
    exec(KERAS3_PROBE, scope)  # noqa: S102 - our own fixed snippet
    return scope["PROBE"]


def _splits(x, y):
    from toolkit.data.images import Splits, resolve_image_data

    data = resolve_image_data((x, y), "train")
    return Splits(data, data, {"source": "arrays"})


@pytest.fixture(scope="module")
def tiny_folder(tiny_model, tmp_path_factory):
    return tiny_model.save(tmp_path_factory.mktemp("compress") / "tiny")


@pytest.fixture(scope="module")
def small(tiny_folder, tiny_data, tmp_path_factory):
    """Pruned 80% + clustered (8) + QAT int8 from the tiny model, into a new model folder."""
    from toolkit import load
    from toolkit.edge import compress

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return compress(load(tiny_folder), _splits(*tiny_data), prune=0.8, cluster=8, qat=True, epochs=2,
                        batch_size=8, out=tmp_path_factory.mktemp("small") / "tiny_small")


def test_importing_loads_neither_tf_keras_nor_tfmot():
    code = ("import sys, toolkit, toolkit.edge, toolkit.edge.compression, apps.vision; "
            "print(sorted(m for m in ('tf_keras', 'tensorflow_model_optimization', 'tensorflow') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_config_is_validated():
    from toolkit.edge.compression import CompressionConfig

    assert CompressionConfig(prune=0.8, cluster=16, qat=True).name == "pruned_clustered_qat_int8"
    assert CompressionConfig(cluster=16, quantization="dynamic").file == "model_clustered_dynamic.tflite"
    for bad, message in (
        (dict(prune=1.0), "target sparsity in \\(0, 1\\)"),
        (dict(cluster=1), "clusters >= 2"),
        (dict(prune=0.5, cluster_init="random"), "Valid names: \\['kmeans\\+\\+', 'linear'\\]"),
        (dict(qat=True, quantization="float16"), "int8 file"),
        (dict(prune=0.5, quantization="int4"), "Unknown quantization"),
        (dict(), "at least one technique"),
    ):
        with pytest.raises(ValueError, match=message):
            CompressionConfig(**bad)


@pytest.mark.parametrize("backbone", ["small_cnn", "lenet5", "mobilenet_v2"])
def test_bridge_rebuilds_every_vision_backbone(backbone, tiny_model):
    """The tf_keras twin has the same outputs (backbone flattened, BatchNorm folded or not), and
    its weights come back into Keras 3 exactly."""
    import keras

    from toolkit import ImageClassifier
    from toolkit.edge.compression import check_parity, to_keras3, to_tf_keras

    if backbone == "small_cnn":
        model, size = tiny_model.model_, (12, 12, 1)
    else:
        model, size = ImageClassifier(backbone=backbone)._build_model((32, 32, 3), 3), (32, 32, 3)
    x = np.random.default_rng(0).uniform(0, 255, (6, *size)).astype("float32")
    for fold in (False, True):
        twin = to_tf_keras(model, check=x, fold_batchnorm=fold)
        assert not any(hasattr(layer, "layers") for layer in twin.model.layers)  # flattened
        assert check_parity(model, twin.model, x) <= 1e-5
        kinds = {type(layer).__name__ for layer in twin.model.layers}
        assert ("BatchNormalization" in kinds) == (not fold and backbone != "lenet5")
        back = to_keras3(model, twin.model, twin.links)
        assert isinstance(back, keras.Model) and back is not model
        np.testing.assert_allclose(back(x, training=False), model(x, training=False), atol=1e-5)


def test_bridge_names_what_it_cannot_translate():
    import keras

    from toolkit.edge.compression import to_tf_keras
    from toolkit.nlp import TextClassifier

    inputs = keras.Input((4,))
    cases = [
        (keras.layers.LayerNormalization(name="norm")(inputs), "layer 'norm' \\(keras.*LayerNormalization\\)"),
        (keras.layers.Dense(3, lora_rank=2, name="low_rank")(inputs), "option lora_rank=2"),
        (keras.ops.add(inputs, 1.0), "raw Keras operation"),
    ]
    for outputs, message in cases:
        with pytest.raises(ModelFormatError, match=message) as info:
            to_tf_keras(keras.Model(inputs, outputs))
        assert "Supported layers: InputLayer" in str(info.value)
    transformer = TextClassifier(encoder="transformer", sequence_length=8)._scratch_core(50, 2)
    with pytest.raises(ModelFormatError, match="TokenAndPositionEmbedding"):
        to_tf_keras(transformer)


def test_pruned_clustered_qat_model_folder(small, tiny_data):
    """All three techniques stacked: the .tflite keeps the zeros and the shared values, and the
    folder's Keras model holds the pruned and clustered float weights."""
    from toolkit import TFLiteModel, load

    directory = small.path.parent
    assert small.path.name == "model_pruned_clustered_qat_int8.tflite"
    assert small.config.name == "pruned_clustered_qat_int8" and small.entry["input"]["dtype"] == "int8"
    assert small.metrics["sparsity"] >= 0.6 and small.metrics["test_accuracy"] >= 0.9
    assert small.metrics["gzip_bytes"] < small.metrics["size_bytes"] / 2
    clf = load(directory)
    kernels = [np.asarray(w) for w in clf.model_.weights if w.path.endswith("kernel")]
    zeros = sum(int(np.sum(k == 0)) for k in kernels) / sum(k.size for k in kernels)
    assert zeros >= 0.75
    assert max(len(np.unique(k)) for k in kernels if k.size > 64) <= 9  # 8 shared values and zero
    x, y = tiny_data
    assert clf.evaluate((x, y))["accuracy"] >= 0.9
    card = json.loads((directory / "card.json").read_text())
    assert card["command"].startswith("toolkit compress") and "--prune 0.8 --cluster 8 --qat" in card["command"]
    assert [v["variant"] for v in card["compression"]["variants"]] == ["pruned_clustered_qat_int8"]
    assert [e["file"] for e in card["tflite"]] == [small.path.name]
    assert np.mean(TFLiteModel(small.path).predict(x) == clf.predict(x)) >= 0.9


def test_cli_compress(small, tiny_folder, capsys):
    assert main(["compress", str(tiny_folder)]) == 2
    assert "at least one technique" in capsys.readouterr().err
    assert main(["compress", str(tiny_folder), "--report", "--qat"]) == 2
    assert "--report makes every variant" in capsys.readouterr().err
    assert main(["compress", str(tiny_folder), "--prune", "0.5"]) == 2  # trained on arrays: nothing to reload
    assert "Pass data=" in capsys.readouterr().err
    directory = small.path.parent
    with pytest.raises(SystemExit) as stopped:  # refused by the parser
        main(["compress", str(directory), "--report", str(directory / "report.md"), "--epochs", "0"])
    assert stopped.value.code == 2 and "--epochs: expected a whole number >= 1" in capsys.readouterr().err


def test_keras3_is_unaffected_by_the_bridge(small):
    """After prune + QAT + conversion in this process, Keras 3 builds, trains, saves and loads
    exactly as in a fresh process."""
    import keras

    import toolkit.edge.compression as compression

    assert compression.libraries_loaded() and "tf_keras" in sys.modules  # the bridge ran here
    code = KERAS3_PROBE + "\nimport json; print(json.dumps(PROBE))"
    env = {**os.environ, "KERAS_BACKEND": "tensorflow"}
    fresh = json.loads(subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True,
                                      text=True, check=True).stdout.strip().splitlines()[-1])
    here = _probe()
    assert here["keras"] == fresh["keras"] == keras.__version__
    assert here["dense"].startswith("keras.") and here["tf_keras_is_keras3"] is True
    assert here["legacy_env"] == fresh["legacy_env"]
    for ours, theirs in zip(here["weights"], fresh["weights"]):
        np.testing.assert_allclose(ours, theirs, atol=1e-6)
    np.testing.assert_allclose(here["outputs"], fresh["outputs"], atol=1e-6)


def _text_splits():
    from toolkit.data.text import TextData, TextSplits

    words = {"good": "great fine lovely nice superb", "bad": "awful poor broken sad terrible"}
    rng = np.random.default_rng(0)
    texts, labels = [], []
    for i in range(96):
        label = i % 2
        texts.append(" ".join(rng.choice(words[("good", "bad")[label]].split(), 3)) + " item")
        labels.append(label)
    data = TextData(texts, np.array(labels), ["good", "bad"])
    return TextSplits(data, data, {"source": "pairs"})


@pytest.mark.parametrize("encoder", ["cnn", pytest.param("bigru", marks=pytest.mark.slow)])
def test_text_classifier_prunes_and_clusters_with_dynamic_weights(encoder, tmp_path):
    from toolkit import TFLiteModel, load
    from toolkit.edge import compress
    from toolkit.nlp import TextClassifier

    splits = _text_splits()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf = TextClassifier(encoder=encoder, epochs=4, sequence_length=6, units=8, embedding_dim=8).fit(splits.train)
        with pytest.raises(ExportError, match="take token ids"):
            compress(clf, splits, qat=True, out=tmp_path / "qat")
        result = compress(clf, splits, prune=0.5, cluster=16, epochs=3, batch_size=8, learning_rate=1e-3,
                          out=tmp_path / "small")
    assert result.path.name == "model_pruned_clustered_dynamic.tflite"
    assert (tmp_path / "small" / "vocab.txt").is_file()
    assert result.metrics["test_accuracy"] >= clf.evaluate(splits.test)["accuracy"] - 0.1
    core = result.model.get_layer("embedding").get_weights()[0]
    assert np.mean(core == 0) >= 0.45 and len(np.unique(core)) <= 17  # pruned and clustered embeddings
    if encoder == "cnn":  # the convolution is most of the file
        assert result.metrics["sparsity"] >= 0.4 and result.metrics["max_values_per_channel"] <= 17
    small = load(tmp_path / "small")  # the folder's Keras model holds the compressed weights
    assert np.mean(TFLiteModel(result.path).predict(splits.test.texts) == small.predict(splits.test.texts)) >= 0.95


def test_unsupported_tasks_say_why():
    from toolkit.edge import compress
    from toolkit.timeseries import AnomalyDetector, Forecaster

    with pytest.raises(ExportError, match="WindowScaler"):
        compress(Forecaster(), prune=0.5)
    with pytest.raises(ExportError, match="AnomalyStandardize"):
        compress(AnomalyDetector(), prune=0.5)


def test_tasks_take_part_through_the_public_protocol(tiny_model, tiny_data):
    """Compression reads what a task offers through Compressible, never its privates or its name."""
    from toolkit import ImageClassifier, NotFittedError
    from toolkit.edge.compression import Compressible, CompressionInputs
    from toolkit.nlp import DateTranslator, TextClassifier
    from toolkit.timeseries import AnomalyDetector, Forecaster

    assert isinstance(tiny_model, Compressible) and isinstance(TextClassifier(), Compressible)
    for refusing in (Forecaster, AnomalyDetector, DateTranslator):
        assert not isinstance(refusing(), Compressible) and refusing.compression_refusal
    inputs = tiny_model.compression_inputs(_splits(*tiny_data))
    assert isinstance(inputs, CompressionInputs) and inputs.model is tiny_model.model_
    assert inputs.quantization == "int8" and inputs.int8_refusal is None
    assert inputs.train.x.shape == (90, 12, 12, 1) and inputs.train.x.dtype == np.float32
    np.testing.assert_array_equal(inputs.test_y, tiny_data[1])
    clone = tiny_model.with_compressed_weights(tiny_model.model_)
    assert clone is not tiny_model and clone.directory_ is None and clone.tflite_ == []
    np.testing.assert_array_equal(clone.predict(tiny_data[0][:8]), tiny_model.predict(tiny_data[0][:8]))
    with pytest.raises(NotFittedError):
        ImageClassifier().compression_inputs("digits")
    with pytest.raises(ExportError, match="pretrained KerasHub encoder"):
        text = TextClassifier(encoder="minilm")
        text.model_ = object()  # fitted as far as the check goes: the encoder is refused first
        text.compression_inputs()


@pytest.mark.slow
def test_report_has_every_variant(tiny_folder, tiny_data):
    from toolkit import TFLiteModel, load
    from toolkit.storage import sha256_file
    from toolkit.edge import compression_report

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = compression_report(load(tiny_folder), _splits(*tiny_data), prune=0.8, cluster=8, epochs=2,
                                    batch_size=8)
    expected = ["float32", "float16", "dynamic", "int8", "qat_int8", "pruned_int8", "clustered_int8",
                "pruned_clustered_qat_int8"]
    assert [row["variant"] for row in report.variants] == expected
    card = json.loads((tiny_folder / "card.json").read_text())
    assert card["compression"]["variants"] == report.variants
    assert card["compression"]["settings"]["prune"] == 0.8 and card["compression"]["settings"]["cluster"] == 8
    files = {entry["file"]: entry for entry in card["tflite"]}
    x, y = tiny_data
    for row in report.variants:
        assert row["file"] in files and sha256_file(tiny_folder / row["file"]) == files[row["file"]]["sha256"]
        assert row["gzip_bytes"] < row["size_bytes"] and row["latency_ms_p50"] > 0
        assert row["test_accuracy"] >= 0.6, row  # three separable classes
        runner = TFLiteModel(tiny_folder / row["file"])
        assert np.mean(runner.predict_proba(x).argmax(-1) == y) == pytest.approx(row["test_accuracy"])
    rows = {row["variant"]: row for row in report.variants}
    # What the file holds, read back with the LiteRT interpreter.
    assert rows["pruned_int8"]["sparsity"] >= 0.75 and rows["int8"]["sparsity"] < 0.1
    assert rows["clustered_int8"]["max_values_per_channel"] <= 8
    assert rows["pruned_clustered_qat_int8"]["sparsity"] >= 0.6
    assert rows["pruned_int8"]["gzip_bytes"] < 0.5 * rows["int8"]["gzip_bytes"]
    for name in ("qat_int8", "pruned_int8", "pruned_clustered_qat_int8"):
        assert files[rows[name]["file"]]["input"]["dtype"] == "int8"
    markdown = report.markdown()
    assert markdown.count("\n|") == len(expected) + 2 and "`model_pruned_int8.tflite`" in markdown
    assert load(tiny_folder).compression_ == card["compression"]  # survives a reload


@pytest.mark.slow
def test_mobilenet_v2_compresses():
    from toolkit import ImageClassifier
    from toolkit.edge.compression import CompressionConfig, Pipeline, TrainingData

    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (32, 32, 32, 3)).astype("float32")
    model = ImageClassifier(backbone="mobilenet_v2")._build_model((32, 32, 3), 3)
    pipeline = Pipeline(model, TrainingData(x, np.arange(32) % 3), x, x[:8])
    for config in (CompressionConfig(prune=0.5, epochs=1), CompressionConfig(cluster=8, epochs=1),
                   CompressionConfig(qat=True, epochs=1)):
        data, _ = pipeline.tflite(config)
        assert len(data) < 3_000_000
