"""Feasibility probe for issue 18: frozen pretrained speech embedding + logistic regression, LOSO.

Google's speech_embedding (Apache-2.0; ONNX copy in the PyPI wheel openwakeword==0.4.0, read by
toolkit/audio/speech_embedding.py, which rebuilds it and openWakeWord's log-mel front end as Keras
layers) gives a 96-d vector per recording (1.5 s clips, mean over 9 windows of 775 ms). A scaled
logistic regression (scikit-learn) is fitted on 4 speakers and scored on the 5th; C is chosen by
leave-one-speaker-out CV inside the 4 training speakers (GridSearchCV + LeaveOneGroupOut), never on
the test speaker. Needs `pip install --no-deps openwakeword==0.4.0` and `pip install onnx` (not yet
dependencies of the project). Run: PYTHONPATH=. python benchmarks/speech_embedding_probe.py

Result of 2026-12-06 (load ~9): features 203 s for 2,500 clips; nested LOSO mean 0.972 (george
0.948, jackson 0.998, nicolas 0.942, theo 0.988, yweweler 0.986; inner C 0.03-0.3); with one
fixed C for all: 0.972 (C=0.03), 0.973 (0.1), 0.971 (1.0). The from-scratch speech_loso row: 0.903.
"""

from __future__ import annotations

import glob
import json
import os
import sys
import time

import numpy as np

DATA = "/work/shared/data/spoken_digits/recordings"


def features(duration: float = 1.5):
    from scipy.io import wavfile

    from toolkit.audio.classifier import AudioClassifierConfig
    from toolkit.audio.data import prepare_waveform
    from toolkit.audio.speech_embedding import build_embedding_features

    fmt = AudioClassifierConfig(duration=duration).audio_format
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


if __name__ == "__main__":
    start = time.time()
    x, y, groups = features(float(sys.argv[1]) if len(sys.argv) > 1 else 1.5)
    print(json.dumps({"features_s": round(time.time() - start), **nested_loso(x, y, groups)}))
