"""Feasibility probe for issue 18: frozen pretrained speech embedding + logistic regression, LOSO.

Google's speech_embedding (Apache-2.0; ONNX copy in the PyPI wheel openwakeword==0.4.0, read by
toolkit/audio/speech_embedding.py, which rebuilds it and openWakeWord's log-mel front end as Keras
layers) gives a 96-d vector per recording (1.5 s clips, mean over 9 windows of 775 ms). A scaled
logistic regression (scikit-learn) is fitted on 4 speakers and scored on the 5th; C is chosen by
leave-one-speaker-out CV inside the 4 training speakers (GridSearchCV + LeaveOneGroupOut), never on
the test speaker. The weights come with `make install` (onnx, and openwakeword installed --no-deps).
Run: `PYTHONPATH=. python -m benchmarks.run speech_pretrained` (rows in the README table).
It is a probe beside the toolkit model (``audio_classifier``'s default backbone since 2026-12-06 is
this embedding, frozen, with a trained Keras head: toolkit/audio/pretrained.py, row speech_loso);
the features are computed at 8 kHz by the native front end (one pass of the net over each clip).

Result of 2026-12-06 (load ~9): features 203 s for 2,500 clips; nested LOSO mean 0.972 (george
0.948, jackson 0.998, nicolas 0.942, theo 0.988, yweweler 0.986; inner C 0.03-0.3); with one
fixed C for all: 0.972 (C=0.03), 0.973 (0.1), 0.971 (1.0). The from-scratch speech_loso row: 0.903.
"""

from __future__ import annotations

import glob
import json
import os
import time

import numpy as np

from .common import target
from .speech import DATA


def features(duration: float = 1.5):
    from scipy.io import wavfile

    from toolkit.audio.classifier import AudioClassifierConfig
    from toolkit.audio.data import prepare_waveform
    from toolkit.audio.speech_embedding import build_embedding_features

    fmt = AudioClassifierConfig(duration=duration).audio_format
    if not DATA.is_dir():
        raise SystemExit(f"{DATA} is absent: the speech benchmark needs ../shared/data/spoken_digits.")
    files = sorted(glob.glob(os.path.join(DATA, "*.wav")))
    waves = np.stack([prepare_waveform(wavfile.read(f)[1], fmt.sample_rate, fmt) for f in files]).astype("float32")
    model = build_embedding_features(fmt.sample_rate, fmt.samples)
    x = model.predict(waves, batch_size=64, verbose=0)
    names = [os.path.basename(f).split("_") for f in files]
    return x, np.array([int(n[0]) for n in names]), np.array([n[1] for n in names])


def nested_loso(x, y, groups, grid=(0.01, 0.03, 0.1, 0.3, 1.0)) -> dict:
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV, LeaveOneGroupOut
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    out = {}
    for speaker in sorted(set(groups)):
        train = groups != speaker
        search = GridSearchCV(make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)),
                              {"logisticregression__C": list(grid)}, cv=LeaveOneGroupOut())
        search.fit(x[train], y[train], groups=groups[train])
        out[speaker] = {"C": search.best_params_["logisticregression__C"],
                        "accuracy": round(float(search.score(x[~train], y[~train])), 4)}
    out["mean"] = round(float(np.mean([v["accuracy"] for v in out.values()])), 4)
    return out


def run() -> dict:
    """Rows for the README table: the probe's nested LOSO mean and worst speaker, beside the
    toolkit model's stored LOSO figure (benchmarks/results/speech_loso.json)."""
    from pathlib import Path

    start = time.time()
    x, y, groups = features()
    seconds = time.time() - start
    result = nested_loso(x, y, groups)
    speakers = {k: v for k, v in result.items() if k != "mean"}
    worst = min(speakers, key=lambda k: speakers[k]["accuracy"])
    stored = Path(__file__).resolve().parent / "results" / "speech_loso.json"
    toolkit = next((r["measured"] for r in json.loads(stored.read_text())["rows"]
                    if r["name"].startswith("speech: leave-one-speaker-out accuracy, mean")), None) if stored.exists() else None
    per = ", ".join(f"{k} {v['accuracy']:.3f} (C {v['C']})" for k, v in speakers.items())
    rows = [
        target("speech probe: pretrained speech_embedding (frozen) + logistic regression, nested LOSO mean",
               result["mean"], "reference", True,
               note=f"a probe beside the toolkit model; per speaker {per}; C chosen by inner leave-one-speaker-out "
                    f"CV; audio_classifier (default backbone) LOSO mean {toolkit}; features {seconds:.0f} s"),
        target("speech probe: pretrained speech_embedding + logistic regression, worst speaker",
               speakers[worst]["accuracy"], "reference", True, note=f"worst: {worst}"),
    ]
    return {"rows": rows, "details": result}


if __name__ == "__main__":
    print(json.dumps(run()["details"]))
