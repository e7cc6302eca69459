"""Honest answers of the shipped MiniLM sentiment model: does "not sure" flag what it should?

Its rule was calibrated inside ``fit`` on its validation sentences and generated texts of seed 0;
here it meets the test split's sentences (in-domain: flagging them is a false alarm) and generated
texts of another seed (keyboard mash, numbers, a repeated word, code, web addresses). The peer is
the max-probability threshold alone (calibrated the same way, what a model without features can
check).

    python -m benchmarks.run nlp_not_sure
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .common import target

MODEL = Path(__file__).resolve().parent.parent / "saved_models" / "nlp" / "sentiment_minilm"


def run() -> dict:
    from toolkit import load
    from toolkit.nlp.calibrate import generated_texts

    task = load(MODEL)
    rule = task.calibration_
    if rule is None:
        return {"rows": [target("sentiment 'not sure': a calibration in the shipped MiniLM card", 0.0, "present", False,
                                note="retrain it with its `make models` line")]}
    splits = task.reload_data()
    test = splits.test

    def flagged(texts: list[str]) -> tuple[float, float]:
        probs, features = task.probabilities_and_features(texts)
        return (float(np.mean(np.logical_or(*rule.flags(texts, probs, features)))),
                float(np.mean(np.logical_or(*rule.fallback().flags(texts, probs)))))

    in_domain = flagged(list(test.texts))
    kinds = {kind: flagged(texts) for kind, texts in generated_texts(seed=1).items()}
    generated = (float(np.mean([v[0] for v in kinds.values()])), float(np.mean([v[1] for v in kinds.values()])))
    rows = [
        target("sentiment 'not sure' (MiniLM, shipped): test sentences flagged", in_domain[0], "<= 0.05",
               in_domain[0] <= 0.05, note=f"{len(test.texts)} sentences; max-probability rule alone {in_domain[1]:.3f}"),
        target("sentiment 'not sure' (MiniLM, shipped): generated non-sentences flagged", generated[0], ">= 0.9",
               generated[0] >= 0.9, note=", ".join(f"{k} {v[0]:.2f}" for k, v in kinds.items())
               + f"; max-probability rule alone {generated[1]:.3f}"),
    ]
    return {"rows": rows, "by_kind": kinds, "in_domain": in_domain}
