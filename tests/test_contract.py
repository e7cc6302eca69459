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
    return ImageClassifier(epochs=2, batch_size=16), (x, y), x[:8]


# One tiny recipe per task. A task registered without a recipe fails the test below.
CASES = {"vision": _vision_case}



def test_every_task_has_a_contract_case():
    tasks = set(registered_tasks())
    assert tasks and tasks <= set(CASES), f"add a contract case for {sorted(tasks - set(CASES))}"


@pytest.mark.parametrize("name", sorted(CASES))
def test_contract(name, tmp_path):
    task, data, sample = CASES[name]()
    with pytest.raises(NotFittedError):
        task.predict(sample)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert task.fit(data) is task
    before = task.predict_proba(sample)
    assert task.predict(sample[0]).shape == (1,)  # one sample or a batch
    assert isinstance(task.evaluate(data), dict)

    directory = task.save(tmp_path / name)
    loaded = type(task).load(directory)
    np.testing.assert_allclose(loaded.predict_proba(sample), before, atol=1e-6)
    np.testing.assert_array_equal(loaded.predict(sample), task.predict(sample))

    for quantization in ("float32", "int8"):
        path = loaded.export(quantization=quantization, data=data)
        lite = TFLiteModel(path)
        agreement = np.mean(lite.predict(sample) == task.predict(sample))
        assert agreement >= (1.0 if quantization == "float32" else 0.85), (quantization, agreement)
    assert [e["quantization"] for e in type(task).load(directory).tflite_] == ["float32", "int8"]
