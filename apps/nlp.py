"""NLP tab: sentiment of a sentence (MiniLM or a from-scratch BiGRU, Keras or TFLite), which words
drove it (LIME / SHAP), and human-written dates turned into ISO dates with their attention map.

Plain handler functions (tested directly) plus ``build_demo(...) -> gr.Blocks``. Nothing heavy
happens at import time: models load on the first request (or in ``warm_up``), once, and are
shared by all requests. A missing model folder is a message in the page, never a crash.
"""

from __future__ import annotations

import datetime as _dt
import functools
import logging
import time
from pathlib import Path
from typing import Any

from apps.common import (ACCURACY_COLUMNS, EXPLAIN, KERAS, MAKE_MODELS, PREDICT, SAVED_MODELS, UNSURE_MARK, ModelSlot,
                         batch_outputs, card_facts, data_error, folder_facts, folders_key, milliseconds, missing_note,
                         named, not_sure_note, notes_markdown, run_explanation, tab_header, user_errors,
                         warm_explainer)

logger = logging.getLogger(__name__)
NLP_MODELS = SAVED_MODELS / "nlp"
TITLE = "NLP"
MINILM = "MiniLM (pretrained)"
SCRATCH = "From scratch (BiGRU)"
DEFAULT_SENTIMENT_DIRS = {MINILM: NLP_MODELS / "sentiment_minilm", SCRATCH: NLP_MODELS / "sentiment_bigru"}
DEFAULT_DATES_DIR = NLP_MODELS / "dates_seq2seq"
EXPLAIN_METHODS = ("lime", "shap")
# Model evaluations per explanation: MiniLM costs ~20x the BiGRU per text, and the tab promises
# an answer within 5 s on two CPU cores (MiniLM, 64 words: ~3.5 s with LIME at 150).
EXPLAIN_BUDGETS = {"pretrained": 150, "scratch": 500}
SENTIMENT_EXAMPLES = [
    "the battery died after a day",
    "great phone, works perfectly",
    "terrible, broke after a day",
    "The food was okay but the service was painfully slow.",
    "I would happily buy this again.",
]
DATE_EXAMPLES = ["Sunday, 22 November 2026", "11/22/26", "november 22nd, 2026", "the 3rd of March 1999",
                 "2026/11/22"]
MONTH_WORDS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
GUESS_NOTE = ("The model always writes a date-shaped answer, even for text that is not a date: "
              "treat it as its best guess, and check which characters it looked at in the heatmap.")


class NLPService:
    """The sentiment models and the date translator, each loaded once and shared by all requests.

    ``sentiment_dirs`` maps the names shown in the model choice to model folders (default: the
    shipped MiniLM and BiGRU models); ``dates_dir`` is the date translator's folder.
    """

    def __init__(self, sentiment_dirs: dict[str, str | Path] | None = None, dates_dir: str | Path | None = None):
        dirs = DEFAULT_SENTIMENT_DIRS if sentiment_dirs is None else sentiment_dirs
        self._sentiment = {name: ModelSlot(name, d) for name, d in dirs.items()}
        self._dates = ModelSlot("dates", dates_dir if dates_dir is not None else DEFAULT_DATES_DIR)

    # ------------------------------------------------------------------ models
    def key(self) -> tuple:
        """The folders as :func:`shared_service`'s arguments (the explanation process loads them so)."""
        return folders_key({n: s.directory for n, s in self._sentiment.items()}), str(self.dates_dir)

    @property
    def model_names(self) -> list[str]:
        return list(self._sentiment)

    @property
    def dates_dir(self) -> Path:
        return self._dates.directory

    def sentiment_dir(self, name: str) -> Path:
        return self._slot(name).directory

    def default_model(self) -> str | None:
        """The first model whose folder is there (else the first name)."""
        names = self.model_names
        return next((n for n in names if (self._sentiment[n].directory / "card.json").is_file()),
                    names[0] if names else None)

    def _slot(self, name: str | None) -> ModelSlot:
        from toolkit.errors import DataError

        if not self._sentiment:
            raise DataError(f"No sentiment model is configured. {MAKE_MODELS}")
        if name in (None, ""):
            name = self.default_model()
        if name not in self._sentiment:
            raise DataError(f"Unknown model {name!r}. Choose one of {self.model_names}.")
        return self._sentiment[name]

    def sentiment(self, name: str | None = None):
        """The TextClassifier called ``name``."""
        return self._slot(name).load()

    def dates(self):
        """The DateTranslator."""
        return self._dates.load()

    def backends(self, name: str | None = None) -> list[str]:
        """Keras, then each TFLite file of the model that is on disk (none for MiniLM as shipped)."""
        return self._slot(name).backends()

    def all_backends(self) -> list[str]:
        out = [KERAS]
        for name in self.model_names:
            out += [b for b in self.backends(name) if b not in out]
        return out

    def predictor(self, name: str | None, backend: str | None):
        """The Keras task or one of its TFLite files, with ``prepare`` and ``probabilities``."""
        slot = self._slot(name)
        task = slot.load()
        if backend in (None, "", KERAS):
            return task
        choices = self.backends(name)
        if backend not in choices:
            from toolkit.errors import ModelFormatError

            raise ModelFormatError(
                f"{slot.name} has no model file {backend!r}. Choose one of {choices}"
                + (" (it ships no TFLite file: only Keras)." if len(choices) == 1 else ".")
            )
        from toolkit.edge import TFLiteModel

        return slot.runner(backend, lambda path: TFLiteModel(path, card=task.card()))

    def warm_up(self) -> None:
        """Load every model and run one prediction on each file, so the first request is fast."""
        from toolkit.errors import ToolkitError

        explained = False
        # The cheapest model first: it also warms up the explainers (importing LIME and SHAP).
        for name in sorted(self.model_names, key=lambda n: "pretrained" in _card_encoder(self._slot(n).directory)):
            try:
                for backend in self.backends(name):
                    predictor = self.predictor(name, backend)
                    predictor.probabilities(predictor.prepare("warming up"))
                if not explained:  # imports LIME and SHAP (seconds), once
                    for method in EXPLAIN_METHODS:
                        self.sentiment(name).explain("warming up the explainers", method=method, budget=8)
                    explained = True
            except ToolkitError:  # a missing model: the facts panel and each request say so
                pass
            except Exception:  # never stop the app from starting: each request reports its own error
                logger.exception("Warming up the %s model failed", name)
        try:
            self.dates().explain("22 nov 2026")
        except ToolkitError:
            pass
        except Exception:
            logger.exception("Warming up the dates model failed")


def _card_encoder(directory: Path) -> str:
    try:
        from toolkit.storage import read_card

        return "pretrained" if (read_card(directory).get("encoder") or {}).get("pretrained") else "scratch"
    except Exception:
        return "missing"


@functools.lru_cache(maxsize=4)
def shared_service(sentiment_dirs: tuple | None = None, dates_dir: str | None = None) -> NLPService:
    """One service per set of folders, so rebuilding the app does not reload models. Models load on
    first use (``warm_up`` loads them ahead: ``apps.main.launch`` runs it in the background)."""
    service = NLPService(dict(sentiment_dirs) if sentiment_dirs is not None else None, dates_dir)
    return service


# ---------------------------------------------------------------------- inputs


def checked_text(text: Any, empty_message: str, max_chars: int | None) -> tuple[str, list[str]]:
    """One request's text, checked like the classifier checks it (bytes must be UTF-8; empty,
    whitespace-only and binary-looking text is refused), then cut to ``max_chars`` with a note
    instead of the classifier's warning (warnings are per process, notes are per request)."""
    from toolkit.data.text import prepare_texts
    from toolkit.errors import DataError

    if text is None or (isinstance(text, (str, bytes)) and not text.strip()):
        raise DataError(empty_message)
    if not isinstance(text, (str, bytes)):
        raise DataError(f"Expected text. Received {type(text).__name__}.")
    (text,) = prepare_texts(text, max_chars=None)
    notes = []
    if max_chars is not None and len(text) > max_chars:
        notes.append(f"Your text has {len(text):,} characters; only the first {max_chars:,} were used.")
        text = text[:max_chars]
    return text, notes


def _sentiment_text(text: Any) -> tuple[str, list[str]]:
    from toolkit.data.text import MAX_TEXT_CHARS

    return checked_text(text, "Enter some text to classify: the text box is empty or only whitespace.",
                        MAX_TEXT_CHARS)


def _read_length_note(task, text: str) -> list[str]:
    """A note when the text is longer than the tokens the model reads."""
    length = task.sequence_length_ or task.config.sequence_length
    words = len(text.split())
    if words > length:
        unit = "words" if task.config.from_scratch else "word pieces"
        return [f"The model reads the first {length} {unit}; your text has {words:,} words, so the rest "
                "does not change the answer."]
    return []


def _first_words(text: str, n: int) -> tuple[str, bool]:
    """``text`` up to the end of its ``n``-th word (the explainer's word pattern), and whether
    words were cut."""
    from toolkit.explain.text import WORD_PATTERN

    end = 0
    for i, match in enumerate(WORD_PATTERN.finditer(text)):
        if i == n:
            return text[: end], True
        end = match.end()
    return text, False


def looks_like_date(text: str) -> bool:
    """Whether ``text`` holds what every date the model was trained on holds: a number or a
    month's name (its first three letters)."""
    lowered = text.lower()
    return any(c.isdigit() for c in lowered) or any(m in lowered for m in MONTH_WORDS)


# ---------------------------------------------------------------------- handlers


def _choice(value: Any, what: str) -> str | None:
    """A menu choice as text (None when empty), else a DataError naming ``what``."""
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise data_error(f"Expected {what} as one of the menu's names. Received {type(value).__name__}.")
    return value


def classify_rows(service: NLPService, rows: list) -> list:
    """Classify many requests with one model pass per (model, file): each row is
    ``(text, model_name, backend)``; returns per row the outputs of :func:`classify_text`, or the
    exception that refused it."""
    results: list = [None] * len(rows)
    groups: dict = {}
    for i, (text, model_name, backend) in enumerate(rows):
        try:
            text, notes = _sentiment_text(text)
            name = _choice(model_name, "the model") or service.default_model()
            backend = _choice(backend, "the model file") or KERAS
            predictor = service.predictor(name, backend)
            task = service.sentiment(name)
        except Exception as exc:
            results[i] = exc
            continue
        groups.setdefault((name, backend), (predictor, task, []))[2].append((i, text, notes))
    for (name, backend), (predictor, task, items) in groups.items():
        try:
            start = time.perf_counter()
            batch = predictor.prepare([text for _, text, _ in items])
            probs, features = predictor.probabilities_and_features(batch)
            elapsed = (time.perf_counter() - start) * 1000
            answers = predictor.assess_batch(batch, probs, len(task.class_names_), features)  # "not sure"
        except Exception as exc:
            for i, _, _ in items:
                results[i] = exc
            continue
        shared = f" (one pass for {len(items)} requests)" if len(items) > 1 else ""
        for (i, text, notes), answer in zip(items, answers):
            mark = UNSURE_MARK if answer["not_sure"] else ""
            scores = {row["label"] + mark: row["probability"] for row in answer["top_k"]}
            notes = notes + _read_length_note(task, text)
            note = f"**{name}** on **{backend}**: {milliseconds(elapsed)} for this prediction{shared}."
            if answer["not_sure"]:
                note = f"{not_sure_note('text', answer['why'])}\n\n{note}"
            results[i] = (scores, note + notes_markdown(notes))
    return results


@user_errors
def classify_text(service: NLPService, text: Any, model_name: str | None = None, backend: str = KERAS):
    """The class probabilities ({label: probability}, for gr.Label) and a latency note."""
    (result,) = classify_rows(service, [(text, model_name, backend)])
    if isinstance(result, Exception):
        raise result
    return result


def classify_batch(service: NLPService):
    """The ``batch=True`` handler of the Classify event: lists of texts, model names and files in,
    lists of labels and notes out (one model pass per model and file)."""

    def classify_text(texts, model_names=None, backends=None):
        n = len(texts)
        rows = list(zip(texts, model_names or [None] * n, backends or [KERAS] * n))
        return batch_outputs(classify_rows(service, rows), 2, (None, ""))

    return classify_text


@user_errors
def explain_text(service: NLPService, text: Any, model_name: str | None = None, method: str = "lime",
                 backend: str = KERAS):
    """The text with each word highlighted by its weight (HTML), and a note: target class, cost."""
    from toolkit.errors import DataError

    if not isinstance(method, str) or method not in EXPLAIN_METHODS:
        raise DataError(f"Unknown explanation method {method!r}. Choose one of {list(EXPLAIN_METHODS)}.")
    text, notes = _sentiment_text(text)
    name = _choice(model_name, "the model") or service.default_model()
    backend = _choice(backend, "the model file") or KERAS
    predictor = service.predictor(name, backend)  # LIME and SHAP only need predictions: any file answers
    task = service.sentiment(name)
    length = task.sequence_length_ or task.config.sequence_length
    shown, cut = _first_words(text, length)
    if cut:
        notes.append(f"Explained the first {length} words: the model reads no further.")
    budget = EXPLAIN_BUDGETS["scratch" if task.config.from_scratch else "pretrained"]
    explanation = task.explain(shown, method=method, budget=budget,
                               predictor=None if predictor is task else predictor)
    note = (
        f"**{method.upper()}** for class **{explanation.target}** "
        f"(probability {explanation.extra['probability']:.3f}) with {name} on {backend or KERAS}: "
        f"{explanation.seconds:.2f} s for {budget} model evaluations. "
        "Red words support the class, blue words speak against it."
    )
    return explanation.html, note + notes_markdown(notes)


def explain_job(key: tuple, text: Any, model_name: Any, method: Any, backend: Any):
    """:func:`explain_text` in the explanation process, on that process's copy of the models
    (``key``: :meth:`NLPService.key`)."""
    return explain_text.__wrapped__(shared_service(*key), text, model_name, method, backend)


def explain_handler(service: NLPService):
    """The Explain event's handler: the explanation runs in the lower-priority explanation
    process (``apps.common.run_explanation``), so predictions keep their CPU."""

    def explain_text(text, model_name=None, method="lime", backend=KERAS):
        return run_explanation(explain_job, service.key(), text, model_name, method, backend)

    return user_errors(explain_text)


@user_errors
def translate_date(service: NLPService, text: Any):
    """The ISO date the model reads in ``text``, its attention heatmap (uint8 RGB) and a note."""
    from toolkit.nlp.dates import END_TOKEN, normalize_text

    text, notes = checked_text(text, "Enter a date to translate, e.g. 'Sunday, 22 November 2026': the text box "
                                     "is empty or only whitespace.", None)
    translator = service.dates()
    limit = translator.config.max_input_length
    read = normalize_text(text)
    if len(read) > limit:
        notes.append(f"The model reads the first {limit} characters; the rest of your {len(read):,} was cut: "
                     f"{read[:limit]!r}.")
        read = read[:limit]  # what the model reads anyway; cut here so no warning is raised
    unknown = sorted({c for c in read if c not in set(translator.input_vocab_[2:])})
    if unknown:
        notes.append(f"Characters never seen in training, read as 'unknown': {' '.join(map(repr, unknown))}.")
    start = time.perf_counter()
    explanation = translator.explain(read)
    elapsed = (time.perf_counter() - start) * 1000
    tokens = explanation.extra["output_tokens"]
    iso = "" if tokens == [END_TOKEN] else "".join(tokens)
    try:
        _dt.date.fromisoformat(iso)
        valid = True
    except ValueError:
        valid = False
    if not valid:
        notes.append(f"{iso!r} is not a valid calendar date: the text is probably not a date the model knows.")
    if not looks_like_date(read):
        import gradio as gr

        gr.Warning("This does not look like a date (no number and no month name): the answer is a guess.")
        notes.insert(0, "**Not a date?** The text has no number and no month name, unlike every date the model "
                        "learned from, so the answer is a guess. Type a date such as 'Sunday, 22 November 2026'.")
    note = (f"Translated in {explanation.seconds * 1000:.0f} ms ({elapsed:.0f} ms with the heatmap). "
            f"{GUESS_NOTE}")
    return iso, explanation.image, note + notes_markdown(notes)


# ---------------------------------------------------------------------- facts


def missing_models(service: NLPService) -> str:
    """A markdown warning naming the model folders that are not there ("" when all are)."""
    return missing_note({**{name: service.sentiment_dir(name) for name in service.model_names},
                         "Dates": service.dates_dir})


def _sentiment_facts(name: str, card: dict) -> str:
    enc = card.get("encoder") or {}
    if enc.get("pretrained"):
        how = "fine-tuned" if enc.get("fine_tuned") else "frozen, with a trained classification head"
        encoder = f"pretrained `{enc.get('name')}` encoder ({how}; {enc.get('source', '')})"
    else:
        encoder = f"`{enc.get('name', card.get('config', {}).get('encoder'))}` encoder trained from scratch"
    lines = [f"{encoder}; labels {', '.join(card.get('labels') or [])}; reads the first "
             f"{card.get('input', {}).get('sequence_length', '?')} tokens."]
    metrics = card.get("metrics") or {}
    if "test_accuracy" in metrics:
        lines.append(f"**Keras test accuracy** {metrics['test_accuracy']:.4f}"
                     + (f" on {int(metrics['test_n_samples'])} sentences." if "test_n_samples" in metrics else "."))
    if "test_baseline_tfidf_accuracy" in metrics:  # the classical peer on the same split (toolkit.nlp.baselines)
        lines.append(f"**TF-IDF + linear SVM on the same split** {metrics['test_baseline_tfidf_accuracy']:.4f}.")
    return card_facts(card, name, lines, no_tflite="No TFLite file: this model runs on Keras only here.")


def _dates_facts(card: dict) -> str:
    cfg = card.get("config") or {}
    metrics = card.get("metrics") or {}
    lines = [f"Character-level seq2seq: bidirectional {str(cfg.get('cell', '?')).upper()} encoder, "
             f"{cfg.get('attention', '?')} attention, greedy decoding; reads the first "
             f"{cfg.get('max_input_length', '?')} characters (lower-cased)."]
    if "heldout_exact_match" in metrics:
        lines.append(f"**Held-out exact match** {metrics['heldout_exact_match']:.4f} "
                     f"on {int(metrics.get('heldout_n', 0)) or 'generated'} unseen dates.")
    columns = (("held-out exact match", "heldout_exact_match", "{:.4f}"), *ACCURACY_COLUMNS[1:])
    return card_facts(card, "Dates", lines, columns)


def model_facts(service: NLPService) -> str:
    """Markdown from each model's card: encoder, test accuracy, TFLite files, how it was made."""
    sections = [folder_facts(name, service.sentiment_dir(name), functools.partial(_sentiment_facts, name))
                for name in service.model_names]
    sections.append(folder_facts("Dates", service.dates_dir, _dates_facts))
    return "\n\n".join(sections)


# ---------------------------------------------------------------------- UI


def build_demo(sentiment_dirs: dict[str, str | Path] | None = None, dates_dir: str | Path | None = None,
               service: NLPService | None = None):
    import gradio as gr

    if service is None:
        service = shared_service(folders_key(sentiment_dirs), str(dates_dir) if dates_dir is not None else None)
    default = service.default_model()
    with gr.Blocks(title=TITLE) as demo:
        tab_header("### Text\nClassify the sentiment of a sentence and see which words decided it; "
                   "turn a date written any common way into an ISO date.", missing_models(service))
        with gr.Tab("Sentiment"):
            with gr.Row():
                with gr.Column():
                    text = gr.Textbox(label="Text (Enter classifies)", lines=1, max_lines=6,
                                      placeholder="Type a review sentence...", value=SENTIMENT_EXAMPLES[0])
                    gr.Examples(SENTIMENT_EXAMPLES, inputs=[text])
                    model = gr.Radio(service.model_names, value=default, label="Model")
                    backend = gr.Dropdown(service.backends(default) if default else [KERAS], value=KERAS,
                                          label="Model file", allow_custom_value=True,  # API: any model's file
                                          info="Keras, or a TFLite file as phones run it (the files of the chosen "
                                               "model)")
                    method = gr.Radio(list(EXPLAIN_METHODS), value="lime", label="Explanation method")
                    with gr.Row():
                        classify_btn = gr.Button("Classify", variant="primary")
                        explain_btn = gr.Button("Explain")
                with gr.Column():
                    labels = gr.Label(label="Sentiment")
                    latency = gr.Markdown()
                    highlights = gr.HTML(label="Which words mattered")
                    explain_note = gr.Markdown()
        with gr.Tab("Dates"):
            with gr.Row():
                with gr.Column():
                    date_text = gr.Textbox(label="A date, written any common way", value=DATE_EXAMPLES[0])
                    gr.Examples(DATE_EXAMPLES, inputs=[date_text])
                    translate_btn = gr.Button("Translate", variant="primary")
                with gr.Column():
                    iso = gr.Textbox(label="ISO date (YYYY-MM-DD)", interactive=False)
                    heatmap = gr.Image(label="Attention: which input characters each output character read",
                                       type="numpy", interactive=False)
                    date_note = gr.Markdown()
        with gr.Accordion("Model facts (from card.json)", open=False):
            gr.Markdown(model_facts(service))

        classify = classify_batch(service)
        explain = explain_handler(service)
        translate = named(translate_date, service, "translate_date")
        sentiment_outputs = [labels, latency, highlights, explain_note]

        def clear_sentiment():  # an answer or highlights of another text never stay on screen
            return None, "", "", ""

        def clear_highlights():
            return "", ""

        classify_btn.click(clear_highlights, None, [highlights, explain_note], api_name=False, queue=False).then(
            classify, [text, model, backend], [labels, latency], api_name="classify_text", **PREDICT)
        text.submit(clear_highlights, None, [highlights, explain_note], api_name=False, queue=False).then(
            classify, [text, model, backend], [labels, latency], api_name=False, **PREDICT)
        explaining = explain_btn.click(clear_highlights, None, [highlights, explain_note], api_name=False,
                                       queue=False).then(
            explain, [text, model, method, backend], [highlights, explain_note], api_name="explain_text", **EXPLAIN)
        stale_explanation = {"cancels": [explaining]}  # one still on its way belongs to the old text
        text.change(clear_sentiment, None, sentiment_outputs, api_name=False, queue=False,  # typing, an example
                    **stale_explanation)
        method.change(clear_highlights, None, [highlights, explain_note], api_name=False, queue=False,
                      **stale_explanation)
        translate_btn.click(translate, [date_text], [iso, heatmap, date_note], api_name="translate_date")
        date_text.submit(translate, [date_text], [iso, heatmap, date_note], api_name=False)
        date_text.change(lambda: ("", None, ""), None, [iso, heatmap, date_note], api_name=False, queue=False)

        def model_changed(name: str):  # only the chosen model's files, and no answer of the other model
            return (gr.update(choices=service.backends(name), value=KERAS), None, "", "", "")

        model.change(model_changed, [model], [backend, *sentiment_outputs], api_name=False, **stale_explanation)
        backend.change(clear_sentiment, None, sentiment_outputs, api_name=False, queue=False, **stale_explanation)
    return demo


def warm_up(sentiment_dirs: dict[str, str | Path] | None = None, dates_dir: str | Path | None = None) -> None:
    """Load the tab's models ahead of the first request (``apps.main.launch`` runs it in the background)."""
    service = shared_service(folders_key(sentiment_dirs), str(dates_dir) if dates_dir is not None else None)
    warm_explainer(explain_job, service.key(), "a warm-up", service.default_model(), "lime", KERAS)
    service.warm_up()
