"""Cross-validation of the distilled student's settings (toolkit.nlp.distill) inside the 1,600
training sentences of the shared split: 5 folds (StratifiedKFold(5, shuffle=True, random_state=0),
the folds of the nblr notes), the teacher (MiniLM frozen + head) refit on each fold's training part,
the variants made from that part only; the fold's validation part is never augmented nor labelled
by the teacher. The 400 test sentences are not read.

Run: ``PYTHONPATH=. python -m benchmarks.text_distill_cv VARIANTS:TEMPERATURE:HARD_WEIGHT:EPOCH_DIVISOR ...``
(results appended to benchmarks/results/text_distill_cv.json).
"""

from __future__ import annotations

import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parent / "results" / "text_distill_cv.json"


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
    results = json.loads(OUT.read_text()) if OUT.is_file() else {}
    splitter = StratifiedKFold(folds, shuffle=True, random_state=0)
    for setting in settings:
        variants, temperature, hard, divisor = setting.split(":")
        variants, temperature, hard, divisor = int(variants), float(temperature), float(hard), int(divisor)
        kd.EPOCH_DIVISOR = divisor
        accs = {"student": [], "teacher": [], "tfidf": [], "tfidf_augmented": []}
        secs = []
        for k, (tr, va) in enumerate(splitter.split(texts, y)):
            fold = TextData([texts[i] for i in tr], y[tr], list(train.class_names))
            val_texts, val_y = [texts[i] for i in va], y[va]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                teacher = kd.fit_teacher(TextClassifier, fold, seed=0)
                rows = np.concatenate([tr] + [owners[i][:variants] for i in tr]).astype(int)
                dset = kd.DistillationSet([everything.texts[i] for i in rows], None, len(tr), y[tr],
                                          list(train.class_names))
                dset.teacher = kd.teacher_probabilities(teacher, dset.texts)
                t0 = time.perf_counter()
                student = kd.fit_student(TextClassifier, TextClassifierConfig(encoder="nblr", seed=0), dset, temperature, hard)
                secs.append(time.perf_counter() - t0)
            names = np.asarray(train.class_names)
            accs["student"].append(float(np.mean(student.predict(val_texts) == names[val_y])))
            accs["teacher"].append(float(np.mean(teacher.predict(val_texts) == names[val_y])))
            accs["tfidf"].append(accuracy(fit_baseline("tfidf", fold.texts, fold.y), val_texts, val_y))
            accs["tfidf_augmented"].append(accuracy(fit_baseline("tfidf", dset.texts, dset.hard_labels()), val_texts,
                                                    val_y))
            print(setting, k, {n: round(v[-1], 4) for n, v in accs.items()}, f"{secs[-1]:.0f} s", flush=True)
        results[setting] = {n: float(np.mean(v)) for n, v in accs.items()} | {"folds": accs, "student_seconds": secs}
        print(setting, {n: round(float(np.mean(v)), 4) for n, v in accs.items()}, flush=True)
        OUT.write_text(json.dumps(results, indent=2))
    return results


class _Prefetch:
    """A stand-in teacher that only computes (and so remembers) MiniLM features of the texts."""

    class_names_ = ["negative", "positive"]

    def probabilities(self, texts):
        from toolkit.nlp import TextClassifier, TextClassifierConfig

        TextClassifier(TextClassifierConfig(encoder="minilm"))._features(list(texts))
        return np.full((len(texts), 2), 0.5, np.float32)


if __name__ == "__main__":
    main(sys.argv[1:])
