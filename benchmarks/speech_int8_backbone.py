"""Backbone-side levers for issue 18's int8 gap (george never used): the int8 file's 96-d features
against Keras's, on inner speaker splits (train on 3 of jackson, nicolas, theo, yweweler, score the 4th).

For each split, the waveform -> pooled features model is exported to int8 the way
``AudioClassifier.export`` does (calibrated on 500 of the split's training clips) after a variant's
change to the frozen embedding net; the file's features of the held-out speaker's 500 clips are
compared with Keras's: ``ferr`` = RMS of (int8 - float) in units of each feature's std; and heads
trained on the float features (``pretrained.fit_head``, seeds 0-2) count the clips where the head on
the int8 features disagrees with the head on the float ones (``flips``, mean over seeds).

Run: PYTHONPATH=. python -m benchmarks.speech_int8_backbone VARIANT [VARIANT ...]
(variants: ``base``: the first 3 blocks' conv, bn and floor ops float32, as before speech11; ``float=N``:
every op of the first N conv blocks and the crop before them float32, ``pretrained.float_blocks``;
``float=N,noreach``: the crop int8).

Results (ferr per split, flips per split summed over the 3 seeds' heads, then the mean over seeds of the
flips over the 2,000 held-out clips and the mean ferr; speech10 2026-12-07 load 2-7, speech11 load 5-7):

| variant | jackson | nicolas | theo | yweweler | flips / 2000 | mean ferr | KB |
|---|---|---|---|---|---|---|---|
| base (the export before speech11) | 0.1127, 9 | 0.1166, 22 | 0.1029, 6 | 0.1144, 6 | 14.3 | 0.1116 | 685 |
| float=3 (the same blocks, whole) | 0.0912, 8 | 0.0869, 21 | 0.0891, 3 | 0.0765, 9 | 13.7 | 0.0859 | 683 |
| float=4 | 0.0832, 8 | 0.0826, 19 | 0.0809, 2 | 0.0733, 8 | 12.3 | 0.0800 | 692 |
| float=5 | 0.0757, 13 | 0.0780, 15 | 0.0748, 1 | 0.0678, 6 | 11.7 | 0.0741 | 711 |
| float=7 (up to the second pooling) | 0.0708, 4 | 0.0735, 11 | 0.0704, 0 | 0.0613, 4 | 6.3 | 0.0690 | 749 |
| cle power 0.5 (speech10, not merged) | 0.0979, 5 | 0.0940, 30 | 0.0908, 2 | 0.1088, 2 | 13.0 | 0.0979 | |
| cle power 1 (speech10) | 0.1028, 9 | 0.1029, 33 | 0.1173, 4 | 0.1185, 6 | 17.3 | 0.1104 | |
| bias correction, 100 clips (speech10) | 0.1084, 9 | 0.1183, 29 | 0.1107, 4 | 0.1058, 2 | 14.7 | 0.1108 | |

Mean over seeds of (int8 - Keras accuracy) of the heads, per split: base -0.0007 / -0.0087 / -0.0013 /
+0.0027; float=7 +0.0007 / -0.0047 / 0.0 / +0.0027. In the file before speech11 the first blocks' LeakyReLUs
(unnamed layers the float patterns missed) and the log-mel crop ran in int8 between float ops; whole float
blocks lower the feature error on 4 of 4 splits, and every block more lowers it further. float=7 (blocks
0-6, up to the second max-pooling, 749 KB) became the export's behaviour (``pretrained.FLOAT_BLOCKS``).
"""

from __future__ import annotations

import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np

INNER = ("jackson", "nicolas", "theo", "yweweler")
WORK = Path("/tmp/speech11")
SEEDS = (0, 1, 2)


def _cfg(seed=0):
    from toolkit.audio import AudioClassifierConfig

    return AudioClassifierConfig(backbone="speech_embedding", seed=seed)


def _run_file(content: bytes, x: np.ndarray) -> np.ndarray:
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_content=content, num_threads=1)
    it.allocate_tensors()
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    rows = []
    for w in x:
        it.set_tensor(inp["index"], w[None])
        it.invoke()
        rows.append(it.get_tensor(out["index"])[0].copy())
    return np.array(rows)


def data() -> dict:
    """Inner clips, labels, speakers, float features (clean + 2 augmented copies), per-split indices."""
    path = WORK / "data.npz"
    if path.is_file():
        return dict(np.load(path))
    from sklearn.model_selection import train_test_split

    from benchmarks.speech import DATA, GROUPS, LABELS
    from toolkit.audio import AudioFormat, load_audio_folder
    from toolkit.audio.pretrained import PretrainedParts, augmented_copies

    d = load_audio_folder(DATA, AudioFormat(8000, 1.0), LABELS, GROUPS)
    inner = d.groups != "george"
    x, y, groups = d.x[inner], d.y[inner], d.groups[inner]
    cfg = _cfg()
    parts = PretrainedParts(cfg)
    out = {"x": x, "y": y, "groups": groups,
           "float": np.stack([parts.features(c) for c in [x] + augmented_copies(x, cfg)])}
    for speaker in INNER:
        train = np.flatnonzero(groups != speaker)
        n_val = int(round(cfg.validation_split * len(train)))
        rest, held = train_test_split(train, test_size=n_val, random_state=cfg.seed, stratify=y[train])
        rest = np.sort(rest)
        out[f"{speaker}_rest"], out[f"{speaker}_held"] = rest, np.sort(held)
        out[f"{speaker}_cal"] = rest[np.sort(np.random.default_rng(cfg.seed).choice(len(rest), 500, replace=False))]
    WORK.mkdir(parents=True, exist_ok=True)
    np.savez(path, **out)
    return out


def head_predictions(d: dict) -> dict:
    """Per split and seed, a head trained on the float features: (mean, variance, kernel, bias) of its
    normalisation and softmax layers (cached)."""
    from toolkit.audio.pretrained import fit_head

    path = WORK / "heads.npz"
    if path.is_file():
        with np.load(path) as npz:
            return {(s, seed): [npz[f"{s}_{seed}_{i}"] for i in range(4)] for s in INNER for seed in SEEDS}
    heads = {}
    for speaker in INNER:
        rest, held = d[f"{speaker}_rest"], d[f"{speaker}_held"]
        x = np.concatenate([c[rest] for c in d["float"]])
        for seed in SEEDS:
            layers, _ = fit_head(_cfg(seed), x, np.tile(d["y"][rest], len(d["float"])), d["float"][0][held],
                                 d["y"][held], 10)
            norm, dense = layers[0], layers[-1]
            heads[speaker, seed] = [np.asarray(norm.mean), np.asarray(norm.variance), *dense.get_weights()]
    np.savez(path, **{f"{s}_{seed}_{i}": a for (s, seed), ws in heads.items() for i, a in enumerate(ws)})
    return heads


def _apply(head, f):
    mean, variance, kernel, bias = head
    return ((f - mean.reshape(1, -1)) / np.maximum(np.sqrt(variance.reshape(1, -1)), 1e-7)) @ kernel + bias


def variant_model(name: str, calibration: np.ndarray):
    """(features model, float_nodes) of a variant: ``base`` keeps the first 3 blocks' conv, bn and floor
    ops float32 (the export before speech11); ``float=N`` every op of the first N blocks and the crop
    before them (``pretrained.float_blocks``); ``noreach`` leaves the crop int8."""
    from toolkit.audio.classifier import FLOAT_IN_INT8
    from toolkit.audio.pretrained import PretrainedParts, float_blocks

    parts = PretrainedParts(_cfg())
    model = parts.features_model
    opts = dict((kv.split("=") + [""])[:2] for kv in name.split(","))
    if "float" in opts:
        patterns = FLOAT_IN_INT8 + float_blocks(int(opts["float"])) + (() if "noreach" in opts else ("windows_reach",))
    else:
        patterns = FLOAT_IN_INT8 + float_blocks(3, ("conv", "bn", "floor"))
    return model, lambda t: any(p in t for p in patterns)


def score(name: str, d: dict, heads: dict) -> dict:
    from toolkit.edge.export import convert

    result = {"variant": name}
    for speaker in INNER:
        start = time.perf_counter()
        cal = d["x"][d[f"{speaker}_cal"]]
        model, float_nodes = variant_model(name, cal)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            content = convert(model, "int8", representative=cal, float_nodes=float_nodes)
        test = np.flatnonzero(d["groups"] == speaker)
        q, f = _run_file(content, d["x"][test]), d["float"][0][test]
        std = d["float"][0][d[f"{speaker}_rest"]].std(axis=0)
        ferr = float(np.sqrt(np.mean(((q - f) / std) ** 2)))
        y = d["y"][test]
        flips, gaps = [], []
        for seed in SEEDS:
            kp, qp = _apply(heads[speaker, seed], f).argmax(1), _apply(heads[speaker, seed], q).argmax(1)
            flips.append(int(np.sum(kp != qp)))
            gaps.append(float(np.mean(qp == y) - np.mean(kp == y)))
        result[speaker] = {"ferr": round(ferr, 4), "flips": flips, "gap": round(float(np.mean(gaps)), 4),
                           "kb": len(content) // 1024, "s": round(time.perf_counter() - start)}
        print(json.dumps({speaker: result[speaker], "variant": name}), flush=True)
    result["flips_total"] = sum(sum(result[s]["flips"]) for s in INNER) / len(SEEDS)
    result["ferr_mean"] = round(float(np.mean([result[s]["ferr"] for s in INNER])), 4)
    return result


if __name__ == "__main__":
    d = data()
    heads = head_predictions(d)
    for name in sys.argv[1:]:
        print(json.dumps(score(name, d, heads)), flush=True)
