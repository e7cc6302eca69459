"""The command line for RL agents: train rl, evaluate --episodes, export, play, explain, and errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import run
from toolkit.cli import main


@pytest.mark.parametrize("argv", [["train", "rl"], ["play"]], ids="-".join)
def test_help(capsys, argv):
    with pytest.raises(SystemExit) as info:
        main([*argv, "--help"])
    assert info.value.code == 0 and "usage: toolkit" in capsys.readouterr().out


def test_train_evaluate_export_play_explain(capsys, tmp_path):
    out = tmp_path / "agent"
    code, stdout, _ = run(capsys, "train", "rl", "--env", "CartPole-v1", "--algo", "a2c", "--timesteps", "400",
                          "--n-envs", "2", "--eval-freq", "200", "--seed", "1", "--episodes", "5", "--out", str(out),
                          "--tensorboard", str(tmp_path / "tb"))
    result = json.loads(stdout)
    assert code == 0 and result["env_steps"] == 400 and result["metrics"]["n_episodes"] == 5
    assert result["tensorboard"].startswith(str(tmp_path / "tb"))
    card = json.loads((out / "card.json").read_text())
    assert card["command"].startswith("toolkit train rl --env CartPole-v1") and card["algorithm"] == "a2c"
    assert card["config"]["n_envs"] == 2 and card["config"]["seed"] == 1

    code, stdout, _ = run(capsys, "evaluate", str(out), "--episodes", "3")
    metrics = json.loads(stdout)
    assert code == 0 and metrics["n_episodes"] == 3 and metrics["mean_return"] > 0
    code, stdout, _ = run(capsys, "evaluate", str(out), "--episodes", "2", "--data", "CartPoleLongPole-v1")
    assert code == 0 and json.loads(stdout)["n_episodes"] == 2

    code, stdout, _ = run(capsys, "export", str(out), "--quantization", "int8")
    entry = json.loads(stdout)[0]
    assert code == 0 and entry["file"] == "policy_int8.tflite" and entry["n_states"] == 10_000
    assert entry["output"]["kind"] == "action probabilities" and entry["agreement_with_keras"] >= 0.9
    assert entry["input"]["dtype"] == "int8" and 0.5 <= entry["keras_agreement_on_int8_input"] <= 1  # A2C: int8 in

    code, stdout, _ = run(capsys, "play", str(out), "--out", str(tmp_path / "episode.gif"), "--seed", "3")
    played = json.loads(stdout)
    assert code == 0 and played["frames"] == played["lengths"][0] + 1
    assert (tmp_path / "episode.gif").read_bytes()[:6] == b"GIF89a"
    code, stdout, _ = run(capsys, "play", str(out), "--out", str(tmp_path / "lite.gif"), "--seed", "3",
                          "--tflite", "policy_int8.tflite")
    lite = json.loads(stdout)
    assert code == 0 and lite["frames"] == lite["lengths"][0] + 1 and (tmp_path / "lite.gif").is_file()

    code, stdout, _ = run(capsys, "explain", str(out), "--data", "0.01,0.2,0.03,-0.1", "--method", "lime",
                          "--out", str(tmp_path / "why.png"))
    summary = json.loads(stdout)
    assert code == 0 and summary["method"] == "lime" and summary["feature_names"][2] == "pole angle"
    assert (tmp_path / "why.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("argv, message", [
    (["train", "rl", "--env", "Pendulum-v1", "--out", "x"], "continuous actions"),
    (["train", "rl", "--env", "NoSuchEnv-v0", "--out", "x"], "Unknown environment 'NoSuchEnv-v0'"),
    (["train", "rl", "--env", "CartPole-v1", "--algo", "a2c", "--double-q", "--out", "x"], "--double-q"),
    (["train", "rl", "--env", "CartPole-v1", "--timesteps", "0", "--out", "x"], "total_timesteps"),
])
def test_train_errors_are_one_line(capsys, tmp_path, argv, message):
    argv = [a if a != "x" else str(tmp_path / "x") for a in argv]
    code, _, err = run(capsys, *argv)
    assert code == 2 and err.startswith("error: ") and message in err and err.count("\n") == 1


def test_rl_verbs_on_the_wrong_model(capsys, tiny_agent_dir, shipped_digits, tmp_path):
    code, _, err = run(capsys, "play", str(shipped_digits), "--out", str(tmp_path / "x.gif"))
    assert code == 2 and "RL agent" in err
    code, _, err = run(capsys, "evaluate", str(shipped_digits), "--episodes", "3")
    assert code == 2 and "--episodes is for RL agents" in err
    code, _, err = run(capsys, "play", str(tiny_agent_dir), "--out", str(tmp_path / "x.mp4"))
    assert code == 2 and ".gif" in err
    code, _, err = run(capsys, "explain", str(tiny_agent_dir), "--data", "1,2", "--out", str(tmp_path / "x.png"))
    assert code == 2 and "shape (4,)" in err


def test_play_does_not_load_tensorflow(tiny_agent_dir, tmp_path):
    """`toolkit play` reads the agent's weights into numpy: no TensorFlow import to wait for."""
    script = ("import sys; from toolkit.cli import main; "
              f"assert main(['play', {str(tiny_agent_dir)!r}, '--out', {str(tmp_path / 'e.gif')!r}]) == 0; "
              "assert not {'tensorflow', 'keras'} & set(sys.modules), 'TensorFlow was imported'")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "e.gif").read_bytes()[:6] == b"GIF89a"
