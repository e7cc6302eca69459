"""Task-specific distillation (Tang et al., 2019, "Distilling Task-Specific Knowledge from BERT into
Simple Neural Networks"): a from-scratch student (random init, no pretrained weights: ``nblr`` by
default, token ids in, builtin TFLite ops) trained on a pretrained teacher's class probabilities
over its training texts plus augmented variants of them.

The teacher is the toolkit's own MiniLM classifier (frozen encoder + a trained head, what
``toolkit train nlp --encoder minilm`` makes), trained on the same training texts only. The
augmentation sees only those texts too (Tang et al.'s rules, without their part-of-speech
tagger): each word is dropped with :data:`P_DROP` (their mask) or replaced by a word drawn from
the training texts with :data:`P_SWAP`; then, with :data:`P_SPAN`, only a random span of 1-5
words is kept. The student's vocabulary and naive-Bayes ratios come from the training texts and
their true labels; its weights learn the teacher's probabilities (re-tempered by a temperature) on
the training texts and the variants, the true label mixed in on the training texts
(``hard_weight``), only the variants the teacher is sure of kept (``MIN_CONFIDENCE``).

It did not help here. 5-fold cross-validation inside the 1,600 training sentences of the shared
split (``benchmarks/text_distill_cv.py``: folds of ``StratifiedKFold(5, shuffle=True,
random_state=0)``, the teacher refit on each fold's training part, the variants made from that
part only, the student ``nblr`` seed 0; results in ``benchmarks/text_distill_cv.json``):
``nblr`` alone 0.868, the TF-IDF peer 0.855, the MiniLM teacher 0.886. Distilled, 10 variants
per text: the teacher's probabilities only (Tang et al.'s recipe) 0.850; true labels mixed in
at 0.5 0.854; without span sampling 0.850; only the variants the teacher labels with p >= 0.9,
true labels mixed in at 0.5, 0.856, or its hard labels on them and the true labels on the
training texts 0.859 (the defaults); no variants, the teacher's probabilities mixed with the true
labels at 0.5, 0.854. The TF-IDF peer trained on the same teacher-labelled sets (hard labels):
0.832 with every variant, 0.858 with the sure ones. The teacher is wrong on about 11% of unseen
sentences and fragments are hard for it; a bag-of-n-grams student over the training words gains
nothing it does not already see in the training texts.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from ..data.text import TextData, resolve_text_data
from ..errors import DataError, WeightsUnavailableError
from .encoders import ids_length
from .pretrained import minilm_path
from .training import CONVERGED_ENCODERS, train_model

# Tang et al.'s augmentation probabilities (their mask -> a dropped word; their POS-guided swap -> any
# training word).
P_DROP = 0.1
P_SWAP = 0.1
P_SPAN = 0.25
MAX_SPAN = 5
# Variants per training text, and the student's settings, chosen by 5-fold cross-validation inside the 1,600
# training sentences of the shared split (benchmarks/text_distill_cv.py; the module's notes): the variants the
# teacher labels with a probability of at least MIN_CONFIDENCE, with its hard label (a temperature of 0.1 makes
# its probabilities one-hot), the training texts with their true labels.
VARIANTS = 10
TEMPERATURE = 0.1
HARD_WEIGHT = 1.0
MIN_CONFIDENCE = 0.9
# The student trains for cfg.epochs // EPOCH_DIVISOR epochs (at least 3) over the (1 + variants)-times larger
# set, at the converged encoders' learning rate decayed along a cosine (toolkit.nlp.training.fit_converged).
EPOCH_DIVISOR = 4
TEACHERS = ("minilm",)


def augment(texts: list[str], variants: int, seed: int = 0) -> list[str]:
    """``variants`` augmented variants per text (see the module), new and distinct: none equals a
    training text or another variant, so there may be fewer."""
    if variants < 0:
        raise ValueError(f"variants must be >= 0. Received {variants}.")
    rng = np.random.default_rng(seed)
    words = [str(text).split() for text in texts]
    pool = [w for ws in words for w in ws]
    if not pool or not variants:
        return []
    seen, out = set(texts), []
    for ws in words:
        for _ in range(variants):
            draw = rng.random(len(ws))
            new = [pool[rng.integers(len(pool))] if d < P_SWAP else w for d, w in zip(draw, ws)
                   if not P_SWAP <= d < P_SWAP + P_DROP]
            if len(new) > 1 and rng.random() < P_SPAN:
                span = int(rng.integers(1, min(MAX_SPAN, len(new)) + 1))
                start = int(rng.integers(0, len(new) - span + 1))
                new = new[start:start + span]
            text = " ".join(new)
            if text and text not in seen:
                seen.add(text)
                out.append(text)
    return out


def soften(probabilities: np.ndarray, temperature: float) -> np.ndarray:
    """Probabilities re-tempered: softmax(log p / temperature)."""
    logits = np.log(np.clip(probabilities, 1e-7, 1.0)) / temperature
    logits -= logits.max(axis=1, keepdims=True)
    e = np.exp(logits)
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


def teacher_probabilities(teacher, texts: list[str]) -> np.ndarray:
    """The teacher's probabilities of ``texts``, computed in order of length (less padding per batch)."""
    order = np.argsort([len(t) for t in texts], kind="stable")
    out = np.zeros((len(texts), len(teacher.class_names_)), np.float32)
    if len(texts):
        out[order] = teacher.probabilities([texts[i] for i in order])
    return out


def fit_teacher(task_class: type, train: TextData, teacher: str = "minilm", seed: int = 0, verbose: int = 0):
    """The teacher classifier (``task_class``: :class:`~toolkit.nlp.TextClassifier`; a frozen pretrained
    encoder + a trained head) on the training texts only."""
    if teacher not in TEACHERS:
        raise ValueError(f"Unknown teacher {teacher!r}. Valid teachers: {list(TEACHERS)}.")
    try:
        minilm_path()
    except WeightsUnavailableError as exc:
        raise WeightsUnavailableError(f"Distillation needs the teacher's weights. {exc}") from exc
    return task_class(task_class.config_class(encoder=teacher, seed=seed)).fit(train, verbose=verbose)


@dataclasses.dataclass
class DistillationSet:
    """The texts a student learns from: the training texts, then their variants; the teacher's
    probabilities of each; the training texts' true labels."""

    texts: list[str]
    teacher: np.ndarray
    n_train: int
    y_train: np.ndarray
    class_names: list[str]

    def targets(self, temperature: float = TEMPERATURE, hard_weight: float = HARD_WEIGHT) -> np.ndarray:
        soft = soften(self.teacher, temperature)
        hard = np.eye(soft.shape[1], dtype=np.float32)[self.y_train]
        soft[:self.n_train] = hard_weight * hard + (1 - hard_weight) * soft[:self.n_train]
        return soft

    def hard_labels(self) -> np.ndarray:
        """The training texts' true labels, then the teacher's label of each variant."""
        return np.concatenate([self.y_train, self.teacher[self.n_train:].argmax(axis=1)])

    def confident(self, min_confidence: float) -> "DistillationSet":
        """The training texts and only the variants the teacher labels with at least that probability."""
        sure = self.n_train + np.flatnonzero(self.teacher[self.n_train:].max(axis=1) >= min_confidence)
        rows = np.r_[np.arange(self.n_train), sure].astype(int)
        return DistillationSet([self.texts[i] for i in rows], self.teacher[rows], self.n_train, self.y_train,
                               self.class_names)


def distillation_set(train: TextData, teacher, variants: int = VARIANTS, seed: int = 0,
                     min_confidence: float = MIN_CONFIDENCE, with_owners: bool = False):
    """A :class:`DistillationSet` of ``train`` and those of its variants the fitted ``teacher`` labels
    with at least ``min_confidence`` (with ``with_owners``: every variant, and each training text's
    variant rows, for cross-validation)."""
    texts = list(train.texts)
    known, extra, owners = set(texts), [], []
    for i, text in enumerate(texts):  # variants per text, so that a fold keeps only its own texts'
        mine = augment([text], variants, seed=seed * 1_000_003 + i) if variants else []
        mine = [t for t in mine if t not in known]
        owners.append(np.arange(len(texts) + len(extra), len(texts) + len(extra) + len(mine)))
        extra += mine
    every = texts + extra
    result = DistillationSet(every, teacher_probabilities(teacher, every), len(texts), np.asarray(train.y),
                             list(train.class_names))
    return (result, owners) if with_owners else result.confident(min_confidence)


def fit_student(task_class: type, config: Any, data: DistillationSet, temperature: float = TEMPERATURE,
                hard_weight: float = HARD_WEIGHT, verbose: int = 0, callbacks: list | None = None):
    """A from-scratch ``task_class`` (:class:`~toolkit.nlp.TextClassifier`) with ``config``, trained on
    ``data``'s teacher targets."""
    import keras
    import tensorflow as tf

    clf = task_class(config)
    cfg = clf.config
    if not cfg.from_scratch:
        raise ValueError(f"The distilled student must be a from-scratch encoder; {cfg.encoder!r} is pretrained.")
    keras.utils.set_random_seed(cfg.seed)
    clf.class_names_ = list(data.class_names)
    clf.sequence_length_ = ids_length(cfg.encoder, cfg.sequence_length)
    train_texts = data.texts[:data.n_train]
    model = clf._primed_scratch(train_texts, data.y_train)  # vocabulary and NB ratios: training texts only
    targets = data.targets(temperature, hard_weight)
    dataset = tf.data.Dataset.from_tensor_slices((data.texts, targets))
    epochs = max(3, cfg.epochs // EPOCH_DIVISOR)
    steps = int(np.ceil(len(data.texts) / cfg.batch_size)) * epochs
    rate = keras.optimizers.schedules.CosineDecay(cfg.learning_rate * CONVERGED_ENCODERS.get(cfg.encoder, 1.0), steps)
    history = train_model(model, dataset, None, epochs, rate, cfg, verbose, None, callbacks or [],
                          early_stopping=False, loss="categorical_crossentropy")
    clf.model_ = model
    clf.history_ = {k: [float(v) for v in vals] for k, vals in history.items()}
    clf._baseline_train = TextData(list(train_texts), np.asarray(data.y_train), list(data.class_names))
    clf.calibration_, clf.metrics_, clf.tflite_, clf.directory_ = None, {}, [], None
    return clf


def distill(task_class: type, config: Any, data: Any, teacher: str = "minilm", variants: int = VARIANTS,
            temperature: float = TEMPERATURE, hard_weight: float = HARD_WEIGHT, verbose: int = 0,
            callbacks: list | None = None):
    """Fit a teacher on ``data`` (training texts only), label them and ``variants`` augmented
    variants of each, and train a from-scratch student (``task_class`` with ``config``) on the
    teacher's probabilities. The student's ``distilled_from_`` (its card's ``training``) records the
    teacher, the augmentation and the settings."""
    config = task_class.config_class() if config is None else config
    if not config.from_scratch:
        raise ValueError(f"The distilled student must be a from-scratch encoder (e.g. nblr); {config.encoder!r} is "
                         "pretrained: train it directly, without distillation.")
    train = resolve_text_data(data, "train")
    if len(np.unique(train.y)) < 2:
        raise DataError(f"Expected at least 2 classes to train a classifier. Received {sorted(set(train.class_names))}."
                        " Give texts of every class.")
    seed = getattr(config, "seed", 0)
    teacher_clf = fit_teacher(task_class, train, teacher, seed=seed, verbose=verbose)
    dset = distillation_set(train, teacher_clf, variants, seed=seed)
    student = fit_student(task_class, config, dset, temperature, hard_weight, verbose, callbacks)
    student.data_spec_ = student._data_spec(data)
    student.distilled_from_ = {
        "teacher": f"{teacher} frozen encoder + head (toolkit train nlp --encoder {teacher}), trained on the same "
                   "training texts only",
        "augmentation": f"{variants} variants per training text (Tang et al. 2019: word dropped p={P_DROP}, "
                        f"replaced by a training word p={P_SWAP}, a 1-{MAX_SPAN} word span kept p={P_SPAN})",
        "min_confidence": MIN_CONFIDENCE, "texts": len(dset.texts), "temperature": temperature,
        "hard_weight": hard_weight,
    }
    return student
