"""Cross-validation of the distilled student's settings (toolkit.nlp.distill) inside the 1,600
training sentences of the shared split: 5 folds (StratifiedKFold(5, shuffle=True, random_state=0),
the folds of the nblr notes), the teacher (MiniLM frozen + head) refit on each fold's training part,
the variants made from that part only; the fold's validation part is never augmented nor labelled
by the teacher. The 400 test sentences are not read.

Run: ``PYTHONPATH=. python -m benchmarks.text_distill_cv SETTING ...``, SETTING ``plain`` (nblr without
distillation) or VARIANTS:TEMPERATURE:HARD_WEIGHT:EPOCH_DIVISOR[:MIN_SHARE[:MIN_CONFIDENCE]]; results go to
benchmarks/text_distill_cv.json. MIN_SHARE keeps only the variants with at least that share of their
sentence's words (0.7: in effect no span sampling); MIN_CONFIDENCE only those the teacher labels with at least
that probability. The MiniLM features of the texts are kept in /tmp/kd_cv_features.npz between runs.
"""

from __future__ import annotations

import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parent / "text_distill_cv.json"  # not in results/: no benchmark rows


def main(settings: list[str], folds: int = 5, max_variants: int = 10) -> dict:
    from sklearn.model_selection import StratifiedKFold

    from toolkit.data.text import TextData
    from toolkit.nlp import TextClassifier, TextClassifierConfig
    from toolkit.nlp import distill as kd
    from toolkit.nlp.baselines import accuracy, fit_baseline

    from .nlp import _splits

    train = _splits().train
    texts, y = list(train.texts), np.asarray(train.y)
    start = time.perf_counter()
    everything, owners = kd.distillation_set(train, _Prefetch(), max_variants, seed=0, with_owners=True)
    print(f"{len(everything.texts)} texts, features in {time.perf_counter() - start:.0f} s", flush=True)
    results: dict = {}
    splitter = StratifiedKFold(folds, shuffle=True, random_state=0)
    for setting in settings:
        if setting == "plain":  # nblr without distillation, on the same folds
            fields = ["0", "1", "1", "1", "0", "0"]
        else:
            fields = setting.split(":") + ["0", "0"][len(setting.split(":")) - 4:]
        variants, temperature, hard, divisor = int(fields[0]), float(fields[1]), float(fields[2]), int(fields[3])
        share, confident = float(fields[4]), float(fields[5])
        length = [len(t.split()) for t in everything.texts]
        kept = [np.array([j for j in own if length[j] >= share * length[i]], int) for i, own in enumerate(owners)]
        kd.EPOCH_DIVISOR = divisor
        accs = {"student": [], "teacher": [], "tfidf": [], "tfidf_augmented": []}
        secs = []
        for k, (tr, va) in enumerate(splitter.split(texts, y)):
            fold = TextData([texts[i] for i in tr], y[tr], list(train.class_names))
            val_texts, val_y = [texts[i] for i in va], y[va]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                teacher = kd.fit_teacher(TextClassifier, fold, seed=0)
                rows = np.concatenate([tr] + [kept[i][:variants] for i in tr]).astype(int)
                dset = kd.DistillationSet([everything.texts[i] for i in rows], None, len(tr), y[tr],
                                          list(train.class_names))
                dset.teacher = kd.teacher_probabilities(teacher, dset.texts)
                if confident:  # only the variants the teacher labels with at least that probability
                    sure = np.flatnonzero(dset.teacher[len(tr):].max(1) >= confident)
                    keep = np.r_[np.arange(len(tr)), len(tr) + sure]
                    dset = kd.DistillationSet([dset.texts[i] for i in keep], dset.teacher[keep], len(tr), y[tr],
                                              list(train.class_names))
                t0 = time.perf_counter()
                student = (TextClassifier(TextClassifierConfig(encoder="nblr", seed=0)).fit(fold) if setting == "plain"
                           else kd.fit_student(TextClassifier, TextClassifierConfig(encoder="nblr", seed=0), dset,
                                               temperature, hard))
                secs.append(time.perf_counter() - t0)
            names = np.asarray(train.class_names)
            accs["student"].append(float(np.mean(student.predict(val_texts) == names[val_y])))
            accs["teacher"].append(float(np.mean(teacher.predict(val_texts) == names[val_y])))
            accs["tfidf"].append(accuracy(fit_baseline("tfidf", fold.texts, fold.y), val_texts, val_y))
            accs["tfidf_augmented"].append(accuracy(fit_baseline("tfidf", dset.texts, dset.hard_labels()), val_texts,
                                                    val_y))
            print(setting, k, {n: round(v[-1], 4) for n, v in accs.items()}, f"{secs[-1]:.0f} s", flush=True)
        results = json.loads(OUT.read_text()) if OUT.is_file() else {}  # another run may have added settings
        results[setting] = {n: float(np.mean(v)) for n, v in accs.items()} | {"folds": accs, "student_seconds": secs}
        print(setting, {n: round(float(np.mean(v)), 4) for n, v in accs.items()}, flush=True)
        OUT.write_text(json.dumps(results, indent=2))
    return results


class _Prefetch:
    """A stand-in teacher that only computes (and so remembers) MiniLM features of the texts."""

    class_names_ = ["negative", "positive"]

    def probabilities(self, texts):
        from toolkit.nlp import TextClassifier, TextClassifierConfig, text_memo

        texts, cache = list(texts), Path("/tmp/kd_cv_features.npz")
        if cache.is_file():
            saved = np.load(cache, allow_pickle=False)
            if list(saved["texts"]) == texts:
                features = saved["features"]
                text_memo._MEMO.rows([("minilm", 64, t) for t in texts], lambda missing: features[missing])
                return np.full((len(texts), 2), 0.5, np.float32)
        features = TextClassifier(TextClassifierConfig(encoder="minilm"))._features(texts)
        np.savez(cache, texts=np.array(texts), features=features)
        return np.full((len(texts), 2), 0.5, np.float32)


if __name__ == "__main__":
    main(sys.argv[1:])
