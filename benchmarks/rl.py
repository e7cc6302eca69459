"""RL benchmarks: DQN on CartPole-v1 (3 seeds, steps and wall time to the threshold), Acrobot-v1 and
MountainCar-v0 returns, transfer to CartPoleLongPole-v1 (steps saved by a warm start), the shipped
agents' TFLite policies (action agreement, their own returns), `toolkit play`, explanations and the
step-through demo.

Every return is the mean over 100 greedy episodes whose seeds were never used while training
(evaluate()'s default). The load average of the machine is recorded with each result: wall times
measured while other work shares the two cores are inflated.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from .common import p50_ms, target

REPO = Path(__file__).resolve().parent.parent
SHIPPED = REPO / "saved_models" / "rl"
AGENTS = ("cartpole_dqn", "cartpole_a2c", "acrobot_dqn")
SEEDS = (0, 1, 2)
TRANSFER_SEEDS = (0, 1, 2, 3, 4)
BUDGET = 100_000  # environment steps
MINUTES = 10


def _load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.1f} / {five:.1f} (1 / 5 min) on {os.cpu_count()} CPUs"


def _train(env: str, seed: int, total: int, **overrides):
    from toolkit.rl import DQNAgent, DQNConfig

    start = time.perf_counter()
    agent = DQNAgent(DQNConfig.for_env(env, seed=seed, **overrides)).fit(env, total_timesteps=total)
    seconds = time.perf_counter() - start
    result = agent.evaluate(n_episodes=100)
    return agent, seconds, result


def cartpole() -> dict:
    """DQN (rl-baselines3-zoo's CartPole-v1 settings) with 3 seeds: steps and wall time until a
    greedy evaluation confirms 475 over 100 episodes, then the held-out 100-episode return."""
    runs, solved = [], 0
    for seed in SEEDS:
        agent, seconds, result = _train("CartPole-v1", seed, BUDGET)
        step = agent.training_["threshold_step"]
        ok = step is not None and step <= BUDGET and result["mean_return"] >= 475 and seconds <= MINUTES * 60
        solved += ok
        runs.append({"seed": seed, "threshold_step": step, "seconds": round(seconds, 1),
                     "train_seconds": agent.training_["seconds"], "eval_seconds": agent.training_["eval_seconds"],
                     "mean_return": result["mean_return"], "std_return": result["std_return"], "solved": bool(ok)})
    rows = [target(
        "CartPole-v1 DQN: seeds reaching 475 (100 episodes) within 100k steps and 10 min", solved, ">= 2 of 3",
        solved >= 2, "seeds", note="; ".join(
            f"seed {r['seed']}: {r['threshold_step'] or 'not reached'} steps, {r['seconds']:.0f} s, "
            f"return {r['mean_return']:.1f}" for r in runs))]
    rows.append(target("CartPole-v1 DQN: slowest seed's wall time (fit, imports excluded)",
                       max(r["seconds"] for r in runs), "<= 600 s", max(r["seconds"] for r in runs) <= 600, "s",
                       note=_load()))
    step_ms = _train_step_ms()
    rows.append(target("DQN train step (batch 64, 256x256 MLP), XLA vs plain tf.function", step_ms["xla"],
                       "reference", True, "ms",
                       note=f"plain tf.function {step_ms['plain']:.2f} ms; 128 steps per call"))
    return {"rows": rows, "runs": runs, "train_step_ms": step_ms}


def _train_step_ms() -> dict:
    """Milliseconds per gradient step of the compiled DQN update, with and without XLA."""
    from toolkit.rl import DQNAgent

    rng = np.random.default_rng(0)
    steps, batch = 128, 64
    data = (rng.normal(size=(steps, batch, 4)).astype("float32"), rng.integers(0, 2, (steps, batch)).astype("int32"),
            np.ones((steps, batch), "float32"), rng.normal(size=(steps, batch, 4)).astype("float32"),
            np.zeros((steps, batch), "float32"))
    out = {}
    for name, jit in (("xla", True), ("plain", False)):
        agent = DQNAgent(jit_compile=jit)
        agent.n_features_, agent.n_actions_ = 4, 2
        agent.model_ = agent._build_network(4, 2)
        train, _, _ = agent._compile(steps)
        out[name] = p50_ms(lambda: float(train(*data)), runs=10, warmup=2) / steps
    return out


def acrobot() -> dict:
    """DQN (the zoo's Acrobot-v1 settings, 100k steps, the best evaluation's weights kept), as the
    shipped acrobot_dqn recipe trains it; and the shipped agent itself."""
    from toolkit import load

    agent, seconds, result = _train("Acrobot-v1", 0, BUDGET, stop_at_threshold=False)
    rows = [target("Acrobot-v1 DQN: mean return over 100 episodes", result["mean_return"], ">= -100",
                   result["mean_return"] >= -100, note=f"std {result['std_return']:.1f}; 100k steps in {seconds:.0f} s "
                   f"({_load()}); -100 first confirmed at {agent.training_['threshold_step']} steps; random agent "
                   f"{result['random_mean_return']:.1f}")]
    shipped = load(SHIPPED / "acrobot_dqn").evaluate(n_episodes=100)
    rows.append(target("Acrobot-v1 DQN: the shipped agent's mean return", shipped["mean_return"], ">= -100",
                       shipped["mean_return"] >= -100, note=f"std {shipped['std_return']:.1f}"))
    return {"rows": rows, "train_seconds": round(seconds, 1), "result": result, "shipped": shipped,
            "curve": list(zip(agent.history_["eval_steps"], agent.history_["eval_mean"]))}


def mountaincar() -> dict:
    """DQN with the zoo's MountainCar-v0 settings (120k steps, best evaluation kept): its return
    against gymnasium's threshold (-110) and a random agent (-200: it never reaches the flag)."""
    agent, seconds, result = _train("MountainCar-v0", 0, 120_000, stop_at_threshold=False)
    return {"rows": [target(
        "MountainCar-v0 DQN: mean return over 100 episodes", result["mean_return"], ">= -110 (gymnasium's threshold)",
        result["mean_return"] >= -110, note=f"std {result['std_return']:.1f}; random agent "
        f"{result['random_mean_return']:.0f}; 120k steps in {seconds:.0f} s ({_load()})")],
        "result": result, "curve": list(zip(agent.history_["eval_steps"], agent.history_["eval_mean"]))}


def transfer() -> dict:
    """Warm start on CartPoleLongPole-v1 (the pole 4x as long) from the shipped CartPole-v1 DQN,
    against learning from scratch: the same settings (the zoo's CartPole-v1 ones, evaluated every
    500 steps), 5 seeds each; environment steps until a greedy evaluation confirms 475 over 100
    episodes (the budget, 100k, when never)."""
    from toolkit import load

    source = SHIPPED / "cartpole_dqn"
    zero_shot = load(source).evaluate("CartPoleLongPole-v1", n_episodes=100, baseline=False)["mean_return"]
    runs = {"scratch": [], "warm": []}
    for mode in runs:
        for seed in TRANSFER_SEEDS:
            extra = {"init_from": str(source)} if mode == "warm" else {}
            agent, seconds, result = _train("CartPoleLongPole-v1", seed, BUDGET, eval_freq=500, **extra)
            runs[mode].append({"seed": seed, "threshold_step": agent.training_["threshold_step"],
                               "seconds": round(seconds, 1), "mean_return": result["mean_return"]})
    steps = {mode: [r["threshold_step"] or BUDGET for r in rs] for mode, rs in runs.items()}
    saved = float(np.mean(steps["scratch"]) - np.mean(steps["warm"]))
    rows = [
        target("transfer to CartPoleLongPole-v1: environment steps saved by a warm start (mean of 5 seeds)", saved,
               "> 0", saved > 0, "steps",
               note=f"steps to 475, scratch {steps['scratch']} (median {np.median(steps['scratch']):.0f}), warm "
                    f"{steps['warm']} (median {np.median(steps['warm']):.0f}); the source policy scores "
                    f"{zero_shot:.0f} there untrained"),
        target("transfer: warm-started agents' mean return (100 episodes, worst seed)",
               min(r["mean_return"] for r in runs["warm"]), ">= 475",
               min(r["mean_return"] for r in runs["warm"]) >= 475,
               note="; ".join(f"seed {r['seed']}: {r['mean_return']:.1f}" for r in runs["warm"])),
    ]
    return {"rows": rows, "runs": runs, "zero_shot_return": zero_shot}


def tflite() -> dict:
    """Each shipped agent exported again (float32, int8, float16) into a temporary folder: action
    agreement with Keras over 10,000 states from real episodes and the file's own mean return over
    100 episodes, against the Keras policy's on the same episodes."""
    from toolkit import load

    rows, entries = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in AGENTS:
            agent = load(SHIPPED / name)
            for quantization in ("float32", "int8", "float16"):
                path = agent.export(Path(tmp) / name, quantization=quantization)
                entry = next(e for e in json.loads((path.parent / "card.json").read_text())["tflite"]
                             if e["file"] == path.name)
                entries[f"{name}/{path.name}"] = entry
                rows.append(target(f"{name} {quantization}: action agreement with Keras (10,000 states)",
                                   entry["agreement_with_keras"], ">= 0.99", entry["agreement_with_keras"] >= 0.99,
                                   note=f"output: {entry['output']['kind']}; {entry['size_bytes'] / 1024:.0f} KiB, "
                                        f"{entry['latency_ms_p50'] * 1000:.0f} us per step{_int8_note(entry)}"))
                if quantization == "int8":
                    gap = 1 - entry["return_ratio_to_keras"]
                    rows.append(target(f"{name} int8: mean return vs the Keras policy's (100 episodes)", gap * 100,
                                       "<= 5 % worse", gap <= 0.05, "%",
                                       note=f"int8 {entry['mean_return']:.1f}, Keras {entry['keras_mean_return']:.1f}"))
    return {"rows": rows, "entries": entries}


def _int8_note(entry: dict) -> str:
    """What an int8 row's note adds: the input, which layers are int8, where the disagreements are."""
    if entry["quantization"] != "int8":
        return ""
    gap = entry["keras_top_two_gap"]
    missed = round((1 - entry["agreement_with_keras"]) * entry["n_states"])
    note = (f"; {entry['input']['dtype']} observation in; {gap['disagreements'][1]} of the {missed} disagreements at "
            f"states whose Keras top two outputs are < {gap['below'][1]} apart ({gap['states'][1]} such states), "
            f"{gap['disagreements'][-1]} at < {gap['below'][-1]}")
    if entry.get("layers"):
        note += "; " + ", ".join(f"{layer} {dtype}" for layer, dtype in entry["layers"].items())
    if "keras_agreement_on_int8_input" in entry:
        note += (f"; Keras itself on the int8-rounded states: {entry['keras_agreement_on_int8_input']:.4f} "
                 "(what the int8 input allows)")
    return note


def play() -> dict:
    """`toolkit play saved_models/rl/cartpole_dqn --episodes 1 --out episode.gif`, as a user runs it."""
    rows, results = [], {}
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with tempfile.TemporaryDirectory() as tmp:
        for label, extra in (("the agent's network, read into numpy", []),
                             ("policy.tflite", ["--tflite", "policy.tflite"])):
            out = Path(tmp) / "episode.gif"
            command = [sys.executable, "-m", "toolkit", "play", str(SHIPPED / "cartpole_dqn"), "--episodes", "1",
                       "--out", str(out), *extra]
            start = time.perf_counter()
            done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=REPO)
            wall = time.perf_counter() - start
            if done.returncode != 0:
                raise RuntimeError(f"{' '.join(command)} failed: {done.stderr[-2000:]}")
            result = json.loads(done.stdout)
            results[label] = {**result, "wall_seconds": round(wall, 2)}
            note = (f"{result['lengths'][0]} steps, {result['frames']} frames, {result['size_bytes'] / 1e6:.2f} MB; "
                    f"{_load()}")
            if not extra:
                rows.append(target("toolkit play: one CartPole episode rendered and written (its JSON seconds)",
                                   result["seconds"], "<= 10 s", result["seconds"] <= 10, "s", note=note))
            rows.append(target(f"toolkit play, whole command ({label})", wall, "<= 10 s", wall <= 10, "s",
                               note="Python start, imports and loading included; no TensorFlow import"))
    return {"rows": rows, "results": results}


def explanations() -> dict:
    """SHAP and LIME over the observation features of the shipped agents (20 states each), and the
    demo's step-through request (replay, frame, action values and SHAP) called directly."""
    from apps.rl import RLService, reset_episode, step_episode
    from toolkit import load

    rows = []
    for name in AGENTS:
        agent = load(SHIPPED / name)
        states = agent.background_[:: max(1, len(agent.background_) // 20)][:20]
        agent.explain(states[0], method="shap")  # imports shap
        for method in ("shap", "lime"):
            seconds = [agent.explain(s, method=method).seconds for s in states]
            rows.append(target(f"{name}: {method} explanation of one action (median of 20)", float(np.median(seconds)),
                               "<= 5 s", float(np.median(seconds)) <= 5, "s"))
    service = RLService()
    state = reset_episode(service, "CartPole DQN", 0)[-1]
    ms = p50_ms(lambda: step_episode(service, "CartPole DQN", state), runs=20, warmup=2)
    rows.append(target("demo: one step-through request (replay, frame, Q-values, SHAP) p50", ms, "<= 1000 ms",
                       ms <= 1000, "ms"))
    return {"rows": rows}
