"""Date translation: a character-level seq2seq model with attention, human dates -> ISO dates.

>>> dt = DateTranslator().fit()                      # 30,000 generated dates, a few minutes on 2 CPU cores
>>> dt.translate(["Sunday, 22 November 2026", "11/22/26"])
['2026-11-22', '2026-11-22']
>>> dt.evaluate()                                     # 2,000 held-out generated dates
{'exact_match': 0.99..., 'char_accuracy': 0.99..., 'n': 2000}
>>> dt.explain("the 22nd of November 2026").save("attention.png")
>>> dt.save("dates"); dt.export("dates", quantization="dynamic")

How text becomes model input (the same in Keras, in the TFLite file's runner and on a phone):

1. Normalise: ``" ".join(text.split()).lower()``: surrounding whitespace removed, every run of
   whitespace (spaces, tabs, newlines) becomes one space, and the text is lower-cased, so
   "NOVEMBER", "November" and "november" are the same input.
2. Truncate to ``max_input_length`` characters (with a warning).
3. Map characters to ids: 0 is padding, 1 is any character never seen in training (OOV),
   2... are the training characters in sorted order (``vocab.txt`` lists them, line i = id i).
4. Right-pad with 0 to ``max_input_length``.

The model: an embedding and a bidirectional GRU/LSTM encode the characters; a GRU/LSTM decoder
started from the encoder's final states reads the previous output character (teacher forcing
while training) and attends (additive or dot-product attention) over the encoder's outputs.
Inference is greedy and unrolled for the fixed output length inside one graph, which is also
what the TFLite file contains: int32 character ids in, int32 output ids and attention out.
"""

from __future__ import annotations

import dataclasses
import time
import warnings
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..base import ExportPlan, Task, register_task
from ..config import check_choice, check_int, check_number, out_option, setting, strategy_setting, verbose_option
from ..distributed import in_strategy_scope, shard
from ..data.dates import (DATE_FORMATS, FIRST_DATE, LAST_DATE, format_date, generate_dates, heldout_dates,
                          normalize_text)
from ..errors import DataError, ModelFormatError
from ..explain.base import Explanation
from ..serving import traced
from ..storage import CARD_FILE
from .dates_lite import (
    END_ID, END_TOKEN, OOV_ID, OOV_TOKEN, OUTPUT_VOCAB_FILE, PAD_ID, PAD_TOKEN, SPACE_TOKEN, START_ID, START_TOKEN,
    VOCAB_FILE, TFLiteDateTranslator, attention_tokens, check_texts, decode_ids, encode_texts, read_vocab,
    render_attention, score_translations, warn_truncated, write_vocab,
)

__all__ = ["DATE_FORMATS", "DateTranslator", "DateTranslatorConfig", "TFLiteDateTranslator", "format_date",
           "generate_dates", "heldout_dates", "normalize_text", "read_vocab", "write_vocab"]


# ====================================================================== config
CELLS = ("gru", "lstm")
ATTENTIONS = ("additive", "dot")
HELDOUT_SIZE = 2000
VALIDATION_FRACTION = 0.05


@dataclasses.dataclass(frozen=True)
class DateTranslatorConfig:
    """Settings of a :class:`DateTranslator`; make variants with ``dataclasses.replace``.

    cell: ``"gru"`` or ``"lstm"``, for the bidirectional encoder and the decoder.
    attention: ``"additive"`` (Bahdanau-style, ``keras.layers.AdditiveAttention``) or ``"dot"``
        (Luong-style, ``keras.layers.Attention`` with a learned scale).
    units: size of each encoder direction and of the decoder.
    embedding_dim: size of the character embeddings.
    n_train: dates generated for training when ``fit()`` gets no data (plus 5% more, from
        another seed, for early stopping).
    epochs / batch_size / learning_rate: Adam; the learning rate drops 3x when the validation
        loss stops improving for ``max(1, patience // 2)`` epochs.
    max_input_length: characters the model reads; longer inputs are truncated with a warning.
    seed: seeds the generated data, the weights and the shuffling.
    patience: early stopping on validation loss (best weights restored).
    """

    cell: str = setting("gru", "recurrent cell of the encoder and the decoder", choices=CELLS)
    attention: str = setting("additive", "additive (Bahdanau) or dot (Luong) attention", choices=ATTENTIONS)
    units: int = setting(64, "size of each encoder direction and of the decoder", tune=(16, 256))
    embedding_dim: int = setting(32, "size of the character embeddings", tune=(8, 128))
    n_train: int = setting(30000, "dates generated for training", tune=(1000, 100000))
    epochs: int = setting(6, "epochs; early stopping may end sooner", tune=(1, 30))
    batch_size: int = setting(128, "dates per training step", tune=(32, 512))
    learning_rate: float = setting(3e-3, "Adam's learning rate", tune=(1e-4, 1e-2))
    max_input_length: int = setting(32, "characters the model reads; longer inputs are truncated")
    seed: int = setting(0, "seeds the generated data, the weights and the shuffling")
    patience: int = setting(3, "early-stopping patience in epochs", tune=(1, 10))
    strategy: Any = strategy_setting()

    def __post_init__(self) -> None:
        check_choice("cell", self.cell, CELLS)
        check_choice("attention", self.attention, ATTENTIONS)
        check_int(self, "units", "embedding_dim", "epochs", "batch_size", "patience")
        check_int(self, "n_train", low=20)
        check_int(self, "seed", low=0)
        check_int(self, "max_input_length", low=8)
        if self.max_input_length > 1024:
            raise ValueError(f"max_input_length must be an int in [8, 1024]. Received {self.max_input_length!r}.")
        check_number(self, "learning_rate", 0, 1, low_closed=False, high_closed=False)


# ====================================================================== task
@register_task("date_translator", aliases=("seq2seq", "dates"))
class DateTranslator(Task):
    """Human-written dates -> ISO dates (YYYY-MM-DD) with a character-level seq2seq model.

    >>> dt = DateTranslator().fit()                    # generated dates; or fit((inputs, targets))
    >>> dt.translate("november 22nd, 2026")            # ['2026-11-22']
    >>> inputs, outputs, matrix = dt.attention("22.11.2026")
    >>> dt.evaluate()["exact_match"]                   # 2,000 held-out generated dates

    Texts are normalised before the model sees them (lower-cased, whitespace collapsed; see the
    module docstring), so case does not matter. Any non-empty string gets a best-guess date and
    an attention map; empty strings and non-strings raise :class:`DataError`.
    """

    tags = frozenset({"translator"})
    input_kind = "text"
    explain_methods = ("attention",)
    quantizations = ("float32", "float16", "dynamic")
    refused_quantizations = {"int8": "int8 needs float inputs to calibrate, and the model takes character ids"}
    runner = "toolkit.nlp.dates_lite:TFLiteDateTranslator"
    recipe_options = (out_option(), verbose_option(2))

    config_class = DateTranslatorConfig
    compression_refusal = "the date translator's attention decoder runs a step loop outside one Keras graph"

    @classmethod
    def train_recipe(cls, out, *, command: str | None = None, **options: Any) -> dict:
        """Train on generated dates, score on the held-out ones, save to ``out``; returns {out, metrics}."""
        from ..config import config_and_options

        config, opts = config_and_options(cls.config_class, cls.recipe_options, options)
        model = cls(config).fit(verbose=opts["verbose"])
        model.metrics_ = {"heldout_" + k: v for k, v in model.evaluate().items()}
        model.command_ = command
        directory = model.save(out)
        return {"out": str(directory), "metrics": model.metrics_}

    def __init__(self, config: DateTranslatorConfig | None = None, **overrides: Any):
        super().__init__(config, **overrides)
        self.input_vocab_: list[str] = []
        self.output_vocab_: list[str] = []
        self.output_length_: int | None = None
        self.training_: dict = {}
        self._seen_inputs: set[str] | None = None
        self._decoder = None
        self._serve = None

    # ================================================================== model
    @staticmethod
    def _layers(cfg: DateTranslatorConfig, n_in: int, n_out: int) -> dict:
        import keras

        def rnn(name, **kwargs):
            cls = keras.layers.GRU if cfg.cell == "gru" else keras.layers.LSTM
            return cls(cfg.units, return_sequences=True, return_state=True, name=name, **kwargs)

        n_states = 1 if cfg.cell == "gru" else 2
        layers = {
            "input_embedding": keras.layers.Embedding(n_in, cfg.embedding_dim, mask_zero=True, name="input_embedding"),
            "encoder": keras.layers.Bidirectional(rnn("encoder_rnn"), name="encoder"),
            "attention_keys": keras.layers.Dense(cfg.units, use_bias=False, name="attention_keys"),
            "output_embedding": keras.layers.Embedding(n_out, cfg.embedding_dim, name="output_embedding"),
            "decoder": rnn("decoder", unroll=True),
            "attention": (
                keras.layers.AdditiveAttention(name="attention") if cfg.attention == "additive"
                else keras.layers.Attention(use_scale=True, name="attention")
            ),
            "attention_combine": keras.layers.Dense(cfg.units, activation="tanh", name="attention_combine"),
            "char_probabilities": keras.layers.Dense(n_out, activation="softmax", name="char_probabilities"),
        }
        for k in range(n_states):
            layers[f"bridge_{k}"] = keras.layers.Dense(cfg.units, activation="tanh", name=f"bridge_{k}")
        return layers

    def _encode_graph(self, layers: dict, enc_in, unroll: bool = False):
        """Encoder outputs, attention keys and the decoder's initial states.

        ``unroll=True`` runs a copy of the encoder unrolled over the input length (same weights):
        the TFLite converter cannot lower the while loop of a masked bidirectional RNN to builtin ops.
        """
        import keras

        n_states = 1 if self.config.cell == "gru" else 2
        embedded = layers["input_embedding"](enc_in)
        if unroll:
            encoder = _unrolled_copy(layers["encoder"])
            encoded = encoder(embedded)
            encoder.set_weights(layers["encoder"].get_weights())
        else:
            encoded = layers["encoder"](embedded)
        sequence, finals = encoded[0], encoded[1:]
        forward, backward = finals[:n_states], finals[n_states:]
        states = [
            layers[f"bridge_{k}"](keras.layers.Concatenate(name=f"final_state_{k}")([forward[k], backward[k]]))
            for k in range(n_states)
        ]
        keys = layers["attention_keys"](sequence)
        return sequence, keys, states

    def _decode_step(self, layers: dict, previous, sequence, keys, states):
        import keras

        out = layers["decoder"](layers["output_embedding"](previous), initial_state=states)
        decoded, states = out[0], list(out[1:])
        # Always ask for the scores: a Keras attention layer first called without them cannot
        # return them from a later call in another functional graph.
        context, weights = layers["attention"]([decoded, sequence, keys], return_attention_scores=True)
        combined = layers["attention_combine"](keras.layers.Concatenate()([decoded, context]))
        return layers["char_probabilities"](combined), states, weights

    def _training_model(self, layers: dict):
        import keras

        tx, ty = self.config.max_input_length, self.output_length_
        enc_in = keras.Input((tx,), dtype="int32", name="input_ids")
        dec_in = keras.Input((ty,), dtype="int32", name="previous_output_ids")
        sequence, keys, states = self._encode_graph(layers, enc_in)
        probs, _, _ = self._decode_step(layers, dec_in, sequence, keys, states)
        return keras.Model([enc_in, dec_in], probs, name=f"date_translator_{self.config.cell}_{self.config.attention}")

    def _model_layers(self) -> dict:
        names = ["input_embedding", "encoder", "attention_keys", "output_embedding", "decoder", "attention",
                 "attention_combine", "char_probabilities"]
        names += [f"bridge_{k}" for k in range(1 if self.config.cell == "gru" else 2)]
        try:
            return {name: self.model_.get_layer(name) for name in names}
        except ValueError as exc:
            raise ModelFormatError(f"The saved model is not a DateTranslator model: {exc}") from exc

    def _greedy_model(self, batch_size: int | None = None):
        """(input ids) -> (greedy output ids int32 (N, T_out), attention (N, T_out, T_in)), unrolled."""
        import keras

        layers = self._model_layers()
        enc_in = keras.Input((self.config.max_input_length,), batch_size=batch_size, dtype="int32", name="input_ids")
        sequence, keys, states = self._encode_graph(layers, enc_in, unroll=batch_size is not None)
        token = keras.ops.zeros_like(enc_in[:, :1]) + START_ID
        tokens, weights = [], []
        for _ in range(self.output_length_):
            probs, states, scores = self._decode_step(layers, token, sequence, keys, states)
            token = _argmax(probs)
            tokens.append(token)
            weights.append(scores)
        ids = keras.ops.concatenate(tokens, axis=1) if len(tokens) > 1 else tokens[0]
        attention = keras.ops.concatenate(weights, axis=1) if len(weights) > 1 else weights[0]
        return keras.Model(enc_in, [ids, attention], name="greedy_date_translator")

    def _run(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Greedy decoding of a batch of input ids in one compiled graph; no per-request model.predict."""
        if self._serve is None:
            import tensorflow as tf

            self._decoder = self._greedy_model()
            spec = tf.TensorSpec((None, self.config.max_input_length), tf.int32)
            self._serve = traced(self._decoder, spec, reduce_retracing=True)
        outs, atts = [], []
        for i in range(0, len(ids), 512):
            out, att = self._serve(ids[i : i + 512])
            outs.append(out.numpy())
            atts.append(att.numpy())
        return np.concatenate(outs), np.concatenate(atts)

    # ================================================================== data
    @staticmethod
    def _check_pairs(data: Any, what: str) -> tuple[list[str], list[str]]:
        if not (isinstance(data, (tuple, list)) and len(data) == 2):
            raise DataError(
                f"Expected {what} as (inputs, targets): two lists of strings, e.g. (['22 Nov 2026'], "
                f"['2026-11-22']), or None for generated dates. Received {type(data).__name__}."
            )
        inputs, _ = check_texts(data[0], f"{what} inputs")
        targets, _ = check_texts(data[1], f"{what} targets")
        if isinstance(data[0], str) or isinstance(data[1], str):
            raise DataError(f"Expected lists of strings for {what}, not single strings.")
        if len(inputs) != len(targets):
            raise DataError(
                f"Expected as many targets as inputs in {what}. Received {len(inputs)} inputs and "
                f"{len(targets)} targets."
            )
        return inputs, [t.strip() for t in targets]

    def _encode(self, texts: Sequence[str]) -> np.ndarray:
        ids, truncated = encode_texts(texts, self.input_vocab_, self.config.max_input_length)
        warn_truncated(truncated, self.config.max_input_length)
        return ids

    def _encode_targets(self, targets: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        index = {c: i for i, c in enumerate(self.output_vocab_) if i > END_ID}
        out = np.full((len(targets), self.output_length_), END_ID, dtype=np.int32)
        for row, text in enumerate(targets):
            out[row, : len(text)] = [index[c] for c in text]
        previous = np.concatenate([np.full((len(targets), 1), START_ID, np.int32), out[:, :-1]], axis=1)
        return previous, out

    def _dataset(self, inputs, targets, shuffle: bool):
        import tensorflow as tf

        previous, out = self._encode_targets(targets)
        ds = tf.data.Dataset.from_tensor_slices(((self._encode(inputs), previous), out))
        if shuffle:
            ds = ds.shuffle(len(inputs), seed=self.config.seed, reshuffle_each_iteration=True)
        return shard(ds.batch(self.config.batch_size).prefetch(tf.data.AUTOTUNE))  # arrays: by element

    # ================================================================== fit
    @in_strategy_scope
    def fit(self, data: Any = None, verbose: int = 0, callbacks: list | None = None,
            **overrides: Any) -> "DateTranslator":
        """Train on ``data``: ``(inputs, targets)`` lists, or None for ``n_train`` generated dates.

        Generated training dates use ``seed``; the early-stopping set (5% as many) uses
        ``seed + 1``. Given lists lose a random 5% to early stopping when there are at least 100
        pairs. Targets may be any strings (ISO dates for generated data); the output length is
        the longest target. Returns ``self``.
        """
        import keras

        if overrides:
            self.config = dataclasses.replace(self.config, **overrides)
        cfg = self.config
        keras.utils.set_random_seed(cfg.seed)
        start = time.perf_counter()
        if data is None:
            train_x, train_y = generate_dates(cfg.n_train, cfg.seed)
            val_x, val_y = generate_dates(max(100, int(cfg.n_train * VALIDATION_FRACTION)), cfg.seed + 1)
            self.data_spec_ = {
                "source": "generated", "n_train": cfg.n_train, "seed": cfg.seed, "validation_seed": cfg.seed + 1,
                "n_validation": len(val_x), "date_range": [FIRST_DATE.isoformat(), LAST_DATE.isoformat()],
                "formats": list(DATE_FORMATS),
            }
        else:
            inputs, targets = self._check_pairs(data, "training data")
            if len(inputs) >= 100:
                order = np.random.default_rng(cfg.seed).permutation(len(inputs))
                n_val = max(1, int(len(inputs) * VALIDATION_FRACTION))
                val, train = order[:n_val], order[n_val:]
                val_x, val_y = [inputs[i] for i in val], [targets[i] for i in val]
                train_x, train_y = [inputs[i] for i in train], [targets[i] for i in train]
            else:
                train_x, train_y, val_x, val_y = inputs, targets, [], []
            self.data_spec_ = {"source": "lists", "n_train": len(train_x), "n_validation": len(val_x)}

        chars = sorted({c for text in train_x for c in normalize_text(text)[: cfg.max_input_length]})
        self.input_vocab_ = [PAD_TOKEN, OOV_TOKEN, *chars]
        self.output_vocab_ = [START_TOKEN, END_TOKEN, *sorted({c for t in train_y + val_y for c in t})]
        self.output_length_ = max(len(t) for t in train_y + val_y)
        self._seen_inputs = {normalize_text(t) for t in train_x + val_x}

        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*truncated to their first.*")
            truncated = sum(len(normalize_text(t)) > cfg.max_input_length for t in train_x)
            train_ds = self._dataset(train_x, train_y, shuffle=True)
            val_ds = self._dataset(val_x, val_y, shuffle=False) if val_x else None
        if truncated:
            warnings.warn(
                f"{truncated} training input(s) are longer than max_input_length={cfg.max_input_length} and were "
                "truncated; raise max_input_length to keep them whole.",
                stacklevel=2,
            )

        layers = self._layers(cfg, len(self.input_vocab_), len(self.output_vocab_))
        self.model_ = self._training_model(layers)
        self._serve = self._decoder = None
        self.model_.compile(
            optimizer=keras.optimizers.Adam(cfg.learning_rate, clipnorm=1.0),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )
        monitor = "val_loss" if val_ds is not None else "loss"
        cbs = [
            keras.callbacks.EarlyStopping(monitor=monitor, patience=cfg.patience, restore_best_weights=True),
            keras.callbacks.ReduceLROnPlateau(monitor=monitor, factor=0.3, patience=max(1, cfg.patience // 2),
                                              min_lr=cfg.learning_rate / 100),
            *(callbacks or []),
        ]
        history = self.model_.fit(train_ds, validation_data=val_ds, epochs=cfg.epochs, callbacks=cbs,
                                  verbose=verbose, shuffle=False).history  # the dataset shuffles itself
        self.history_ = {k: [float(v) for v in vals] for k, vals in history.items()}
        self.training_ = {
            "epochs_run": len(self.history_.get("loss", [])),
            "batch_size": cfg.batch_size,
            "n_train": len(train_x),
            "n_validation": len(val_x),
            "seconds": round(time.perf_counter() - start, 2),
        }
        self.metrics_ = {}
        self.tflite_ = []
        self.directory_ = None
        return self

    # ================================================================== predict
    def translate(self, texts: Any) -> list[str]:
        """Greedy translation of one string or a list of strings -> a list of strings.

        Empty strings and non-strings raise :class:`DataError`; every other string gets the
        model's best guess (unknown characters are read as OOV; long texts are truncated).
        """
        self._check_fitted()
        items, _ = check_texts(texts)
        ids, _ = self._run(self._encode(items))
        return decode_ids(ids, self.output_vocab_)

    def predict(self, texts: Any) -> np.ndarray:
        """Like :meth:`translate`, as a numpy array of strings (dtype object), shape (N,)."""
        return np.asarray(self.translate(texts), dtype=object)

    # ================================================================== evaluate
    def heldout(self, n: int = HELDOUT_SIZE) -> tuple[list[str], list[str]]:
        """``n`` generated dates from ``seed + 2`` whose inputs the model did not train on."""
        self._check_fitted()
        if self._seen_inputs is None:
            spec = self.data_spec_ or {}
            seen: list[str] = []
            if spec.get("source") == "generated":
                seen = generate_dates(spec["n_train"], spec["seed"])[0]
                seen += generate_dates(spec.get("n_validation", 0), spec.get("validation_seed", spec["seed"] + 1))[0]
            self._seen_inputs = {normalize_text(t) for t in seen}
        return heldout_dates(n, self.config.seed + 2, self._seen_inputs)

    def reload_data(self) -> tuple[list[str], list[str]]:
        """The default evaluation data: 2,000 held-out generated dates (see :meth:`heldout`)."""
        return self.heldout()

    def evaluate(self, data: Any = None) -> dict:
        """Exact match and per-character accuracy on ``(inputs, targets)``, or by default on 2,000
        held-out generated dates (recorded in the card's metrics as ``heldout_*``).

        Returns ``{"exact_match", "char_accuracy", "n"}``.
        """
        self._check_fitted()
        inputs, targets = self.heldout() if data is None else self._check_pairs(data, "evaluation data")
        scores = score_translations(self.translate(inputs), targets)
        if data is None:
            self.metrics_.update({f"heldout_{k}": v for k, v in scores.items()})
        return scores

    # ================================================================== explain
    def attention(self, text: str) -> tuple[list[str], list[str], np.ndarray]:
        """The attention of the greedy translation of one text.

        Returns ``(input_tokens, output_tokens, matrix)``: the characters the model read (after
        normalising and truncation), the characters it wrote, and the weights, shape
        (len(output_tokens), len(input_tokens)), each row summing to 1.
        """
        self._check_fitted()
        items, single = check_texts(text, "text")
        if not single and len(items) != 1:
            raise DataError(f"attention() takes one text. Received {len(items)}.")
        ids = self._encode(items)
        out, att = self._run(ids)
        return attention_tokens(items[0], ids[0], out[0], att[0], self.input_vocab_, self.output_vocab_,
                                 self.config.max_input_length)

    def explain(self, text: str, method: str = "attention", target: Any = None, budget: int | None = None,
                seed: int = 0) -> Explanation:
        """Explain one translation by its attention: ``attributions`` is the (output x input)
        matrix, ``image`` its heatmap (uint8 RGB), ``target`` the translation.

        ``target``, ``budget`` and ``seed`` belong to the explain interface every task shares;
        attention reads the one greedy translation and needs no samples, so they are unused
        (a ``target`` other than None is an error).
        """
        if method != "attention":
            raise ValueError(f"Unknown explanation method {method!r} for dates. Valid methods: ['attention'].")
        if target is not None:
            raise DataError(
                f"A date translator explains its own translation; it takes no target. Received target={target!r}."
            )
        start = time.perf_counter()
        inputs, outputs, matrix = self.attention(text)
        seconds = time.perf_counter() - start
        translation = "".join(outputs)
        image = render_attention(matrix, inputs, outputs, title=f"{normalize_text(text)[:40]!r} -> {translation}")
        return Explanation(
            matrix, "attention", translation, seconds, image,
            extra={"input_tokens": list(inputs), "output_tokens": list(outputs)},
        )

    # ================================================================== save / load
    def _card_extra(self) -> dict:
        return {
            "input": {
                "dtype": "int32",
                "shape": [self.config.max_input_length],
                "max_length": self.config.max_input_length,
                "vocabulary": list(self.input_vocab_),
                "padding_id": PAD_ID,
                "oov_id": OOV_ID,
                "normalization": "' '.join(text.split()).lower(), truncated to max_length",
                "description": "character ids, right-padded with 0; 1 = a character never seen in training",
            },
            "output": {
                "dtype": "int32",
                "length": self.output_length_,
                "vocabulary": list(self.output_vocab_),
                "start_id": START_ID,
                "end_id": END_ID,
                "description": "greedy character ids; the text ends at the first <end> (id 1)",
            },
            "training": dict(self.training_),
        }

    def _load_extra(self, directory: Path, card: dict) -> None:
        try:
            self.input_vocab_ = list(card["input"]["vocabulary"])
            self.output_vocab_ = list(card["output"]["vocabulary"])
            self.output_length_ = int(card["output"]["length"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelFormatError(
                f"{directory / CARD_FILE} lacks the vocabularies of a date translator ({exc}). Re-save the model."
            ) from exc
        self.training_ = dict(card.get("training") or {})
        self._seen_inputs = None
        self._serve = self._decoder = None

    def _save_extra(self, directory: Path) -> None:
        if self.history_:
            from ..plotting import training_curves_png

            (directory / "training_curves.png").write_bytes(training_curves_png(self.history_))

    # ================================================================== export
    def _export_plan(self, data: Any, quantization: str) -> ExportPlan:
        """Greedy decoding for one sentence (int32 character ids (1, max_input_length) in; greedy
        output ids (1, output_length) and attention (1, output_length, max_input_length) out),
        checked on ``data``: ``(inputs, targets)``, default 2,000 held-out generated dates."""
        pairs = self.heldout() if data is None else self._check_pairs(data, "export check data")
        return ExportPlan(self._greedy_model(batch_size=1), check=pairs, sample=pairs[0][0])

    def _write_export_files(self, directory: Path) -> None:
        write_vocab(directory / VOCAB_FILE, self.input_vocab_)
        write_vocab(directory / OUTPUT_VOCAB_FILE, self.output_vocab_)

    def _export_checks(self, runner, plan: ExportPlan) -> dict:
        """The file's held-out exact match next to the Keras model's, their agreement, its ops."""
        inputs, targets = plan.check
        keras_out, lite_out = self.translate(inputs), runner.translate(inputs)
        tx, ty = self.config.max_input_length, self.output_length_
        return {
            "vocab_file": VOCAB_FILE,
            "output_vocab_file": OUTPUT_VOCAB_FILE,
            "input": {
                "dtype": "int32", "shape": [1, tx],
                "description": f"character ids of the normalised text (see {VOCAB_FILE}: line i = id i; "
                               f"{PAD_TOKEN} = 0 = padding, {OOV_TOKEN} = 1 = unknown character, "
                               f"{SPACE_TOKEN} = the space), right-padded with 0",
            },
            "outputs": [
                {"dtype": "int32", "shape": [1, ty],
                 "description": f"greedy output ids (see {OUTPUT_VOCAB_FILE}); text ends at the first {END_TOKEN}"},
                {"dtype": "float32", "shape": [1, ty, tx],
                 "description": "attention weights of each output character over the input characters"},
            ],
            "normalization": "' '.join(text.split()).lower(), truncated to max_input_length",
            "builtin_ops_only": not any(op.startswith("Flex") for op in runner.ops),
            "ops": runner.ops,
            "heldout_exact_match": score_translations(lite_out, targets)["exact_match"],
            "keras_exact_match": score_translations(keras_out, targets)["exact_match"],
            "agreement_with_keras": float(np.mean([a == b for a, b in zip(lite_out, keras_out)])),
            "n_heldout": len(targets),
        }


def _unrolled_copy(encoder):
    """An unbuilt copy of a Bidirectional RNN layer with ``unroll=True`` (copy the weights once built).

    Keras 3.15's unrolled RNN zeroes the masked outputs of a ``go_backwards`` layer with the mask
    in the wrong time order; without that zeroing the masked (leading, reversed) steps already
    output zeros, so the copy's backward layer matches the while-loop layer exactly.
    """
    import keras

    config = keras.layers.serialize(encoder)
    inner = config["config"]
    for key in ("layer", "backward_layer"):
        if inner.get(key):
            inner[key]["config"]["unroll"] = True
    copy = keras.layers.deserialize(config)
    copy.backward_layer.zero_output_for_mask = False
    return copy


def _argmax(probs):
    """The first index of the largest value, with builtin TFLite ops only: keras.ops.argmax of a
    float tensor adds a BitwiseAnd (its -0.0 fix) that TFLite has only as a Flex op."""
    import keras

    is_max = keras.ops.equal(probs, keras.ops.max(probs, axis=-1, keepdims=True))
    return keras.ops.argmax(keras.ops.cast(is_max, "int32"), axis=-1)
