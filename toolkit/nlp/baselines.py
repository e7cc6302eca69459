"""Classical text classifiers, the peers a user would pick instead of a neural network: every text
classifier's evaluation reports the TF-IDF one beside its own accuracy, trained on the same
training texts (scikit-learn; about a second on 2,000 sentences)."""

from __future__ import annotations

from typing import Sequence

import numpy as np

TFIDF_DESCRIPTION = "TF-IDF word 1-2-grams + character 2-5-grams (sublinear tf), linear SVM (C=1)"
NAIVE_BAYES_DESCRIPTION = "word 1-2-gram counts, multinomial naive Bayes"


def tfidf_svm():
    """An unfitted scikit-learn pipeline: TF-IDF word + character n-grams, then ``LinearSVC``."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.pipeline import make_pipeline, make_union
    from sklearn.svm import LinearSVC

    features = make_union(
        TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True),
        TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True),
    )
    return make_pipeline(features, LinearSVC(C=1.0))


def naive_bayes():
    """An unfitted scikit-learn pipeline: word 1-2-gram counts, then ``MultinomialNB``."""
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.naive_bayes import MultinomialNB
    from sklearn.pipeline import make_pipeline

    return make_pipeline(CountVectorizer(ngram_range=(1, 2)), MultinomialNB())


BASELINES = {"tfidf": tfidf_svm, "naive_bayes": naive_bayes}


def fit_baseline(name: str, texts: Sequence[str], y: np.ndarray):
    """A fitted baseline by name (``tfidf`` or ``naive_bayes``)."""
    if name not in BASELINES:
        raise ValueError(f"Unknown text baseline {name!r}. Valid names: {sorted(BASELINES)}.")
    return BASELINES[name]().fit(list(texts), np.asarray(y))


def accuracy(model, texts: Sequence[str], y: np.ndarray) -> float:
    """Share of ``texts`` a fitted baseline labels right (nan for no texts)."""
    if len(texts) == 0:
        return float("nan")
    return float(np.mean(model.predict(list(texts)) == np.asarray(y)))


def tfidf_accuracy(train_texts: Sequence[str], train_y: np.ndarray, texts: Sequence[str], y: np.ndarray) -> float:
    """Accuracy on (texts, y) of the TF-IDF + linear SVM baseline fitted on the training texts."""
    return accuracy(fit_baseline("tfidf", train_texts, train_y), texts, y)
