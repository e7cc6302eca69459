"""Inner speaker validation behind the test-time speeds default (george never used): train on 3 of
jackson, nicolas, theo, yweweler, score the 4th, with several test-time speed sets on the same
trained model. Run: PYTHONPATH=. python benchmarks/speech_inner.py VAL_SPEAKER ['{"speed": 0.1}'] [TAG]

Results of 2026-12-06 (one seed, load ~9-11; one JSON line per run):
{"val": "nicolas", "tag": "default", "overrides": {}, "epochs": 30, "fit_s": 160, "1": 0.748, 
"0.95,1.0,1.05": 0.802, "0.9,1.0,1.1": 0.784, "0.85,1.0,1.15": 0.768, "0.9,0.95,1.0,1.05,1.1": 
0.796, "0.85,0.925,1.0,1.075,1.15": 0.782, "0.8,0.9,1.0,1.1,1.2": 0.764}
{"val": "jackson", "tag": "default", "overrides": {}, "epochs": 40, "fit_s": 167, "1": 0.914, 
"0.95,1.0,1.05": 0.902, "0.9,1.0,1.1": 0.91, "0.85,1.0,1.15": 0.904, "0.9,0.95,1.0,1.05,1.1": 
0.896, "0.85,0.925,1.0,1.075,1.15": 0.906, "0.8,0.9,1.0,1.1,1.2": 0.906}
{"val": "nicolas", "tag": "speed0.1", "overrides": {"speed": 0.1}, "epochs": 27, "fit_s": 149, "1": 
0.792, "0.95,1.0,1.05": 0.832, "0.9,1.0,1.1": 0.818, "0.85,1.0,1.15": 0.814, 
"0.9,0.95,1.0,1.05,1.1": 0.83, "0.85,0.925,1.0,1.075,1.15": 0.814, "0.8,0.9,1.0,1.1,1.2": 0.808}
{"val": "jackson", "tag": "speed0.1", "overrides": {"speed": 0.1}, "epochs": 25, "fit_s": 129, "1": 
0.934, "0.95,1.0,1.05": 0.928, "0.9,1.0,1.1": 0.928, "0.85,1.0,1.15": 0.934, 
"0.9,0.95,1.0,1.05,1.1": 0.928, "0.85,0.925,1.0,1.075,1.15": 0.932, "0.8,0.9,1.0,1.1,1.2": 0.932}
{"val": "theo", "tag": "default", "overrides": {}, "epochs": 35, "fit_s": 125, "1": 0.958, 
"0.95,1.0,1.05": 0.962, "0.9,1.0,1.1": 0.962, "0.85,1.0,1.15": 0.954, "0.9,0.95,1.0,1.05,1.1": 
0.96, "0.85,0.925,1.0,1.075,1.15": 0.96, "0.8,0.9,1.0,1.1,1.2": 0.954}
{"val": "theo", "tag": "speed0.1", "overrides": {"speed": 0.1}, "epochs": 36, "fit_s": 136, "1": 
0.94, "0.95,1.0,1.05": 0.946, "0.9,1.0,1.1": 0.944, "0.85,1.0,1.15": 0.948, 
"0.9,0.95,1.0,1.05,1.1": 0.944, "0.85,0.925,1.0,1.075,1.15": 0.942, "0.8,0.9,1.0,1.1,1.2": 0.944}
{"val": "yweweler", "tag": "default", "overrides": {}, "epochs": 40, "fit_s": 227, "1": 0.85, 
"0.95,1.0,1.05": 0.866, "0.9,1.0,1.1": 0.872, "0.85,1.0,1.15": 0.888, "0.9,0.95,1.0,1.05,1.1": 
0.868, "0.85,0.925,1.0,1.075,1.15": 0.886, "0.8,0.9,1.0,1.1,1.2": 0.886}
{"val": "yweweler", "tag": "speed0.1", "overrides": {"speed": 0.1}, "epochs": 33, "fit_s": 177, 
"1": 0.81, "0.95,1.0,1.05": 0.84, "0.9,1.0,1.1": 0.83, "0.85,1.0,1.15": 0.838, 
"0.9,0.95,1.0,1.05,1.1": 0.838, "0.85,0.925,1.0,1.075,1.15": 0.834, "0.8,0.9,1.0,1.1,1.2": 0.842}

Mean and variance normalisation (--normalization meanvar: each recording's log-mel divided by its
standard deviation after the per-band mean subtraction), 2026-12-06, one seed, load ~10-14, the
default test speeds 0.95/1/1.05 (the "0.95,1.0,1.05" column above is the same recipe with mean
normalisation): jackson 0.882 (mean 0.902), nicolas 0.818 (0.802), theo 0.948 (0.962), yweweler
0.898 (0.866); inner mean 0.887 vs 0.883, two up and two down, within one net's seed spread. The
default stays mean; meanvar is an option.

Ensemble of three nets inside the model (--members 3: trained side by side, each on its own
cross-entropy, probabilities averaged; "member0..2" are the same run's nets alone at the default
test speeds), 2026-12-06, seed 0, load ~9-14, the two weakest inner speakers:
{"val": "nicolas", "tag": "members3", "overrides": {"members": 3}, "epochs": 40, "fit_s": 1123, "1":
0.798, "0.95,1.0,1.05": 0.84, ..., "member0": 0.816, "member1": 0.778, "member2": 0.852}
{"val": "yweweler", "tag": "members3", "overrides": {"members": 3}, "epochs": 35, "fit_s": 1059, "1":
0.864, "0.95,1.0,1.05": 0.874, ..., "member0": 0.86, "member1": 0.854, "member2": 0.898}
The ensemble against its own members' mean: nicolas 0.840 vs 0.815 (+2.5), yweweler 0.874 vs
0.871 (+0.3); against the one-net default above (0.802, 0.866): +3.8, +0.8. The members alone
spread 7.4 and 4.4 points on one speaker. Training took about 5x as long per epoch (28-30 s against
5.3-5.7 s for the one-net runs above, at a similar but not equal load).
"""
import dataclasses, json, sys, time, warnings
import numpy as np
import keras
from benchmarks.speech import _load, LABELS, GROUPS, member_accuracies
from toolkit.audio import AudioClassifier

val_speaker = sys.argv[1]
overrides = {"backbone": "scratch", **(json.loads(sys.argv[2]) if len(sys.argv) > 2 else {})}  # the conv net's recipe
tag = sys.argv[3] if len(sys.argv) > 3 else "default"
data = _load()
inner = data.groups != "george"
train = data.subset(np.flatnonzero(inner & (data.groups != val_speaker)))
val = data.subset(np.flatnonzero(data.groups == val_speaker))
start = time.perf_counter()
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    clf = AudioClassifier(label_from_name=LABELS, group_from_name=GROUPS, seed=overrides.pop("seed", 0), **overrides).fit(train)
fit_s = time.perf_counter() - start
base = clf.model_
result = {"val": val_speaker, "tag": tag, "overrides": overrides, "epochs": len(clf.history_["loss"]), "fit_s": round(fit_s)}
cfg = clf.config
for speeds in [(), (0.95, 1.0, 1.05), (0.9, 1.0, 1.1), (0.85, 1.0, 1.15), (0.9, 0.95, 1.0, 1.05, 1.1), (0.85, 0.925, 1.0, 1.075, 1.15), (0.8, 0.9, 1.0, 1.1, 1.2)]:
    clf.config = dataclasses.replace(cfg, test_speeds=speeds)
    model = clf._inference_model(base) if speeds else keras.Model(base.input, base.get_layer("head")(base.get_layer("logmel")(base.input)))
    probs = model.predict(val.x, batch_size=256, verbose=0)
    result[",".join(map(str, speeds)) or "1"] = float(np.mean(probs.argmax(1) == val.y))
clf.config = cfg
for k, accuracy in enumerate(member_accuracies(clf, val)):  # each member alone, at the default test speeds
    result[f"member{k}"] = accuracy
print(json.dumps(result), flush=True)
