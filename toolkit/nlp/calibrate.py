"""Honest answers of a ``text_classifier``: a temperature and the "not sure" rule, fitted by
:func:`toolkit.calibration.calibrate` at the end of ``fit`` on its held-out validation texts (never
a test split), against generated texts that are no sentence (:func:`generated_texts`).

Scores: the top temperature-scaled probability and, for a frozen pretrained encoder (MiniLM), the
distance of the sentence's encoder features from the training texts'
(:class:`toolkit.calibration.FeatureDensity`). From-scratch encoders and their ``.tflite`` files
check the top probability alone. ``nblr`` trains on every text, validation part included, so it has
no held-out texts to calibrate on: no rule (``not_sure`` stays False).
"""

from __future__ import annotations

import string
from typing import Any

import numpy as np

N_GENERATED = 40
UNLIKE = "reads unlike the training texts"


def generated_texts(n: int = N_GENERATED, seed: int = 0) -> dict[str, list[str]]:
    """Inputs a text box gets that are no sentence of any data set: keyboard mash, numbers and
    symbols, one word repeated, code, web addresses (``n`` of each, random lengths)."""
    rng = np.random.default_rng(seed)
    letters = np.array(list(string.ascii_lowercase))

    def word(lo: int = 2, hi: int = 9) -> str:
        return "".join(rng.choice(letters, int(rng.integers(lo, hi))))

    def mash() -> str:
        return " ".join(word() for _ in range(int(rng.integers(1, 9))))

    def numbers() -> str:
        parts = [str(int(rng.integers(0, 10 ** int(rng.integers(1, 7))))) for _ in range(int(rng.integers(1, 7)))]
        return " ".join(p + str(rng.choice(list("  .,-/:#%")) if rng.random() < 0.5 else "") for p in parts)

    def repeated() -> str:
        return " ".join([word(1, 6)] * int(rng.integers(2, 12)))

    def code() -> str:
        a, b = word(1, 5), word(1, 5)
        forms = [f"def {a}({b}): return {b} * {int(rng.integers(2, 99))}", f"{a} = [{b} for {b} in range({a})]",
                 f"if ({a} != {b}) {{ {a}++; }}", f"SELECT {a} FROM {b} WHERE id = {int(rng.integers(1, 999))};",
                 f"<div class=\"{a}\">{b}</div>", f"{a}.{b}({int(rng.integers(0, 9))}, null);"]
        return str(rng.choice(forms))

    def address() -> str:
        return str(rng.choice([f"https://www.{word()}.com/{word()}?id={int(rng.integers(1, 9999))}",
                               f"{word()}.{word()}@{word()}.org", f"www.{word()}.net/{word()}/{word()}.html"]))

    makers = {"keyboard_mash": mash, "numbers": numbers, "repeated_word": repeated, "code": code, "addresses": address}
    return {kind: [make() for _ in range(n)] for kind, make in makers.items()}


def probabilities_and_features(task: Any, texts: list[str]) -> tuple[np.ndarray, np.ndarray | None]:
    """(probabilities, the frozen encoder's features or None) of ``task`` on ``texts``."""
    from .text_memo import head_probabilities

    task._check_fitted()
    if task.config.from_scratch or task._in_model_encoder or len(texts) == 0:
        return task.probabilities(texts), None
    features = task._features(list(texts))  # remembered per sentence (text_memo)
    return head_probabilities(task, features), features


def calibrate_text(task: Any, val: Any, train: Any, seed: int = 0) -> Any:
    """The :class:`toolkit.calibration.Calibration` of a fitted ``TextClassifier`` (``val``: its
    held-out validation TextData; ``train``: its training texts, the features' reference)."""
    from ..calibration import calibrate

    generated = {kind: (texts, *probabilities_and_features(task, texts))
                 for kind, texts in generated_texts(seed=seed).items()}
    val_probs, val_features = probabilities_and_features(task, val.texts)
    reference = None
    if val_features is not None:
        pick = np.random.default_rng(seed).choice(len(train.texts), min(2000, len(train.texts)), replace=False)
        probs, features = probabilities_and_features(task, [train.texts[i] for i in np.sort(pick)])
        reference = (features, probs.argmax(axis=-1))
    calibration = calibrate(val_probs, val.y, list(val.texts), None, generated, val_features=val_features,
                            reference_features=reference, ood_goal=0.9, what="texts", unlike=UNLIKE)
    calibration.report["measured_on"] = ("held-out validation texts (not the test split) and generated texts that "
                                         "are no sentence: " + ", ".join(generated))
    return calibration
