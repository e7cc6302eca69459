"""Honest answers of the speech model: does "not sure" flag what it should?

Leave one speaker out on the five FSDD speakers: the default ``audio_classifier`` trained on four
(its "not sure" rule calibrated inside ``fit`` on its validation recordings and generated sounds
of seed 0), then scored on the fifth speaker's recordings (in-domain: a new voice saying the same
words; flagging them is a false alarm) and on generated non-speech sounds of another seed (noise,
tones, sweeps, hum, clicks). The peer is the max-probability threshold alone, as the TFLite files
(which return only probabilities) check it.

    python -m benchmarks.run speech_not_sure
"""

from __future__ import annotations

import time
import warnings

import numpy as np

from .common import target
from .speech import GROUPS, LABELS, _load


def _shares(rule, batch, probs, features=None) -> float:
    return float(np.mean(np.logical_or(*rule.flags(batch, probs, features))))


def run() -> dict:
    from toolkit.audio import AudioClassifier
    from toolkit.audio.calibrate import generated_sounds

    data = _load()
    folds = []
    start = time.perf_counter()
    for speaker in sorted(set(data.groups.tolist())):
        test = data.groups == speaker
        train, held = data.subset(np.flatnonzero(~test)), data.subset(np.flatnonzero(test))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            clf = AudioClassifier(label_from_name=LABELS, group_from_name=GROUPS, seed=0).fit(train)
        rule = clf.calibration_
        probs, features = clf.probabilities_and_features(held.x)
        wrong = probs.argmax(axis=1) != held.y
        flagged = np.logical_or(*rule.flags(held.x, probs, features))
        fold = {"speaker": speaker, "accuracy": float(1 - wrong.mean()), "checks": rule.checks(),
                "held_out_flagged": float(flagged.mean()), "tflite_rule_held_out_flagged": _shares(
                    rule.fallback(), held.x, probs), "errors": int(wrong.sum()),
                "errors_flagged": float(flagged[wrong].mean()) if wrong.any() else None, "generated": {}}
        for kind, sounds in generated_sounds(clf.config.audio_format, seed=1).items():
            batch = clf.prepare(sounds)
            p, f = clf.probabilities_and_features(batch)
            fold["generated"][kind] = {"keras": _shares(rule, batch, p, f), "tflite_rule": _shares(rule.fallback(), batch, p)}
        folds.append(fold)
        print(f"  {speaker}: held-out flagged {fold['held_out_flagged']:.3f}, generated flagged "
              f"{np.mean([v['keras'] for v in fold['generated'].values()]):.3f}", flush=True)
    held_out = float(np.mean([f["held_out_flagged"] for f in folds]))
    generated = float(np.mean([v["keras"] for f in folds for v in f["generated"].values()]))
    by_kind = {k: float(np.mean([f["generated"][k]["keras"] for f in folds])) for k in folds[0]["generated"]}
    tflite = {"held_out": float(np.mean([f["tflite_rule_held_out_flagged"] for f in folds])),
              "generated": float(np.mean([v["tflite_rule"] for f in folds for v in f["generated"].values()]))}
    errors = sum(f["errors"] for f in folds)
    caught = sum(round((f["errors_flagged"] or 0) * f["errors"]) for f in folds)
    rows = [
        target("speech 'not sure': held-out speakers' recordings flagged (Keras), mean of 5 folds", held_out,
               "<= 0.05", held_out <= 0.05,
               note=", ".join(f"{f['speaker']} {f['held_out_flagged']:.3f}" for f in folds)
               + f"; max-probability rule alone (what the .tflite files check) {tflite['held_out']:.3f}"),
        target("speech 'not sure': generated non-speech sounds flagged (Keras)", generated, ">= 0.9",
               generated >= 0.9, note=", ".join(f"{k} {v:.2f}" for k, v in by_kind.items())
               + f"; max-probability rule alone (the .tflite files) {tflite['generated']:.3f}"),
        target("speech 'not sure': misrecognised held-out recordings flagged (Keras)",
               caught / errors if errors else 0.0, "reference", True, note=f"{caught} of {errors} errors"),
    ]
    return {"rows": rows, "folds": folds, "seconds_total": round(time.perf_counter() - start, 1)}
