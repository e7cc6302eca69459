"""Hyperparameter search with KerasTuner over the ranges the task configs declare.

A config field declared with ``setting(..., tune=(low, high))`` is a dimension of the search:
an ``hp.Int`` for int fields, an ``hp.Float`` for float fields (log-scaled when the range spans
two decades or more, as learning rates do). ``toolkit tune <task>`` takes the same options as
``toolkit train <task>``; a config field given on the command line is fixed, not searched, and
``--params`` narrows the search to some fields. No task-specific code: each trial runs the
task's ``train_recipe`` into its own folder.

How a configuration is chosen (measured in ``benchmarks/distributed.py``, ``tune_*``):

- the score is what the user cares about first: the validation accuracy of the saved model (the
  epoch early stopping keeps, the one of lowest validation loss), the validation loss breaking
  ties (``val_score = (1 - val_accuracy) + 0.001 * val_loss``; tasks without an accuracy are
  scored by the validation loss alone). Validation is a share of the training data, never the
  test split;
- the default config is always scored too, as trial ``default`` (the same data, options and
  seed), so the search returns a searched configuration only when it beat the default on
  validation (a tie keeps the default);
- while searching, a config with a ``validation_split`` field holds out at least
  ``SELECTION_SPLIT`` (a quarter) of the training data, so that the choice does not rest on a
  handful of examples (a tenth of ants/bees is 20 photos); the winner is then trained again
  exactly as ``toolkit train`` with its values would (the usual ``validation_split``), and that
  model is the result. With ``validation_split`` given as an option, the trials use it and the
  winning trial's model is kept as it is.

The search lives in ``OUT/tuner`` (KerasTuner's project: the oracle's state and one folder per
trial, the default's and the final model's folders), so an interrupted search resumes where it
stopped when the command is run again. When it ends, the final model becomes ``OUT``
(atomically), its card holding the chosen config and a ``tuning`` entry: the searched ranges,
the fixed values and a table of every trial, the default included (values, validation accuracy
and loss, status).

``--distributed`` runs KerasTuner's own distributed mode from its environment variables:
``KERASTUNER_TUNER_ID`` (``chief`` runs the oracle, the others run trials; the chief scores the
default and trains the final model once they are done), ``KERASTUNER_ORACLE_IP`` and
``KERASTUNER_ORACLE_PORT``; ``OUT`` must be on storage every worker shares. ``toolkit launch
--workers N -- tune ...`` sets them for N local processes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import sys
from pathlib import Path
from typing import Any, Iterable

from .config import tunable_fields
from .errors import ToolkitError

ALGORITHMS = ("random", "bayesian")
OBJECTIVE = "val_score"
TIE_BREAK = 1e-3  # weight of the validation loss in the score: it only breaks accuracy ties
SELECTION_SPLIT = 0.25  # the least validation share while searching (fields named validation_split)
TUNER_DIR = "tuner"
PROJECT = "search"
TRIAL_MODEL = "model"
DEFAULT_TRIAL = "default"
FINAL = "final"
KERASTUNER_ENV = ("KERASTUNER_TUNER_ID", "KERASTUNER_ORACLE_IP", "KERASTUNER_ORACLE_PORT")


class TuningError(ToolkitError, ValueError):
    """A search that cannot run: no or empty ranges, no trials, a missing environment."""


@dataclasses.dataclass(frozen=True)
class Dimension:
    """One searched config field: its type, range and scale."""

    name: str
    kind: type
    low: float
    high: float
    log: bool = False

    def declare(self, hp: Any) -> None:
        if self.kind is int:
            hp.Int(self.name, int(self.low), int(self.high))
        else:
            hp.Float(self.name, float(self.low), float(self.high), sampling="log" if self.log else "linear")

    def describe(self) -> dict:
        return {"name": self.name, "type": self.kind.__name__, "low": self.low, "high": self.high,
                "scale": "log" if self.log else "linear"}


def _kind(field: dataclasses.Field) -> type | None:
    """int or float from a field's annotation (``int``, ``int | None``, ``float``...); None otherwise."""
    text = str(field.type).replace(" ", "").replace("|None", "").replace("None|", "")
    return {"int": int, "float": float}.get(text) or {int: int, float: float}.get(field.type)


def search_space(config_class: type, params: Iterable[str] | None = None,
                 fixed: Iterable[str] = ()) -> list[Dimension]:
    """The dimensions of a search over ``config_class``'s declared ranges: ``params`` (default:
    every declared field) less the ``fixed`` ones."""
    declared = tunable_fields(config_class)
    name = config_class.__name__
    if not declared:
        raise TuningError(f"{name} declares no search ranges (setting(..., tune=(low, high))), so there is nothing to "
                          "tune. Train with chosen values instead.")
    params = list(params or [])
    unknown = sorted(set(params) - set(declared))
    if unknown:
        raise TuningError(f"--params names {unknown}, which {name} does not declare a search range for. Tunable: "
                          f"{sorted(declared)}.")
    fixed = set(fixed)
    both = sorted(set(params) & fixed)
    if both:
        raise TuningError(f"{both} are both searched (--params) and fixed (given as options). Drop one of the two.")
    chosen = params or [n for n in declared if n not in fixed]
    if not chosen:
        raise TuningError(f"Nothing to search: every field {name} can tune ({sorted(declared)}) is fixed by an option. "
                          "Leave some out or name them with --params.")
    dims = []
    for field_name in chosen:
        field = declared[field_name]
        kind = _kind(field)
        low, high = field.metadata["tune"]
        if kind not in (int, float):
            raise TuningError(f"{name}.{field_name} declares a search range but is a {field.type}; only int and "
                              "float fields can be searched.")
        if not low < high:
            raise TuningError(f"The search range of {name}.{field_name} is empty: tune=({low!r}, {high!r}). Expected "
                              f"low < high. Widen the range in its setting(...), or fix the value with "
                              f"--{field_name.replace('_', '-')}.")
        dims.append(Dimension(field_name, kind, low, high, log=kind is float and low > 0 and high / low >= 100))
    return dims


def _check_out(out: Path) -> None:
    """``out`` may be new, empty, a model folder, or a search in progress; nothing else is touched."""
    if not out.exists():
        return
    if not out.is_dir():
        raise TuningError(f"--out {str(out)!r} is a file. Expected a folder for the best model and the search.")
    names = {p.name for p in out.iterdir()}
    if names and "card.json" not in names and names != {TUNER_DIR}:
        raise TuningError(f"--out {str(out)!r} is not empty and is neither a toolkit model folder nor a search in "
                          "progress. Choose a new or empty folder.")


def _check_distributed(distributed: bool) -> None:
    missing = [name for name in KERASTUNER_ENV if not os.environ.get(name)]
    if distributed and missing:
        raise TuningError(
            f"--distributed runs KerasTuner's chief and workers from the environment, but {missing} are not set. Set "
            "KERASTUNER_TUNER_ID (chief on one machine, tuner1, tuner2... on the others), KERASTUNER_ORACLE_IP and "
            "KERASTUNER_ORACLE_PORT (the chief's address) on every machine, or run `toolkit launch --workers N -- "
            "tune ...` to try it locally.")
    if not distributed and not missing:
        raise TuningError("KERASTUNER_ORACLE_IP is set but --distributed is not: pass --distributed to join the "
                          "distributed search, or unset the KERASTUNER_* variables.")


def _oracle(algorithm: str, trials: int, hp: Any, seed: int):
    import keras_tuner

    objective = keras_tuner.Objective(OBJECTIVE, direction="min")
    common = dict(objective=objective, max_trials=trials, hyperparameters=hp, seed=seed, tune_new_entries=False,
                  allow_new_entries=False)
    if algorithm == "bayesian":
        return keras_tuner.oracles.BayesianOptimizationOracle(**common)
    return keras_tuner.oracles.RandomSearchOracle(**common)


def validation_scores(folder: Path) -> dict:
    """The saved model's validation scores, from the ``history.json`` of its folder: the epoch of
    lowest ``val_loss`` (the one early stopping restores; after a fine-tuning phase, within that
    phase), its ``val_loss``, its ``val_accuracy`` when the task reports one, and the
    ``val_score`` a search minimizes."""
    import json
    import math

    path = folder / "history.json"
    history = json.loads(path.read_text()) if path.is_file() else {}
    losses = history.get("val_loss", [])
    start = (history.get("fine_tune_start") or [0])[0]
    finite = [i for i, v in enumerate(losses) if i >= start and v is not None and math.isfinite(v)]
    if not finite:
        raise TuningError(f"The trial's training recorded no finite val_loss in {path}; tune scores trials on their "
                          "validation data, which this task's training does not report.")
    best = min(finite, key=lambda i: losses[i])
    scores = {"val_loss": float(losses[best])}
    accuracy = history.get("val_accuracy") or []
    if len(accuracy) > best and accuracy[best] is not None and math.isfinite(accuracy[best]):
        scores["val_accuracy"] = float(accuracy[best])
        scores[OBJECTIVE] = (1.0 - scores["val_accuracy"]) + TIE_BREAK * scores["val_loss"]
    else:
        scores[OBJECTIVE] = scores["val_loss"]
    return scores


def best_validation_loss(folder: Path) -> float:
    """The ``val_loss`` of the saved model (see :func:`validation_scores`)."""
    return validation_scores(folder)["val_loss"]


def _tuner_class():
    import keras_tuner

    class RecipeTuner(keras_tuner.Tuner):
        """Each trial: the task's training recipe, with the trial's values, into its own folder."""

        def __init__(self, task_class, options: dict, command: str | None, **kwargs):
            super().__init__(**kwargs)
            self.task_class, self.options, self.command = task_class, options, command

        def run_trial(self, trial, *args, **kwargs):
            values = dict(trial.hyperparameters.values)
            folder = Path(self.get_trial_dir(trial.trial_id)) / TRIAL_MODEL
            try:
                self.task_class.train_recipe(folder, command=self.command, **self.options, **values)
                return validation_scores(folder)
            except (ToolkitError, ValueError, TypeError) as exc:  # bad data or options: stop the search
                raise keras_tuner.errors.FatalError(str(exc)) from exc

    return RecipeTuner


SCORES = (OBJECTIVE, "val_accuracy", "val_loss")


def results_table(oracle: Any, default: dict | None = None) -> list[dict]:
    """One row per trial, the ``default`` row (when given) among them: id, status, values and
    validation scores, best first (on a tie the default, then the earlier trial)."""
    rows = [default] if default else []
    for trial in oracle.trials.values():
        scores = {name: float(trial.metrics.get_last_value(name)) if trial.metrics.exists(name) else None
                  for name in SCORES}
        rows.append({"trial": trial.trial_id, "status": str(trial.status), "values": dict(trial.hyperparameters.values),
                     **scores})
    return sorted(rows, key=lambda r: (r[OBJECTIVE] is None, r[OBJECTIVE] or 0.0, r["trial"] != DEFAULT_TRIAL,
                                       r["trial"]))


def _scored_run(task_class, folder: Path, options: dict, values: dict, command: str | None,
                need_model: bool = False) -> dict:
    """Train ``values`` with ``options`` into ``folder`` and return its validation scores, kept in
    ``scores.json`` beside it: a resumed search trains it again only when the values changed
    (or, with ``need_model``, when the model is gone)."""
    import json

    from .storage import write_json

    path = folder.parent / "scores.json"
    wanted = json.loads(json.dumps(values))
    done = json.loads(path.read_text()) if path.is_file() else {}
    if done.get("values") == wanted and "scores" in done and (not need_model or (folder / "card.json").is_file()):
        return done["scores"]
    shutil.rmtree(folder, ignore_errors=True)
    task_class.train_recipe(folder, command=command, **options, **values)
    scores = validation_scores(folder)
    write_json(path, {"values": wanted, "scores": scores})
    return scores


def _default_row(task_class, search: Path, dims: list[Dimension], options: dict, command: str | None) -> dict:
    """The default config scored like a trial (``search/default/model``); None values are the
    task's automatic choices."""
    from .config import config_fields

    fields = config_fields(task_class.config_class)
    scores = _scored_run(task_class, search / DEFAULT_TRIAL / TRIAL_MODEL, options, {}, command)
    return {"trial": DEFAULT_TRIAL, "status": "COMPLETED", "values": {d.name: fields[d.name].default for d in dims},
            **{name: scores.get(name) for name in SCORES}}


def _write_best(out: Path, trial_folder: Path, record: dict, command: str | None) -> Path:
    """Make the best trial's model folder ``out`` (atomically), with the tuning record in its card
    and the search (``out/tuner``) moved along."""
    from .storage import read_card, replace_directory, write_json

    search, side = out / TUNER_DIR, out.parent / f".{out.name}.{TUNER_DIR}"
    relative = trial_folder.relative_to(search)
    os.replace(search, side)

    def fill(tmp: Path) -> None:
        source = side / relative
        for item in source.iterdir():
            (shutil.copytree if item.is_dir() else shutil.copy2)(item, tmp / item.name)
        card = read_card(tmp)
        card["tuning"], card["command"] = record, command
        write_json(tmp / "card.json", card)
        os.replace(side, tmp / TUNER_DIR)

    try:
        if out.exists() and not any(out.iterdir()):
            out.rmdir()
        return replace_directory(out, fill)
    finally:
        if side.exists():  # the swap failed: put the search back where it resumes from
            out.mkdir(parents=True, exist_ok=True)
            os.replace(side, search)


def selection_options(task_class: type, options: dict, fixed: dict) -> tuple[dict, dict | None]:
    """The options the trials train with: ``options``, with a validation share of at least
    ``SELECTION_SPLIT`` when the config has a ``validation_split`` field that is not fixed; and
    what changed (None: nothing, the trials train as ``toolkit train`` would)."""
    from .config import config_fields

    field = config_fields(task_class.config_class).get("validation_split")
    if field is None or "validation_split" in fixed or not field.default < SELECTION_SPLIT:
        return dict(options), None
    return {**options, "validation_split": SELECTION_SPLIT}, {
        "validation_split": SELECTION_SPLIT, "final_validation_split": field.default,
        "note": "trials and the default held out this share of the training data to be scored on; the winner was "
                "trained again with the usual share"}


def tune(task_class: type, out: str | os.PathLike, *, trials: int, algorithm: str = "random",
         params: Iterable[str] | None = None, distributed: bool = False, search_seed: int = 0,
         command: str | None = None, **options: Any) -> dict:
    """Search ``task_class``'s declared ranges with ``trials`` runs of its training recipe (and
    the default config, scored the same way); save the chosen configuration's model to ``out``
    (the search itself in ``out/tuner``, resumable). ``options`` are what ``train_recipe`` takes
    (the data source, fixed config fields, ...). Returns the summary."""
    from .config import config_fields

    if isinstance(trials, bool) or not isinstance(trials, int) or trials < 1:
        raise TuningError(f"--trials must be an int >= 1 (the number of configurations to train). Received {trials!r}.")
    if algorithm not in ALGORITHMS:
        raise TuningError(f"Unknown search algorithm {algorithm!r}. Valid algorithms: {list(ALGORITHMS)}.")
    fields = config_fields(task_class.config_class)
    fixed = {k: v for k, v in options.items() if k in fields and v is not None}
    dims = search_space(task_class.config_class, params, fixed)
    out = Path(out).resolve()
    _check_out(out)
    _check_distributed(distributed)
    import keras_tuner
    from keras_tuner.src.distribute import utils as dist_utils

    hp = keras_tuner.HyperParameters()
    for dim in dims:
        dim.declare(hp)
    side = out.parent / f".{out.name}.{TUNER_DIR}"
    if side.exists() and not (out / TUNER_DIR).exists():  # an earlier run stopped while swapping folders
        out.mkdir(parents=True, exist_ok=True)
        os.replace(side, out / TUNER_DIR)
    search = out / TUNER_DIR
    trial_options, selection = selection_options(task_class, options, fixed)
    chief = not distributed or dist_utils.is_chief_oracle()
    try:
        with contextlib.redirect_stdout(sys.stderr):  # KerasTuner's progress; stdout is the summary (JSON)
            default = _default_row(task_class, search, dims, trial_options, command) if not distributed else None
            tuner = _tuner_class()(task_class, trial_options, command,
                                   oracle=_oracle(algorithm, trials, hp, search_seed), directory=str(search),
                                   project_name=PROJECT, overwrite=False)
            if not distributed:
                tuner.oracle.max_trials = trials  # a resumed search may be given more (or fewer) trials
            tuner.search()
            if not chief:
                return {"tuner": os.environ.get("KERASTUNER_TUNER_ID"), "search": str(search),
                        "note": "trials done; the chief scores the default and writes the chosen model"}
            default = default or _default_row(task_class, search, dims, trial_options, command)
            table = results_table(tuner.oracle, default)
            best = table[0]
            if best[OBJECTIVE] is None:
                raise TuningError(f"No trial of the search in {search} finished. Their messages are in its "
                                  "trial_*/trial.json files.")
            chosen = {} if best["trial"] == DEFAULT_TRIAL else best["values"]
            if selection is None:  # the winner's own run is what `train` would have made
                folder = search / (DEFAULT_TRIAL if not chosen else f"{PROJECT}/trial_{best['trial']}") / TRIAL_MODEL
            else:
                folder = search / FINAL / TRIAL_MODEL
                _scored_run(task_class, folder, options, chosen, command, need_model=True)
    except keras_tuner.errors.FatalError as exc:
        raise TuningError(f"The search stopped: {exc}") from None
    record = {
        "library": f"keras-tuner {keras_tuner.__version__}",
        "algorithm": algorithm,
        "objective": f"{OBJECTIVE} (min) = (1 - val_accuracy) + {TIE_BREAK} x val_loss (val_loss alone without an "
                     "accuracy), of the saved epoch, on a validation share of the training data, never the test split",
        "trials_requested": trials,
        "search_space": [d.describe() for d in dims],
        "fixed": {k: (list(v) if isinstance(v, tuple) else v) for k, v in fixed.items() if k != "strategy"},
        "selection": selection,
        "best_trial": best["trial"],
        "best_values": best["values"],
        "default_won": best["trial"] == DEFAULT_TRIAL,
        "results": table,
    }
    directory = _write_best(out, folder, record, command)
    kept = directory / TUNER_DIR / folder.relative_to(search)
    for other in [*(directory / TUNER_DIR / PROJECT).glob(f"trial_*/{TRIAL_MODEL}"),
                  *(directory / TUNER_DIR).glob(f"{DEFAULT_TRIAL}/{TRIAL_MODEL}"),
                  *(directory / TUNER_DIR).glob(f"{FINAL}/{TRIAL_MODEL}")]:
        if other != kept:
            shutil.rmtree(other, ignore_errors=True)  # the chosen model's folder is kept, for a resumed search
    from .storage import read_card

    card = read_card(directory)
    return {"out": str(directory), "best_trial": best["trial"], "best_values": best["values"],
            **{name: best[name] for name in SCORES}, "default": {name: default[name] for name in SCORES},
            "trials": len(table) - 1, "metrics": card.get("metrics"),
            "results": [{k: row[k] for k in ("trial", "values", *SCORES, "status")} for row in table]}


def tune_verb(args: Any, command: str) -> dict:
    """``toolkit tune <task> ...`` (the parsed arguments of toolkit/cli_args.py)."""
    from .cli_args import config_values

    skip = ("verb", "task", "task_class", "trials", "algorithm", "params", "distributed", "search_seed", "out")
    options = config_values(args.task_class, {k: v for k, v in vars(args).items() if k not in skip})
    return tune(args.task_class, args.out, trials=args.trials, algorithm=args.algorithm, params=args.params,
                distributed=args.distributed, search_seed=args.search_seed, command=command, **options)
