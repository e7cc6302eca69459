"""Multi-worker training and hyperparameter search (toolkit.distributed, toolkit.tuning).

``distributed_digits``:

- 1 vs 2 local workers (``toolkit launch``, MultiWorkerMirroredStrategy over gRPC on loopback),
  the same epochs (early stopping off), the same global batch (each of the 2 workers takes half
  of it) and the same learning rate: mean test accuracy over 3 seeds side by side (a single
  run moves by an image or more from one try to the next), and training steps/s from Keras's
  per-epoch log;
- kill one worker mid-epoch (after its first ``BackupAndRestore`` backup), rerun the same
  launch: it resumes from the backup (the epoch count goes on), the model folder is written
  once, by the chief, only by the run that finished.

``tune_digits``: ``toolkit tune`` with 8 random-search trials (learning rate, dropout) against
the default config, both at a fixed 10 epochs (early stopping as configured). The search scores
the default and every trial by validation accuracy (validation loss breaking ties) on a quarter
of the training data, keeps the default unless a trial beat it there, and trains the winner again
as ``toolkit train`` would (toolkit/tuning.py); it never sees the test split. One training
differs from another by an image or two of the 360 test digits, so the two configs are compared
by their mean test accuracy over the search's seed and 4 more seeds (the same seeds for both).

``tune_ants_bees``: the same with 8 trials of the cached-feature efficientnet_lite0 transfer
recipe (learning rate, dropout, augmented feature passes) on ants/bees, against the default
recipe, on the recipe's held-out 20%.

Peers: scikit-learn's logistic regression on the same digits split (pixels), and on the same
ants/bees split (the frozen backbone's pooled features).
"""

from __future__ import annotations

import io
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .common import target

EPOCHS = 15
KILL_EPOCHS = 3
TUNE_EPOCHS = 10  # per trial, and for the default it is compared with
RETRAIN_SEEDS = (1, 2, 3, 4)
SEEDS = (0, 1, 2)  # 1 vs 2 workers
TRIALS = 8
PARAMS = ("learning_rate", "dropout")
PHOTO_PARAMS = ("learning_rate", "dropout", "augment_passes")
STEP = re.compile(r"(\d+)/\1 - [\d.]+m?s - ([\d.]+)(ms|s)/step")
EPOCH = re.compile(r"^\[worker 0\] Epoch (\d+)/(\d+)")
REPO = Path(__file__).resolve().parents[1]
ANTS_BEES = REPO.parent / "shared" / "data" / "ants_bees"


def _train_argv(out: Path, epochs: int, seed: int = 0) -> list[str]:
    return ["train", "image_classifier", "--data", "digits", "--out", str(out), "--epochs", str(epochs),
            "--patience", "1000", "--verbose", "2", "--seed", str(seed)]


def _summary(out: Path, text: str) -> dict:
    chief = [line for line in text.splitlines() if line.startswith("[worker 0]")]
    per_step = [float(m.group(2)) * (1 if m.group(3) == "ms" else 1000) for m in map(STEP.search, chief) if m]
    card = json.loads((out / "card.json").read_text())
    history = json.loads((out / "history.json").read_text())
    epochs_seen = [int(m.group(1)) for m in map(EPOCH.search, chief) if m]
    return {"accuracy": card["metrics"]["test_accuracy"], "epochs": card["training"]["epochs_run"],
            "history_epochs": len(history["loss"]), "first_epoch_logged": min(epochs_seen, default=None),
            "steps_per_s": 1000 / statistics.median(per_step), "global_batch": card["training"]["batch_size"],
            "distributed": card["training"].get("distributed")}


def _launch(workers: int, out: Path, epochs: int = EPOCHS, seed: int = 0) -> dict:
    from toolkit.distributed import launch

    log = io.StringIO()
    code = launch(_train_argv(out, epochs, seed), workers=workers, out=log)
    text = log.getvalue()
    if code:
        raise RuntimeError(f"{workers} workers failed ({code}):\n{text[-3000:]}")
    return _summary(out, text)


def _worker_pid(launcher: int, index: int) -> int | None:
    """The pid of ``launcher``'s child whose TF_CONFIG names task ``index`` (Linux /proc)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            environ = (entry / "environ").read_bytes().split(b"\0") if ppid == launcher else []
        except (OSError, IndexError, ValueError):
            continue
        for item in environ:
            if item.startswith(b"TF_CONFIG="):
                if json.loads(item[len(b"TF_CONFIG="):])["task"]["index"] == index:
                    return int(entry.name)
    return None


def kill_and_resume(out: Path, epochs: int = KILL_EPOCHS, timeout: float = 900.0) -> dict:
    """Launch 2 workers; once worker 1 has written its first epoch's backup, SIGKILL it (mid
    epoch 2); then rerun the same launch. Returns what each run left and the resumed summary."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}
    backup = out.parent / f".{out.name}.backup"
    marker = backup / "worker-1" / "phase1" / "training_metadata.json"
    log_path = out.parent / f"{out.name}.killed.log"
    with open(log_path, "w") as log:
        launcher = subprocess.Popen([sys.executable, "-m", "toolkit", "launch", "--workers", "2", "--",
                                     *_train_argv(out, epochs)], env=env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while not marker.exists():
            if launcher.poll() is not None or time.monotonic() > deadline:
                launcher.kill()
                raise RuntimeError(f"no backup of worker 1 appeared:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.2)
        time.sleep(2.0)  # into the second epoch
        victim = _worker_pid(launcher.pid, 1)
        if victim is None:
            launcher.kill()
            raise RuntimeError("worker 1's process was not found")
        os.kill(victim, signal.SIGKILL)
        code = launcher.wait(timeout=120)
    killed_log = log_path.read_text()
    log_path.unlink()
    killed = {"launch_exit_code": code, "out_exists": out.exists(),
              "backups": sorted(str(p.relative_to(backup)) for p in backup.glob("worker-*/phase1/*"))}
    from toolkit.distributed import launch

    log = io.StringIO()
    again = launch(_train_argv(out, epochs), workers=2, out=log)
    if again:
        raise RuntimeError(f"the rerun failed ({again}):\n{log.getvalue()[-3000:]}")
    resumed = _summary(out, log.getvalue())
    return {"killed": killed, "killed_epochs_logged": sum(bool(EPOCH.search(line)) for line in killed_log.splitlines()),
            "resumed": resumed, "backup_left": backup.exists(),
            "folder_entries": sorted(p.name for p in out.parent.iterdir())}


def _parameters(out: Path) -> int:
    from toolkit import load

    return int(load(out).model_.count_params())


def _digits_peer() -> float:
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    from toolkit.data import load_digits

    digits = load_digits()
    flat = lambda x: x.reshape(len(x), -1) / 255.0  # noqa: E731
    peer = LogisticRegression(max_iter=2000).fit(flat(digits.train.x), digits.train.y)
    return float(np.mean(peer.predict(flat(digits.test.x)) == digits.test.y))


def _mean(values) -> float:
    return float(sum(values) / len(values))


def _default(task_class, out: Path, **options) -> dict:
    from toolkit.tuning import validation_scores

    summary = task_class.train_recipe(out, **options)
    return {**summary, **validation_scores(out)}


def _compare_configs(name: str, tmp: Path, params, fixed: str, **options) -> tuple[dict, dict]:
    """The default config and the search's choice (on validation: accuracy, then loss), each
    trained with the search's seed and with ``RETRAIN_SEEDS``: one run differs from another by an
    image or two of the test split, so the configs are compared by their mean test accuracy."""
    from toolkit.tuning import tune
    from toolkit.vision.classifier import ImageClassifier

    default = _default(ImageClassifier, tmp / "default", **options)
    searched = tune(ImageClassifier, tmp / "best", trials=TRIALS, params=params, **options)
    kept = searched["best_trial"] == "default"  # no trial beat the default on validation
    best_values = {} if kept else searched["best_values"]
    runs = {"default": [default["metrics"]["test_accuracy"]], "best": [searched["metrics"]["test_accuracy"]]}
    for seed in RETRAIN_SEEDS:
        for key, values in (("best", best_values), ("default", {})):  # more feature passes first: remembered
            if key == "best" and kept:
                continue
            again = ImageClassifier.train_recipe(tmp / f"{key}-{seed}", seed=seed, **options, **values)
            runs[key].append(again["metrics"]["test_accuracy"])
    if kept:  # the best config is the default: its runs are the default's (a rerun differs only by CPU noise)
        runs["best"] = list(runs["default"])
    default_mean, best_mean = _mean(runs["default"]), _mean(runs["best"])
    seeds = [0, *RETRAIN_SEEDS]
    values = json.dumps({k: round(v, 5) if isinstance(v, float) else v for k, v in best_values.items()})
    outcome = ("the search kept the default config: no trial beat it on validation, so the best config is the "
               "default and cannot beat it" if kept else
               f"best ({', '.join(f'{a:.4f}' for a in runs['best'])}) = trial {searched['best_trial']} {values}")
    row = target(f"{name}, tune {TRIALS} trials: best config, mean test accuracy over seeds {seeds}", best_mean,
                 "> the default config's (same seeds)", not kept and best_mean > default_mean, "",
                 f"default {default_mean:.4f} (runs {', '.join(f'{a:.4f}' for a in runs['default'])}); {outcome}; in "
                 f"the search (25% validation) default val acc {searched['default']['val_accuracy']:.4f} / loss "
                 f"{searched['default']['val_loss']:.4f}, best {searched['val_accuracy']:.4f} / "
                 f"{searched['val_loss']:.4f}; searched {', '.join(params)} (random), {fixed}; chosen on validation "
                 "accuracy then loss among the default and the trials, retrained as train would; test split unseen")
    return row, {"default": default, "best": searched, "test_accuracy_by_seed": runs, "seeds": seeds}


def run() -> dict:
    peer_acc = _digits_peer()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        runs = {w: [_launch(w, tmp / f"w{w}-{seed}", seed=seed) for seed in SEEDS] for w in (1, 2)}
        params = _parameters(tmp / "w1-0")
        (tmp / "kill").mkdir()
        resumed = kill_and_resume(tmp / "kill" / "m")
    one, two = runs[1][0], runs[2][0]  # steps/s: the seed-0 runs
    means = {w: _mean([r["accuracy"] for r in runs[w]]) for w in (1, 2)}
    listed = {w: ", ".join(f"{r['accuracy']:.4f}" for r in runs[w]) for w in (1, 2)}
    gap = abs(means[2] - means[1])
    same_epochs = all(r["epochs"] == EPOCHS for w in (1, 2) for r in runs[w])
    mb_per_step = 2 * (2 - 1) / 2 * params * 4 / 1e6  # ring all-reduce, N=2: each worker sends 2(N-1)/N x gradients
    after = resumed["resumed"]
    resumed_ok = (resumed["killed"]["launch_exit_code"] != 0 and not resumed["killed"]["out_exists"]
                  and after["first_epoch_logged"] == 2 and after["epochs"] == after["history_epochs"] == KILL_EPOCHS
                  and not resumed["backup_left"] and resumed["folder_entries"] == ["m"])
    rows = [
        target(f"digits, 2 local workers vs 1: gap of the mean test accuracy over seeds {list(SEEDS)}", gap,
               "<= 0.005 (same epochs)", gap <= 0.005 and same_epochs, "points/100",
               f"1 worker {means[1]:.4f} ({listed[1]}), 2 workers {means[2]:.4f} ({listed[2]}); CPU runs are not "
               f"bit-reproducible, a rerun with the same seed moves by an image or more; {EPOCHS} epochs each, "
               f"early stopping off; global batch {one['global_batch']} vs {two['global_batch']} (2 x "
               f"{two['distributed']['per_replica_batch_size']}), same learning rate; logistic regression peer "
               f"{peer_acc:.4f}"),
        target("digits, 1 worker: training steps/s", one["steps_per_s"], "reference", True, "steps/s",
               f"batch {one['global_batch']}: {one['steps_per_s'] * one['global_batch']:.0f} images/s"),
        target("digits, 2 local workers: training steps/s", two["steps_per_s"], "reference", True, "steps/s",
               f"global batch {two['global_batch']}: {two['steps_per_s'] * two['global_batch']:.0f} images/s; both "
               f"workers share this machine's cores; ring all-reduce of {params} float32 parameters = "
               f"{mb_per_step:.2f} MB per worker per step"),
        target("digits, 2 workers, one killed mid-epoch 2 and the launch rerun: resumed", float(resumed_ok),
               "resumes at epoch 2, folder written once", resumed_ok, "",
               f"killed run: exit {resumed['killed']['launch_exit_code']}, model folder written: "
               f"{resumed['killed']['out_exists']}, {resumed['killed_epochs_logged']} epoch(s) started; rerun: first "
               f"epoch {after['first_epoch_logged']}, {after['epochs']}/{KILL_EPOCHS} epochs in the card, history of "
               f"{after['history_epochs']}, test accuracy {after['accuracy']:.4f}; backups left: "
               f"{resumed['backup_left']}"),
    ]
    return {"rows": rows, "one_worker": runs[1], "two_workers": runs[2], "parameters": params,
            "kill_and_resume": resumed,
            "peer_logistic_regression": peer_acc}


def tune_digits() -> dict:
    """8 trials over the learning rate and dropout at a fixed 10 epochs vs the default config."""
    peer_acc = _digits_peer()
    with tempfile.TemporaryDirectory() as tmp:
        row, result = _compare_configs("digits", Path(tmp), PARAMS, f"{TUNE_EPOCHS} epochs fixed", data="digits",
                                       epochs=TUNE_EPOCHS, verbose=0)
    row["note"] += f"; logistic regression peer {peer_acc:.4f}"
    return {"rows": [row], "tune": result, "peer_logistic_regression": peer_acc}


def tune_ants_bees() -> dict:
    """8 trials of the default transfer recipe's ranges on ants/bees vs the default recipe."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    from toolkit import load
    from toolkit.data import load_splits

    if not ANTS_BEES.is_dir():
        return {"rows": [target("ants/bees tune", 0.0, "data present", False, note=f"{ANTS_BEES} missing")]}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        row, result = _compare_configs(
            "ants/bees", tmp, PHOTO_PARAMS, "the default recipe otherwise (efficientnet_lite0, cached features, "
            "early stopping)", data=str(ANTS_BEES), verbose=0)
        clf = load(tmp / "default")
        splits = load_splits(str(ANTS_BEES), clf.config.image_size, test_size=0.2, seed=42)  # the recipe's split
        features = lambda part: clf.cached_features(part)  # noqa: E731
        peer = LogisticRegression(max_iter=5000).fit(features(splits.train), splits.train.y)
        peer_acc = float(np.mean(peer.predict(features(splits.test)) == splits.test.y))
        recipe = json.loads((tmp / "best" / "card.json").read_text()).get("recipe")
    row["note"] += (f"; {len(splits.test)} test photos; logistic regression on the frozen backbone's features "
                    f"{peer_acc:.4f}")
    return {"rows": [row], "tune": result, "recipe": recipe, "peer_logistic_regression_features": peer_acc,
            "test_photos": len(splits.test)}
