"""The task contract, for every registered task: fit -> predict -> save -> load -> same predictions
-> export -> the TFLite file agrees."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from toolkit import TFLiteModel
from toolkit.base import registered_tasks
from toolkit.errors import NotFittedError


def _vision_case():
    from toolkit import ImageClassifier

    rng = np.random.default_rng(0)
    x = rng.uniform(0, 50, (48, 10, 10, 3)).astype("float32")
    y = np.array(["left", "right"] * 24)
    for i, label in enumerate(y):
        x[i, :, :5 if label == "left" else 5:] += 180
    return dict(task=ImageClassifier(epochs=2, batch_size=16), data=(x, y), sample=x[:8],
                exports={"float32": 1.0, "int8": 0.85}, lite=TFLiteModel)


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
                sample=texts[:8], exports={"float32": 1.0, "dynamic": 0.85}, lite=TFLiteModel)


def _seq2seq_case():
    from toolkit.nlp.dates import DateTranslator, TFLiteDateTranslator, generate_dates

    inputs, targets = generate_dates(300, seed=0)
    task = DateTranslator(n_train=300, epochs=1, units=16, embedding_dim=8, batch_size=32)
    return dict(task=task, data=(inputs, targets), sample=inputs[:8], exports={"float32": 1.0},
                lite=TFLiteDateTranslator)


# One tiny recipe per task. A task registered without a recipe fails the test below.
CASES = {"vision": _vision_case, "nlp": _nlp_case, "seq2seq": _seq2seq_case}


def test_every_task_has_a_contract_case():
    tasks = set(registered_tasks())
    assert tasks and tasks <= set(CASES), f"add a contract case for {sorted(tasks - set(CASES))}"


def _outputs(model, sample):
    return model.translate(sample) if hasattr(model, "translate") else model.predict(sample)


@pytest.mark.parametrize("name", sorted(CASES))
def test_contract(name, tmp_path):
    case = CASES[name]()
    task, data, sample = case["task"], case["data"], case["sample"]
    with pytest.raises(NotFittedError):
        task.predict(sample)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert task.fit(data) is task
    before = _outputs(task, sample)
    assert task.predict(sample[0]).shape == (1,)  # one sample or a batch
    assert isinstance(task.evaluate(data), dict)

    directory = task.save(tmp_path / name)
    loaded = type(task).load(directory)
    np.testing.assert_array_equal(_outputs(loaded, sample), before)
    if hasattr(task, "predict_proba"):
        np.testing.assert_allclose(loaded.predict_proba(sample), task.predict_proba(sample), atol=1e-6)

    for quantization, goal in case["exports"].items():
        path = loaded.export(quantization=quantization, data=data)
        agreement = np.mean(np.asarray(_outputs(case["lite"](path), sample)) == np.asarray(before))
        assert agreement >= goal, (quantization, agreement)
    assert [e["quantization"] for e in type(task).load(directory).tflite_] == list(case["exports"])
