"""The parser of ``toolkit``: ``train <task>`` generated from each registered task's config
fields and recipe options, and the arguments of the other verbs (explanation methods and
quantization presets read from the tasks' declarations)."""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from .config import COUNT, FRACTION, SEED, Bounded

_TYPES = {"int": int, "float": float, "str": str, "bool": bool}
#: What the generated ``toolkit train`` options parse numbers with: finite numbers (the config's
#: ``__post_init__`` checks the ranges); seeds in [0, SEED_MAX].
_PARSERS = {int: Bounded(int), float: Bounded(float)}
POSITIVE = COUNT
PORT = Bounded(int, 1, 65535, hint="E.g. 7860.")


def annotation(text: Any) -> tuple[type | None, int | str | None]:
    """(element type, tuple length or "+") of a config field's annotation; (None, None) if the
    CLI cannot express it."""
    text = str(text).replace(" ", "").replace("|None", "").replace("None|", "")
    if text.startswith("tuple[") and text.endswith("]"):
        inner = text[6:-1].split(",")
        return _TYPES.get(inner[0]), "+" if inner[-1] == "..." else len(inner)
    return _TYPES.get(text), None


def _field_argument(field: dataclasses.Field) -> tuple[list[str], dict] | None:
    meta = field.metadata
    kind, length = annotation(field.type)
    if not meta.get("cli", True) or not meta.get("serialize", True) or kind is None:
        return None
    default = field.default
    flags = list(meta.get("flags") or ["--" + ("no-" if kind is bool and default else "") + field.name.replace("_", "-")])
    help_text = meta.get("help", "").replace("%", "%%")
    kw: dict[str, Any] = {"dest": field.name, "default": argparse.SUPPRESS}
    if kind is bool:
        kw.update(action="store_false" if default else "store_true", help=help_text)
        return flags, kw
    shown = meta.get("none", "none") if default is None else (
        " ".join(map(str, default)) if isinstance(default, tuple) else default)
    parse = SEED if kind is int and (field.name == "seed" or field.name.endswith("_seed")) else _PARSERS.get(kind, kind)
    kw.update(type=parse, help=help_text if "default" in help_text else f"{help_text} (default {shown})".lstrip())
    if "choices" in meta:
        kw["choices"] = meta["choices"]
        kw["type"] = str if "none" in meta else kind
    if length is not None:
        kw.update(nargs="+", metavar=field.name.split("_")[-1].upper())
    return flags, kw


def _option_argument(option) -> tuple[list[str], dict]:
    kw: dict[str, Any] = {"dest": option.name, "default": argparse.SUPPRESS, "help": option.help.replace("%", "%%")}
    if option.flag:
        kw["action"] = "store_true"
    else:
        parse = option.type if option.choices else _PARSERS.get(option.type, option.type)  # int/float: finite
        kw.update(type=parse, choices=option.choices, nargs=option.nargs, required=option.required)
        if option.default is not None:
            kw["help"] = f"{kw['help']} (default {option.default})"
    return [option.option], kw


def train_arguments(task_class) -> dict[str, tuple[list[str], dict]]:
    """The ``toolkit train`` arguments of a task, by destination: recipe options, then config fields."""
    out = {o.name: _option_argument(o) for o in task_class.recipe_options}
    for field in dataclasses.fields(task_class.config_class):
        argument = _field_argument(field)
        if argument is not None and field.name not in out:
            out[field.name] = argument
    if "strategy" in {f.name for f in dataclasses.fields(task_class.config_class)} and "strategy" not in out:
        out["strategy"] = strategy_argument()
    return out


def strategy_argument() -> tuple[list[str], dict]:
    """``--strategy``, for tasks whose config has a ``strategy`` field (see toolkit.distributed)."""
    from .distributed import STRATEGIES

    return ["--strategy"], {"dest": "strategy", "default": argparse.SUPPRESS, "choices": STRATEGIES,
                            "help": "tf.distribute strategy: default (one device), mirrored (all local devices), "
                                    "multi-worker (the cluster in TF_CONFIG; `toolkit launch` sets it locally) "
                                    "(default default)"}


def config_values(cls, options: dict) -> dict:
    """The parsed options of ``train``/``tune`` as the recipe takes them: a field's ``none`` word
    becomes None, lists become tuples (one value repeated to the field's length)."""
    fields = {f.name: f for f in dataclasses.fields(cls.config_class)}
    options = dict(options)
    for name, value in list(options.items()):
        field = fields.get(name)
        if field is None:
            continue
        if "none" in field.metadata and value == field.metadata["none"]:
            options[name] = None
        elif isinstance(value, list):
            length = annotation(field.type)[1]
            options[name] = tuple(value * length if isinstance(length, int) and len(value) == 1 else value)
    return options


def add_scale_parsers(sub) -> None:
    """``toolkit launch`` (local multi-worker runs) and ``toolkit tune <task>`` (KerasTuner)."""
    from .base import registered_tasks
    from .config import tunable_fields

    p = sub.add_parser("launch", help="run a train or tune command in N local worker processes (a tf.distribute "
                                      "cluster on loopback, TF_CONFIG generated)")
    p.add_argument("--workers", type=COUNT, default=2, help="number of local worker processes (default 2)")
    p.add_argument("--host", default="127.0.0.1", help="address the workers listen on (default 127.0.0.1)")
    p.add_argument("command", nargs=argparse.REMAINDER, help="-- train TASK ... (or -- tune TASK ...)")

    tune = sub.add_parser("tune", help="search the task's declared hyperparameter ranges with KerasTuner; the best "
                                       "model and the results table go to --out")
    tasks = tune.add_subparsers(dest="task", required=True, metavar="TASK")
    for name, cls in registered_tasks().items():
        if not tunable_fields(cls.config_class):
            continue
        t = tasks.add_parser(name, help=f"{_summary(cls)} (searches {', '.join(tunable_fields(cls.config_class))})")
        t.add_argument("--trials", type=COUNT, required=True, help="number of searched configurations to train (the default config is scored too)")
        t.add_argument("--algorithm", default="random",
                       help="random (random search) or bayesian (Bayesian optimization) (default random)")
        t.add_argument("--params", nargs="+", default=None, metavar="FIELD",
                       help="fields to search (default: every declared range not fixed by an option below)")
        t.add_argument("--distributed", action="store_true",
                       help="KerasTuner chief/worker from KERASTUNER_TUNER_ID, KERASTUNER_ORACLE_IP and _PORT")
        t.add_argument("--search-seed", type=SEED, default=0, help="seed of the search (default 0)")
        for flags, kw in train_arguments(cls).values():
            if kw["dest"] != "strategy":
                t.add_argument(*flags, **kw)
        t.set_defaults(task_class=cls)


def _summary(cls) -> str:
    """``ImageClassifier: <the first line of its docstring>`` for ``toolkit train --help``."""
    return f"{cls.__name__}: {(cls.__doc__ or '').strip().splitlines()[0]}".replace("%", "%%")


def _add_train_parsers(sub) -> None:
    from .base import ALIASES, registered_tasks

    tasks = registered_tasks()
    families: dict[str, list] = {}
    for name, cls in tasks.items():
        if cls.family:
            families.setdefault(cls.family, []).append(cls)
        aliases = [a for a, target in ALIASES.items() if target == name and a not in families and a != cls.family]
        p = sub.add_parser(name, aliases=aliases, help=_summary(cls))
        for flags, kw in train_arguments(cls).values():
            p.add_argument(*flags, **kw)
        p.set_defaults(task_class=cls, family=None)
    for family, members in families.items():
        default = ALIASES.get(family, members[0].task_name)
        members.sort(key=lambda m: m.task_name != default)  # the default's help texts win
        p = sub.add_parser(family, help=f"train one of {[m.task_name for m in members]} (--algo; default {default})")
        p.add_argument("--algo", choices=[m.task_name for m in members], default=default)
        union: dict[str, tuple[list[str], dict]] = {}
        for member in members:
            for dest, argument in train_arguments(member).items():
                union.setdefault(dest, argument)
        for flags, kw in union.values():
            p.add_argument(*flags, **kw)
        p.set_defaults(task_class=None, family={m.task_name: m for m in members}, family_flags=union)


def build_parser() -> argparse.ArgumentParser:
    from .base import registered_tasks
    from .edge.export import QUANTIZATIONS

    tasks = registered_tasks()
    parser = argparse.ArgumentParser(
        prog="toolkit", description="Train, evaluate, explain, export and serve Keras 3 models (offline by default).")
    sub = parser.add_subparsers(dest="verb", required=True, metavar="COMMAND")
    train = sub.add_parser("train", help="train a model and save it to a folder")
    _add_train_parsers(train.add_subparsers(dest="task", required=True, metavar="TASK"))
    methods = tuple(dict.fromkeys(m for cls in tasks.values() for m in cls.explain_methods))
    method_help = "; ".join(f"{name}: {', '.join(cls.explain_methods)} (default {cls.default_explain_method()})"
                            for name, cls in tasks.items() if cls.explain_methods)

    p = sub.add_parser("evaluate", help="metrics of a saved model on data, as JSON")
    p.add_argument("model", help="saved model folder")
    p.add_argument("--data", default=None, help="test data (default: the test split recorded in the card)")
    p.add_argument("--out", default=None, help="folder for confusion_matrix.png and metrics.json")
    p.add_argument("--episodes", type=POSITIVE, default=None,
                   help="RL agents: greedy episodes (default 100); --data may name another environment id "
                        "with the same spaces")

    p = sub.add_parser("predict", help="top-k labels for images or texts (or a seq2seq output), as JSON")
    p.add_argument("model", help="saved model folder")
    given = p.add_mutually_exclusive_group(required=True)
    given.add_argument("--image", nargs="+", help="image file(s)")
    given.add_argument("--text", nargs="+", help="text(s), quoted")
    given.add_argument("--audio", nargs="+", help="audio file(s): WAV, FLAC, OGG or MP3 (speech models)")
    given.add_argument("--data", default=None,
                       help="a series (CSV or built-in name): anomaly scores per point (anomaly detectors)")
    p.add_argument("--out", default=None,
                   help="with --data: write the per-point scores to this CSV file; image outputs (denoiser, VAE): "
                        "a .png/.jpg (several inputs: a grid), a .npy, or a folder (one PNG per input)")
    p.add_argument("--top-k", type=POSITIVE, default=5, help="how many labels to list, best first (default 5)")
    p.add_argument("--tflite", default=None, help="run this .tflite file (in the model folder) instead of Keras")

    p = sub.add_parser("calibrate", help="classifiers: fit a temperature and the 'not sure' thresholds on held-out "
                                         "data, into the model's card")
    p.add_argument("model", help="saved model folder")
    p.add_argument("--data", default=None, help="held-out labelled images (default: the validation part of the "
                                                "training data the card records; never the test split)")
    p.add_argument("--max-flagged", type=Bounded(float, 0, 1, high_closed=False), default=0.05,
                   help="largest share of held-out in-domain images flagged 'not sure'")

    p = sub.add_parser("forecast", help="forecast the next values of a series with a time-series model")
    p.add_argument("model", help="saved forecaster folder")
    p.add_argument("--data", default=None,
                   help="the history: a CSV with the model's columns or a built-in series (default: the end of the "
                        "series the model was trained on)")
    p.add_argument("--horizon", type=POSITIVE, default=None, help="steps to forecast (default and maximum: the model's)")
    p.add_argument("--out", default=None, help="CSV file for time, p10, p50, p90 (default: JSON on stdout)")

    p = sub.add_parser("export", help="export to TFLite; writes the .tflite, labels.txt and card.json")
    p.add_argument("model", help="saved model folder")
    p.add_argument("--quantization", nargs="+", default=["float32"], choices=QUANTIZATIONS)
    p.add_argument("--data", default=None, help="calibration/test data (default: the data the model was trained on)")
    p.add_argument("--out", default=None, help="folder or .tflite path (default: the model folder)")
    p.add_argument("--allow-flex", action="store_true", help="allow TensorFlow (Flex) ops the phone must link in")

    p = sub.add_parser("compress", help="prune, cluster and/or quantization-aware train a model (TFMOT); "
                                         "--report: every variant side by side")
    p.add_argument("model", help="saved model folder (image classifiers, from-scratch text classifiers)")
    p.add_argument("--prune", type=FRACTION, default=None, help="target sparsity of the kernels, e.g. 0.8")
    p.add_argument("--cluster", type=Bounded(int, 2), default=None, help="distinct values per kernel, e.g. 16")
    p.add_argument("--qat", action="store_true", help="quantization-aware training (an int8 file)")
    p.add_argument("--quantization", default=None, choices=QUANTIZATIONS,
                   help="preset of the file (default: int8 for images, dynamic for text)")
    p.add_argument("--report", nargs="?", const="-", default=None, metavar="FILE",
                   help="make every variant (float32, float16, dynamic, int8, QAT, pruned, clustered, pruned + "
                        "clustered + QAT) into the model's folder and card; Markdown to stdout or FILE")
    p.add_argument("--data", default=None,
                   help="data to fine-tune and test on (default: the data the model was trained on)")
    p.add_argument("--epochs", type=POSITIVE, default=None, help="fine-tuning epochs per technique (default 6)")
    p.add_argument("--learning-rate", type=Bounded(float, 0, low_closed=False), default=None, help="fine-tuning learning rate (default 3e-4)")
    p.add_argument("--cluster-init", choices=["linear", "kmeans++"], default=None,
                   help="initial centroids (default linear)")
    p.add_argument("--int8-scales", choices=["channel", "tensor"], default=None,
                   help="int8 weight scales per output channel or per tensor (default: per tensor where it "
                        "agrees with the float model as well on the training samples)")
    p.add_argument("--out", default=None,
                   help="new model folder for the compressed model (default: the .tflite goes into MODEL)")

    p = sub.add_parser("explain", help="explain a prediction and save the rendered overlay")
    p.add_argument("model", help="saved model folder")
    p.add_argument("--image", default=None, help="an image file (vision, generative)")
    p.add_argument("--text", default=None, help="a text (nlp, dates)")
    p.add_argument("--audio", default=None, help="an audio file (speech)")
    p.add_argument("--data", default=None,
                   help="a series whose last window to explain (time series); an observation such as "
                        "'0.01,0.2,0.03,-0.1' (RL agents)")
    p.add_argument("--method", default=None, choices=methods, help=method_help)
    p.add_argument("--out", required=True,
                   help=".png (rendered), .npy (attributions), .json, or .html (highlighted text)")
    p.add_argument("--target", default=None,
                   help="class to explain (default: the predicted one); time series: the forecast step, 1-based")
    p.add_argument("--budget", type=POSITIVE, default=None,
                   help="samples (SHAP, LIME), noisy copies (Grad-CAM) or steps per latent dimension (traversal)")
    p.add_argument("--seed", type=SEED, default=0, help="seed of the sampling (default 0)")

    p = sub.add_parser("generate", help="new images from a VAE or GAN, as a grid (.png) or raw pixels (.npy)")
    p.add_argument("model", help="saved VAE or GAN folder")
    p.add_argument("--n", type=POSITIVE, default=64, help="number of images (default 64)")
    p.add_argument("--label", default=None, help="class to generate (conditional GANs; default: every class in turn)")
    p.add_argument("--seed", type=SEED, default=None, help="seed of the latent vectors (default: random)")
    p.add_argument("--out", required=True, help=".png or .jpg (a grid; one image as itself) or .npy (N x H x W x C)")
    p.add_argument("--tflite", default=None, help="run this exported .tflite (in the model folder) instead of Keras")

    p = sub.add_parser("play", help="render episodes of an RL agent to an animated GIF")
    p.add_argument("model", help="saved agent folder")
    p.add_argument("--out", required=True, help="the .gif file to write")
    p.add_argument("--episodes", type=POSITIVE, default=1, help="episodes to play (default 1)")
    p.add_argument("--seed", type=SEED, default=None, help="episode k starts from reset(seed=SEED + k)")
    p.add_argument("--env", default=None, help="another environment id with the same spaces (default: the agent's)")
    p.add_argument("--tflite", default=None, help="play this policy .tflite file (in the agent folder) instead")
    p.add_argument("--scale", type=Bounded(float, 0, 1, low_closed=False), default=0.5, help="frame size relative to the renderer's (default 0.5)")
    p.add_argument("--every", type=POSITIVE, default=1, help="keep every N-th frame (default 1: all)")

    p = sub.add_parser("serve", help="launch the Gradio demo (all tasks in tabs)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=PORT, default=7860)
    p.add_argument("--model-dir", default=None, help="vision model folder (default: the shipped digits model)")

    add_scale_parsers(sub)

    p = sub.add_parser("bench", help="run the benchmarks and regenerate the README's results table")
    p.add_argument("--only", nargs="*", default=None, help="benchmark names (default: all)")
    return parser
