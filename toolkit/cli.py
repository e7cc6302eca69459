"""Command line: ``toolkit train|evaluate|predict|forecast|generate|export|compress|explain|play|serve|bench``;
``toolkit calibrate`` for classifiers.

Generated from the registered tasks: ``toolkit train <task>`` takes the task's config fields and
recipe options and calls its ``train_recipe``; the other verbs read what a task declares (tags,
input kind, explanation methods, TFLite runner). Results go to stdout as JSON; errors in the
user's input go to stderr as one clear line (exit status 2), never a traceback.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path
from typing import Any, Callable

from .cli_args import build_parser, config_values, train_arguments
from .storage import check_writable, output_error

EXIT_USER_ERROR = 2


def _print_json(obj: Any) -> None:
    from .storage import json_default

    print(json.dumps(obj, indent=2, default=json_default))


def _usage_error(message: str) -> Exception:
    from .errors import ToolkitError

    return ToolkitError(message)


# ---------------------------------------------------------------------------- train (generated)


def _train(args: argparse.Namespace, command: str) -> dict:
    options = {k: v for k, v in vars(args).items() if k not in ("verb", "task", "task_class", "family",
                                                                   "family_flags", "algo")}
    cls = args.task_class
    if args.family:
        cls = args.family[args.algo]
        own = train_arguments(cls)
        for dest in options:
            if dest not in own:
                owner = next(n for n, m in args.family.items() if dest in train_arguments(m))
                article = "an" if owner[0].upper() in "AEFHILMNORSX" else "a"
                raise _usage_error(f"{args.family_flags[dest][0][0]} is {article} {owner.upper()} option; drop it "
                                   f"or use --algo {owner}.")
    options = config_values(cls, options)
    check_writable(options.get("out"), folder=True)  # before hours of training, not after
    from .distributed import strategy_option
    strategy_option(options)  # --strategy NAME -> a tf.distribute.Strategy
    return cls.train_recipe(options.pop("out"), command=command, **options)


# ---------------------------------------------------------------------------- other verbs


def _load(model_dir: str):
    from .base import load

    return load(model_dir)


def _named(task) -> str:
    """'image_classifier' ('vision'): a task's name and the older names it answers to."""
    from .base import ALIASES

    aliases = [a for a, name in ALIASES.items() if name == task.task_name and a != type(task).family]
    return repr(task.task_name) + (f" ({', '.join(map(repr, aliases))})" if aliases else "")


def _needing(tag: str) -> str:
    """`toolkit train a` or `toolkit train b`: the commands that train a task with ``tag``."""
    from .base import ALIASES, registered_tasks

    names = [n for n, c in registered_tasks().items() if tag in c.tags]
    names = [a for a, n in ALIASES.items() if n in names] + names
    return " or ".join(f"`toolkit train {n}`" for n in dict.fromkeys(names))


def _require(task, tag: str, model_dir: str, verb: str) -> None:
    if tag not in task.tags:
        raise _usage_error(f"{model_dir} holds a {_named(task)} model; `toolkit {verb}` needs a {tag.replace('_', ' ')} "
                           f"model ({_needing(tag)}).")


def _data(task, given: str | None) -> Any:
    """``--data`` read the way the model needs it, else the data recorded in its card."""
    if given is not None:
        return task.load_data(given)
    data = task.reload_data()
    if data is None:
        raise _usage_error("This model's card names no test split to reload. Pass --data.")
    return data


def _evaluate(args: argparse.Namespace, command: str) -> dict:
    from .storage import write_json

    task = _load(args.model)
    episodes = {}
    if args.episodes is not None:
        if "policy" not in task.tags:
            raise _usage_error(f"--episodes is for RL agents; {args.model} holds a {_named(task)} model.")
        episodes = {"n_episodes": args.episodes}
    check_writable(args.out, folder=True)
    data = _data(task, args.data)
    out = Path(args.out) if args.out else None
    if out:
        out.mkdir(parents=True, exist_ok=True)
    if "classifier" not in task.tags:  # tasks without classes report their own metrics
        metrics = task.evaluate(data, **episodes)
        if out:
            write_json(out / "metrics.json", metrics)
        return metrics
    report = task.report(data)
    if out:
        report.save_confusion_matrix(out / "confusion_matrix.png")
        write_json(out / "metrics.json", report.to_dict())
    return report.to_dict()


def _play(args: argparse.Namespace, command: str) -> dict:
    """Render episodes of a saved agent to a GIF (its network read into numpy, or a policy .tflite)."""
    from .rl.play import play_saved

    check_writable(args.out, suffixes=(".gif",))
    return play_saved(args.model, args.out, args.episodes, args.seed, env=args.env, tflite=args.tflite,
                      scale=args.scale, every=args.every)


def _predictor(model_dir: str, tflite: str | None):
    """(task class, the saved model or its .tflite file opened by the task's runner)."""
    from .base import task_class
    from .storage import read_card

    card = read_card(model_dir)
    cls = task_class(card.get("task"))
    if not tflite:
        return cls, cls.load(model_dir)
    path = Path(tflite)
    if not path.is_absolute() and not path.exists():
        path = Path(model_dir) / tflite
    return cls, cls.open_tflite(path, card=card)


def _predict(args: argparse.Namespace, command: str) -> Any:
    if args.data is not None:
        return _predict_series(args)
    cls, predictor = _predictor(args.model, args.tflite)
    if "image_to_image" in cls.tags:
        return _predict_images(predictor, args)
    if "generator" in cls.tags:
        raise _usage_error(f"{args.model} makes images from latent vectors, not from images: use "
                           f"`toolkit generate {args.model} --n 16 --out grid.png`.")
    if args.text is not None:
        if "translator" in cls.tags:
            return [{"text": t, "output": out} for t, out in zip(args.text, predictor.translate(args.text))]
        rows = predictor.assess(args.text, k=args.top_k)
        return [{"text": t, **row} for t, row in zip(args.text, rows)]
    if args.audio is not None:
        return [{"audio": a, **row} for a, row in zip(args.audio, predictor.assess(args.audio, k=args.top_k))]
    rows = predictor.assess(args.image, k=args.top_k)  # top_k, not_sure, why (calibrated models)
    return [{"image": image, **row} for image, row in zip(args.image, rows)]


def _calibrate(args: argparse.Namespace, command: str) -> dict:
    """Temperature and "not sure" thresholds of a saved classifier, written into its card."""
    task = _load(args.model)
    _require(task, "classifier", args.model, "calibrate")
    data = task.load_data(args.data) if args.data is not None else None
    return task.calibrate(data, max_flagged=args.max_flagged, save=True)


def _predict_images(predictor, args: argparse.Namespace) -> dict:
    """Image-to-image models (denoiser, VAE reconstruction): write the outputs to --out."""
    from .generative.common import save_images

    if args.image is None:
        raise _usage_error("This model takes images: pass --image FILE [FILE ...].")
    if not args.out:
        raise _usage_error("This model outputs images: pass --out clean.png (one image), a .npy file, or a folder.")
    out = Path(args.out)
    check_writable(args.out, folder=out.is_dir() or not out.suffix,
              suffixes=None if out.is_dir() or not out.suffix else (".png", ".jpg", ".jpeg", ".npy"))
    images = predictor.predict(args.image if len(args.image) > 1 else args.image[0])
    if out.is_dir() or not out.suffix:
        written = [str(save_images(img[None], out / (Path(src).stem + ".png"))) for src, img in zip(args.image, images)]
        return {"out": written, "shape": list(images.shape[1:])}
    return {"out": str(save_images(images, out)), "n": int(len(images)), "shape": list(images.shape[1:])}


def _generate(args: argparse.Namespace, command: str) -> dict:
    from .generative.common import save_images

    check_writable(args.out, suffixes=(".png", ".jpg", ".jpeg", ".npy"))
    cls, generator = _predictor(args.model, args.tflite)
    if "generator" not in cls.tags:
        raise _usage_error(f"{args.model} does not generate images: `toolkit generate` needs a generator model "
                           f"({_needing('generator')}).")
    images = generator.generate(args.n, label=args.label, seed=args.seed)
    path = save_images(images, args.out)
    return {"out": str(path), "n": int(len(images)), "shape": list(images.shape[1:]), "label": args.label,
            "seed": args.seed}


def _predict_series(args: argparse.Namespace) -> Any:
    """Anomaly scores per point (or, for a forecaster, its forecast) of a series; CSV with --out."""
    check_writable(args.out)
    task = _load(args.model)
    if task.input_kind != "series":
        raise _usage_error(f"--data is for time-series models; this is a {_named(task)} model. "
                           "Pass --image or --text.")
    if "anomaly_detector" not in task.tags:
        return _write_table(task.forecast(task.load_data(args.data)), args.out)
    table = task.detect(task.load_data(args.data))
    summary = {"n_points": int(len(table)), "n_flagged": int(table["anomaly"].sum()), "threshold": task.threshold_}
    if args.out:
        _write_table(table, args.out)
        return {"out": str(args.out), **summary}
    return {**summary, "flagged": table[table["anomaly"]].to_dict(orient="records")}


def _write_table(table, out: str | None) -> Any:
    """Write a DataFrame as CSV atomically (``out``), or return its rows as JSON records."""
    if out is None:
        return table.to_dict(orient="records")
    from .storage import atomic_write_text

    atomic_write_text(out, table.to_csv(index=False))
    return {"out": str(out), "rows": int(len(table))}


def _forecast(args: argparse.Namespace, command: str) -> Any:
    check_writable(args.out)
    task = _load(args.model)
    _require(task, "forecaster", args.model, "forecast")
    history = task.load_data(args.data) if args.data is not None else None
    return _write_table(task.forecast(history, horizon=args.horizon), args.out)


def _export(args: argparse.Namespace, command: str) -> list[dict]:
    from .storage import read_card

    task = _load(args.model)
    for quantization in args.quantization:  # every preset refused before any file is written
        task.check_quantization(quantization)
    check_writable(args.out, folder=not str(args.out or "").endswith(".tflite"))
    data = _data(task, args.data) if args.data is not None else task.reload_data()  # read once for every preset
    entries = []
    for quantization in args.quantization:
        path = task.export(args.out, quantization=quantization, data=data, allow_flex=args.allow_flex)
        entries.append(next(e for e in read_card(path.parent)["tflite"] if e["file"] == path.name))
    return entries


def _compress(args: argparse.Namespace, command: str) -> Any:
    from .edge.compression import compress, compression_report

    task = _load(args.model)
    options = {k: getattr(args, k) for k in ("epochs", "learning_rate", "cluster_init") if getattr(args, k) is not None}
    if args.int8_scales is not None:
        options["per_channel"] = args.int8_scales == "channel"
    if args.report is not None:
        check_writable(None if args.report == "-" else args.report, "--report")
        if args.qat or args.out or args.quantization:
            raise _usage_error("--report makes every variant into the model's folder; drop --qat, --quantization "
                               "and --out (--prune and --cluster set the report's sparsity and clusters).")
        given = {k: getattr(args, k) for k in ("prune", "cluster") if getattr(args, k) is not None}
        report = compression_report(task, args.data, **given, **options)
        if args.report == "-":
            print(report.markdown(), end="")
            return None
        from .storage import atomic_write_text

        atomic_write_text(args.report, report.markdown())
        return {"report": str(args.report), "card": str(Path(args.model) / "card.json"),
                "variants": [r["variant"] for r in report.variants], "seconds": report.section["seconds"]}
    result = compress(task, args.data, prune=args.prune, cluster=args.cluster, qat=args.qat, out=args.out,
                      command=command, quantization=args.quantization, **options)
    return {"file": str(result.path), "variant": result.config.name, "seconds": result.seconds, **result.metrics}


def _explain(args: argparse.Namespace, command: str) -> dict:
    task = _load(args.model)
    given = [x for x in (args.image, args.text, args.data, args.audio) if x is not None]
    if len(given) != 1:
        raise _usage_error("Pass exactly one of --image (vision), --text (nlp), --audio (speech) or --data (time "
                           "series; an observation for RL agents).")
    method = task.check_explain_method(args.method)
    from .explain.base import SAVE_SUFFIXES

    check_writable(args.out, suffixes=SAVE_SUFFIXES)
    x = task.load_data(args.data) if args.data is not None else given[0]
    explanation = task.explain(x, method=method, target=args.target, budget=args.budget, seed=args.seed)
    explanation.save(args.out)
    return {"out": str(args.out), **explanation.summary()}


def _serve(args: argparse.Namespace, command: str) -> None:
    from apps.main import launch

    launch(host=args.host, port=args.port, model_dir=args.model_dir)


def _bench(args: argparse.Namespace, command: str) -> None:
    try:
        from benchmarks.run import main as bench_main
    except ModuleNotFoundError as exc:
        raise _usage_error("The benchmarks live in the source checkout: run `toolkit bench` (or `make bench`) from "
                           "the repository's root folder.") from exc
    if bench_main(args.only) != 0:
        raise _usage_error(f"Unknown benchmark in {args.only}.")


VERBS: dict[str, Callable | str] = {  # "module:function": a verb handled elsewhere in toolkit, imported when used
    "train": _train, "evaluate": _evaluate, "predict": _predict, "calibrate": _calibrate, "forecast": _forecast,
    "generate": _generate, "export": _export, "compress": _compress, "play": _play, "explain": _explain,
    "serve": _serve, "bench": _bench, "launch": "distributed:launch_verb", "tune": "tuning:tune_verb"}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    command = "toolkit " + " ".join(shlex.quote(a) for a in argv)
    import toolkit  # noqa: F401  (sets the Keras backend and log level)
    from .errors import ToolkitError

    verb = VERBS[args.verb]
    if isinstance(verb, str):
        module, name = verb.split(":")
        verb = getattr(__import__(f"toolkit.{module}", fromlist=[name]), name)
    try:
        result = verb(args, command)
    except (ToolkitError, ValueError, OSError) as exc:  # OSError: the machine refused a file; say which
        print(f"error: {output_error(exc.filename or '', exc) if isinstance(exc, OSError) else exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    if result is not None:
        _print_json(result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
