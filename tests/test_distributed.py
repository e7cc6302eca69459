"""Multi-worker training (toolkit.distributed) and hyperparameter search (toolkit.tuning)."""

from __future__ import annotations

import dataclasses
import io
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO, one_error_line, run, write_image
from toolkit.config import setting
from toolkit.distributed import (DistributedError, check_port_free, launch, launch_command, parse_tf_config,
                                 wait_for_peers, worker_environments)
from toolkit.tuning import TuningError, search_space, tune


def tf_config(cluster, task_type="worker", index=0) -> str:
    return json.dumps({"cluster": cluster, "task": {"type": task_type, "index": index}})


# ---------------------------------------------------------------------------- TF_CONFIG


def test_tf_config_is_read_with_the_chief_first():
    cluster = parse_tf_config(tf_config({"chief": ["a:1"], "worker": ["b:2", "c:3"]}, "worker", 1))
    assert cluster.addresses == ("a:1", "b:2", "c:3") and cluster.rank == 2 and not cluster.is_chief
    assert cluster.peers == ("a:1", "b:2") and cluster.n_workers == 3
    assert parse_tf_config(tf_config({"worker": ["h:10", "h:11"]}, "worker", 0)).is_chief


@pytest.mark.parametrize("text, message", [
    ("", "TF_CONFIG environment variable, which is not set"),
    ("{not json", "not valid JSON"),
    ('["a"]', "'cluster' and 'task' objects"),
    (tf_config({"worker": ["h:1"], "ps": ["h:2"]}), "parameter servers"),
    (tf_config({"worker": []}), "lists no workers"),
    (tf_config({"worker": ["nohost"]}), "'host:port'"),
    (tf_config({"worker": ["h:99999"]}), "port in 1..65535"),
    (tf_config({"worker": ["h:1", "h:1"]}), "more than once"),
    (tf_config({"worker": ["h:1"]}, "chief"), "task.type must be one of"),
    (tf_config({"worker": ["h:1", "h:2"]}, "worker", 2), "task.index must be an int in [0, 1]"),
    (tf_config({"chief": ["h:1", "h:2"]}, "chief"), "one chief"),
])
def test_malformed_tf_config_is_a_clear_error(text, message):
    with pytest.raises(DistributedError, match=None) as info:
        parse_tf_config(text)
    assert message in str(info.value)


def test_multi_worker_without_tf_config_is_one_line(capsys, monkeypatch, tmp_path):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    code, out, err = run(capsys, "train", "image_classifier", "--data", "digits", "--out", tmp_path / "m",
                         "--strategy", "multi-worker")
    assert one_error_line(code, err) and "TF_CONFIG" in err and not (tmp_path / "m").exists()


def test_a_port_in_use_and_an_unreachable_worker_are_clear_errors():
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        with pytest.raises(DistributedError, match=f"Port {port} .* is in use"):
            check_port_free(f"127.0.0.1:{port}")
    free = socket.socket()
    free.bind(("127.0.0.1", 0))
    lonely = free.getsockname()[1]
    free.close()  # nobody listens there now
    cluster = parse_tf_config(tf_config({"worker": ["127.0.0.1:1", f"127.0.0.1:{lonely}"]}))
    with pytest.raises(DistributedError, match=f"could not reach worker 127.0.0.1:{lonely} within 1 s"):
        wait_for_peers(cluster, timeout=1)


# ---------------------------------------------------------------------------- launch


def test_launch_adds_the_strategy_and_generates_one_cluster():
    assert launch_command(["--", "train", "x", "--out", "m"])[0][-2:] == ["--strategy", "multi-worker"]
    assert launch_command(["tune", "x", "--trials", "2"]) == (["tune", "x", "--trials", "2", "--distributed"], True)
    with pytest.raises(DistributedError, match="runs `train ...` or `tune ...`"):
        launch_command(["evaluate", "m"])
    envs = [json.loads(e["TF_CONFIG"]) for e in worker_environments(3)]
    assert [e["task"]["index"] for e in envs] == [0, 1, 2] and len({tuple(e["cluster"]["worker"]) for e in envs}) == 1
    assert len(set(envs[0]["cluster"]["worker"])) == 3
    tuners = worker_environments(2, tuner=True)
    assert [e["KERASTUNER_TUNER_ID"] for e in tuners] == ["chief", "tuner1"] and "TF_CONFIG" not in tuners[0]


def test_launch_stops_every_worker_when_one_fails(tmp_path):
    """A stand-in interpreter: worker 1 fails at once, worker 0 would run for a minute."""
    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\nidx=$(echo \"$TF_CONFIG\" | sed 's/.*\"index\": \\([0-9]*\\).*/\\1/')\n"
                    "echo \"started $idx\"\nif [ \"$idx\" = 1 ]; then echo boom; exit 3; fi\nsleep 60\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    out = io.StringIO()
    code = launch(["train", "x"], workers=2, out=out, python=str(fake))
    log = out.getvalue()
    assert code == 3 and "[worker 1] boom" in log and "[worker 0] started 0" in log
    assert "worker 1 exited with status 3; stopping the others" in log


def test_two_workers_on_loopback_train_one_epoch_and_write_the_model_once(tmp_path):
    """The real thing: 2 processes, MultiWorkerMirroredStrategy over gRPC on loopback, digits."""
    out = tmp_path / "m"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-m", "toolkit", "launch", "--workers", "2", "--", "train",
                           "image_classifier", "--data", "digits", "--out", str(out), "--epochs", "1", "--verbose", "0",
                           "--batch-size", "64"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=540)
    assert done.returncode == 0, done.stdout[-3000:]
    card = json.loads((out / "card.json").read_text())
    assert card["training"]["distributed"] == {
        "strategy": "multi-worker", "workers": 2, "replicas": 2, "per_replica_batch_size": 32,
        "global_batch_size": 64, "learning_rate": 0.001, "learning_rate_rule": card["training"]["distributed"][
            "learning_rate_rule"]}
    assert card["training"]["batch_size"] == 64  # the global batch: the one a single worker would use
    assert card["training"]["epochs_run"] == 1 and "test_accuracy" in card["metrics"]
    history = json.loads((out / "history.json").read_text())
    assert history["accuracy"][0] > 0.3  # one epoch learns (BatchNorm statistics need more for the test split)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]  # no backup, temporary or second folder
    summaries = {}
    for line in done.stdout.splitlines():
        if line.startswith("[worker ") and '"out":' in line:
            summaries[line[:10]] = json.loads('{' + line.split("] ", 1)[1].rstrip(",") + '}')["out"]
    assert summaries["[worker 0]"] == str(out)
    assert summaries["[worker 1]"] != str(out) and not Path(summaries["[worker 1]"]).exists()  # scratch, deleted


@pytest.mark.slow
def test_a_killed_worker_resumes_from_its_backup_when_the_launch_is_rerun(tmp_path):
    """SIGKILL worker 1 after its first epoch's backup, rerun: training resumes at epoch 2."""
    from benchmarks.distributed import kill_and_resume

    result = kill_and_resume(tmp_path / "m", epochs=2)
    killed, resumed = result["killed"], result["resumed"]
    assert killed["launch_exit_code"] == 128 + signal.SIGKILL and not killed["out_exists"]
    assert "worker-0/phase1/training_metadata.json" in killed["backups"]
    assert "worker-1/phase1/training_metadata.json" in killed["backups"]
    assert resumed["first_epoch_logged"] == 2 and resumed["epochs"] == resumed["history_epochs"] == 2
    assert resumed["accuracy"] > 0.5 and not result["backup_left"] and result["folder_entries"] == ["m"]


def test_scaling_keeps_the_global_batch_and_the_learning_rate():
    from toolkit.distributed import Scaling

    scale = Scaling("multi-worker", 3, 3)
    assert scale.batch(32) == 32 and scale.per_replica(30) == 10 and scale.per_replica(32) == 10.667
    assert scale.learning_rate(1e-3) == 1e-3 and scale.card(64, 1e-3)["global_batch_size"] == 64
    with pytest.raises(DistributedError, match="Pass --batch-size >= 3"):
        scale.batch(2)


# ---------------------------------------------------------------------------- tune


@dataclasses.dataclass(frozen=True)
class Ranges:
    rate: float = setting(0.1, "a rate", tune=(1e-4, 1e-1))
    units: int = setting(8, "units", tune=(4, 64))
    fixed_only: int = setting(3, "no range")


@dataclasses.dataclass(frozen=True)
class EmptyRange:
    epochs: int = setting(5, "epochs", tune=(5, 5))


def test_search_space_from_the_declared_ranges():
    rate, units = search_space(Ranges)
    assert (rate.kind, rate.log, units.kind, units.log) == (float, True, int, False)
    assert [d.name for d in search_space(Ranges, fixed={"rate"})] == ["units"]
    with pytest.raises(TuningError, match="search range of EmptyRange.epochs is empty"):
        search_space(EmptyRange)
    with pytest.raises(TuningError, match="does not declare a search range"):
        search_space(Ranges, params=["fixed_only"])
    with pytest.raises(TuningError, match="Nothing to search"):
        search_space(Ranges, fixed={"rate", "units"})


def test_trials_zero_and_a_missing_kerastuner_environment_write_nothing(capsys, tmp_path, monkeypatch):
    for name in ("KERASTUNER_TUNER_ID", "KERASTUNER_ORACLE_IP", "KERASTUNER_ORACLE_PORT"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(SystemExit) as stopped:  # refused by the parser, before anything runs
        run(capsys, "tune", "image_classifier", "--data", "digits", "--out", tmp_path / "b", "--trials", 0)
    assert stopped.value.code == 2 and "--trials: expected a whole number >= 1" in capsys.readouterr().err
    code, out, err = run(capsys, "tune", "image_classifier", "--data", "digits", "--out", tmp_path / "b", "--trials",
                         2, "--distributed")
    assert one_error_line(code, err) and "KERASTUNER_TUNER_ID" in err
    assert not (tmp_path / "b").exists()
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    with pytest.raises(TuningError, match="not empty"):
        from toolkit.vision.classifier import ImageClassifier

        tune(ImageClassifier, tmp_path / "mine", trials=1, data="digits")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep"


def test_tune_one_tiny_trial_then_resume_with_one_more(capsys, tmp_path):
    rng = np.random.default_rng(0)
    for label, value in (("dark", 40), ("light", 210)):
        for k in range(12):
            write_image(tmp_path / "data" / label / f"{k}.png", np.full((16, 16, 3), value) + rng.integers(0, 30, 3))
    argv = ["tune", "image_classifier", "--data", tmp_path / "data", "--out", tmp_path / "best", "--backbone",
            "small_cnn", "--image-size", "16", "--epochs", "1", "--verbose", "0", "--params", "learning_rate",
            "dropout"]
    code, out, err = run(capsys, *argv, "--trials", 1)  # one trial: each costs a training of its own
    assert code == 0, err
    summary = json.loads(out)
    assert summary["trials"] == 1 and len(summary["results"]) == 2  # the default is scored too
    card = json.loads((tmp_path / "best" / "card.json").read_text())
    tuning = card["tuning"]
    assert [d["name"] for d in tuning["search_space"]] == ["learning_rate", "dropout"]
    assert tuning["fixed"]["epochs"] == 1 and tuning["best_values"] == summary["best_values"]
    assert tuning["selection"]["validation_split"] == 0.25 and card["config"]["validation_split"] == 0.1
    rows = {r["trial"]: r for r in tuning["results"]}
    assert rows["default"]["values"] == {"learning_rate": 1e-3, "dropout": 0.2}
    assert summary["val_score"] == min(r["val_score"] for r in tuning["results"]) == tuning["results"][0]["val_score"]
    chosen = {} if summary["best_trial"] == "default" else summary["best_values"]
    assert card["config"]["learning_rate"] == pytest.approx(chosen.get("learning_rate", 1e-3))
    search = tmp_path / "best" / "tuner"
    default_scored = (search / "default" / "scores.json").stat().st_mtime_ns
    code, out, err = run(capsys, *argv, "--trials", 2)  # the search resumes: one more trial, not two
    assert code == 0, err
    trials = sorted(p.name for p in (search / "search").glob("trial_*"))
    assert len(trials) == 2 and json.loads(out)["trials"] == 2 and len(json.loads(out)["results"]) == 3
    assert (search / "default" / "scores.json").stat().st_mtime_ns == default_scored  # not trained again
    assert not list(search.glob("search/trial_*/model")) and not (search / "default" / "model").exists()
    assert (search / "final" / "model" / "card.json").is_file()  # the chosen config trained as `train` would
    from toolkit import load

    assert load(tmp_path / "best").predict(np.full((1, 16, 16, 3), 220.0))[0] == "light"


def test_trials_are_scored_by_validation_accuracy_then_loss_and_the_default_wins_ties(tmp_path):
    from toolkit.tuning import results_table, validation_scores

    history = {"val_loss": [0.5, 0.2, 0.3], "val_accuracy": [0.8, 0.9, 0.95], "loss": [1, 1, 1]}
    (tmp_path / "history.json").write_text(json.dumps(history))
    scores = validation_scores(tmp_path)  # the epoch early stopping keeps: the lowest val_loss
    assert scores == {"val_loss": 0.2, "val_accuracy": 0.9, "val_score": pytest.approx(0.1 + 0.001 * 0.2)}
    history.update(fine_tune_start=[2])  # phase 2 restores its own best epoch
    (tmp_path / "history.json").write_text(json.dumps(history))
    assert validation_scores(tmp_path)["val_accuracy"] == 0.95
    (tmp_path / "history.json").write_text(json.dumps({"val_loss": [0.4, float("nan")]}))
    assert validation_scores(tmp_path) == {"val_loss": 0.4, "val_score": 0.4}  # no accuracy: the loss
    (tmp_path / "history.json").write_text(json.dumps({"loss": [0.4]}))
    with pytest.raises(TuningError, match="no finite val_loss"):
        validation_scores(tmp_path)

    import keras_tuner

    oracle = keras_tuner.oracles.RandomSearchOracle(objective=keras_tuner.Objective("val_score", "min"), max_trials=3)
    for trial_id, (accuracy, loss) in enumerate([(0.9, 0.1), (0.95, 0.4), (0.9, 0.05)]):
        trial = keras_tuner.engine.trial.Trial(keras_tuner.HyperParameters(), trial_id=str(trial_id))
        for name, value in (("val_score", 1 - accuracy + 0.001 * loss), ("val_accuracy", accuracy), ("val_loss", loss)):
            trial.metrics.register(name)
            trial.metrics.update(name, value)
        oracle.trials[trial.trial_id] = trial
    default = {"trial": "default", "status": "COMPLETED", "values": {}, "val_score": 0.05 + 0.001 * 0.4,
               "val_accuracy": 0.95, "val_loss": 0.4}
    ranked = [r["trial"] for r in results_table(oracle, default)]
    assert ranked == ["default", "1", "2", "0"]  # accuracy first, the loss next, a tie keeps the default


# ---------------------------------------------------------------------------- every task that fits takes a strategy


NOT_FIT = {"dqn", "a2c"}  # reinforcement learning: their own training loops, not Keras's fit


@pytest.mark.parametrize("name", ["image_classifier", "text_classifier", "date_translator", "forecaster",
                                  "anomaly_detector", "audio_classifier", "vae", "gan", "denoiser",
                                  "object_detector"])
def test_a_task_builds_and_trains_under_a_mirrored_strategy(name, tmp_path):
    """The contract test's tiny case, trained under MirroredStrategy (this machine's CPU): the
    model is built in its scope and the card records how the batch was shared."""
    import tensorflow as tf
    from test_contract import CASES

    case = CASES[name]()
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    # one epoch: what is checked is where the model was built and how the batch was shared, not what it learnt
    config = dataclasses.replace(case["task"].config, strategy=strategy, epochs=1)
    task = type(case["task"])(config)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        task.fit(case["data"])
    assert task.model_.distribute_strategy is strategy  # built in its scope: Keras trains data-parallel
    assert isinstance(task.model_.trainable_variables[0].value, tf.distribute.DistributedValues)
    before = task.translate(case["sample"]) if name == "date_translator" else np.asarray(task.predict(case["sample"]))
    loaded = type(task).load(task.save(tmp_path / name))
    card = json.loads((tmp_path / name / "card.json").read_text())
    assert "strategy" not in card["config"]
    shared = card["training"]["distributed"]
    assert (shared["strategy"], shared["replicas"], shared["per_replica_batch_size"]) == ("mirrored", 1,
                                                                                         shared["global_batch_size"])
    assert shared["learning_rate"] == pytest.approx(config.learning_rate)
    if name == "date_translator":
        assert loaded.translate(case["sample"]) == before
    else:
        assert np.all(case.get("same", np.equal)(np.asarray(loaded.predict(case["sample"])), before))


def test_every_task_that_fits_takes_a_strategy():
    from test_contract import CASES

    from toolkit.base import registered_tasks
    from toolkit.config import config_fields

    fits = sorted(set(registered_tasks()) - NOT_FIT)
    assert set(fits) <= set(CASES)
    for name in fits:
        assert "strategy" in config_fields(registered_tasks()[name].config_class), name
