"""RL agents: environments and their errors, the DQN and A2C pieces, evaluation, early stopping,
transfer, save/load, TFLite policies, explanations, TensorBoard logs and episode GIFs.

Training here is tiny (hundreds of steps): the checks are about behaviour; the returns the agents
reach are measured by benchmarks/rl.py."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import TINY_DQN
from toolkit import load
from toolkit.errors import DataError, ModelFormatError, NotFittedError
from toolkit.rl import A2CAgent, A2CConfig, DQNAgent, DQNConfig, EnvMaker, ReplayBuffer, TFLitePolicy, run_episodes

gym = pytest.importorskip("gymnasium")


def _lean(obs: np.ndarray) -> np.ndarray:
    """A decent hand-written CartPole policy: push towards where the pole falls."""
    return (obs[:, 2] + 0.5 * obs[:, 3] > 0).astype(int)


# ---------------------------------------------------------------------------- environments


class _Pixels(gym.Env):
    observation_space = gym.spaces.Box(0, 255, (8, 8, 3), np.uint8)
    action_space = gym.spaces.Discrete(2)


class _DictObs(gym.Env):
    observation_space = gym.spaces.Dict({"x": gym.spaces.Box(-1, 1, (2,))})
    action_space = gym.spaces.Discrete(2)


@pytest.mark.parametrize("env, message", [
    ("Pendulum-v1", "continuous actions"),
    (_Pixels(), "image observations"),
    (_DictObs(), "Dict observations"),
    ("NoSuchEnv-v0", "doesn't exist"),
    (42, "Expected an environment id"),
])
def test_unsupported_environments_get_a_clear_error(env, message):
    with pytest.raises(DataError, match=message) as info:
        DQNAgent(total_timesteps=10).fit(env)
    assert "Discrete" in str(info.value) or "Unknown environment" in str(info.value) or message in str(info.value)


def test_long_pole_variant_and_env_makers():
    env = gym.make("CartPoleLongPole-v1")
    assert env.unwrapped.length == 2.0 and env.unwrapped.polemass_length == pytest.approx(0.2)
    assert gym.make("CartPoleLongPole-v1", length=1.0).unwrapped.length == 1.0
    maker = EnvMaker("CartPoleLongPole-v1", length=1.0)
    assert maker.spec == {"id": "CartPoleLongPole-v1", "kwargs": {"length": 1.0}} and maker.threshold() == 475.0
    assert EnvMaker("CartPoleLongPole-v1", length=2.0).spec["kwargs"] == {}  # the default is not repeated
    assert EnvMaker(gym.make("Acrobot-v1")).id == "Acrobot-v1"
    assert EnvMaker(lambda: gym.make("CartPole-v1")).can_copy


def test_run_episodes_does_not_depend_on_how_many_run_at_once():
    one = run_episodes(_lean, [gym.make("CartPole-v1")], 6, seed=3)
    many = run_episodes(_lean, [gym.make("CartPole-v1") for _ in range(4)], 6, seed=3, collect=True)
    np.testing.assert_array_equal(one.returns, many.returns)
    assert many.states.shape == (int(many.lengths.sum()), 4)
    assert one.returns.mean() > 40  # the hand-written policy balances for a while


# ---------------------------------------------------------------------------- configs and pieces


@pytest.mark.parametrize("config, kwargs", [
    (DQNConfig, {"gamma": 1.5}), (DQNConfig, {"gradient_steps": 0}), (DQNConfig, {"tau": 0.0}),
    (DQNConfig, {"hidden_units": ()}), (DQNConfig, {"exploration_fraction": 0}), (A2CConfig, {"n_steps": 0}),
    (A2CConfig, {"ent_coef": -0.1}), (A2CConfig, {"gae_lambda": 2.0}),
])
def test_bad_settings_are_value_errors(config, kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        config(**kwargs)


def test_presets_are_rl_zoo_settings():
    acrobot = DQNConfig.for_env("Acrobot-v1", seed=3)
    assert (acrobot.learning_rate, acrobot.target_update_interval, acrobot.gradient_steps, acrobot.seed) == (
        6.3e-4, 250, -1, 3)
    assert DQNConfig.for_env("CartPole-v1") == DQNConfig() and DQNConfig.for_env("Unknown-v0") == DQNConfig()
    assert A2CConfig.for_env("Acrobot-v1").n_envs == 16


def test_replay_buffer_is_a_ring():
    buffer = ReplayBuffer(5, 2)
    for i in range(7):
        buffer.add(np.full((1, 2), i), [i % 2], [float(i)], np.full((1, 2), i + 1), [0.0])
    assert buffer.size == 5 and sorted(buffer.rewards.tolist()) == [2.0, 3.0, 4.0, 5.0, 6.0]
    obs, actions, rewards, next_obs, dones = buffer.sample(np.random.default_rng(0), (3, 4))
    assert obs.shape == (3, 4, 2) and np.all(next_obs == obs + 1) and np.all(obs[..., 0] == rewards)


def test_epsilon_schedule_is_linear():
    agent = DQNAgent(exploration_fraction=0.5, exploration_initial_eps=1.0, exploration_final_eps=0.1)
    assert [round(agent.epsilon(s, 1000), 3) for s in (0, 250, 500, 900)] == [1.0, 0.55, 0.1, 0.1]


@pytest.mark.parametrize("tau", [1.0, 0.25])
def test_target_network_updates_hard_or_polyak(tau):
    agent = DQNAgent(hidden_units=(8,), tau=tau, jit_compile=False)
    agent.n_features_, agent.n_actions_ = 4, 2
    agent.model_ = agent._build_network(4, 2)
    _, update_target, target = agent._compile(1)
    before = [w.copy() for w in target.get_weights()]
    agent.model_.set_weights([w + 1.0 for w in agent.model_.get_weights()])
    update_target()
    for old, new, online in zip(before, target.get_weights(), agent.model_.get_weights()):
        np.testing.assert_allclose(new, tau * online + (1 - tau) * old, atol=1e-6)


@pytest.mark.parametrize("double_q", [False, True])
def test_train_step_moves_q_towards_the_targets(double_q):
    agent = DQNAgent(hidden_units=(16,), double_q=double_q, learning_rate=1e-2, jit_compile=False)
    agent.n_features_, agent.n_actions_ = 2, 2
    agent.model_ = agent._build_network(2, 2)
    train, _, _ = agent._compile(50)
    rng = np.random.default_rng(0)
    obs = rng.normal(size=(50, 32, 2)).astype("float32")
    actions = np.zeros((50, 32), "int32")
    batch = (obs, actions, np.ones((50, 32), "float32"), obs, np.ones((50, 32), "float32"))  # terminal: y = 1
    first = float(train(*batch))
    last = float(train(*batch))
    assert last < first and np.abs(agent.model_(obs[0])[:, 0].numpy() - 1).mean() < 0.2


def test_gae_with_lambda_one_is_the_n_step_return():
    from toolkit.rl.a2c import _gae, _sample

    rewards = np.array([[1.0], [1.0], [1.0]], "float32")
    values = np.array([[0.5], [0.5], [0.5]], "float32")
    dones = np.array([[0.0], [1.0], [0.0]], "float32")
    adv = _gae(rewards, values, dones, np.array([2.0], "float32"), gamma=0.9, lam=1.0)
    np.testing.assert_allclose(adv[:, 0] + values[:, 0], [1 + 0.9 * 1, 1, 1 + 0.9 * 2], rtol=1e-6)
    draws = _sample(np.tile([[0.2, 0.8]], (20_000, 1)), np.random.default_rng(0))
    assert abs(draws.mean() - 0.8) < 0.01


def test_final_observation_is_stored_at_a_time_limit():
    from toolkit.rl.envs import final_observations

    next_obs = np.zeros((2, 3), "float32")
    final = np.empty(2, dtype=object)  # gymnasium's layout: None where no episode ended
    final[1] = np.ones(3)
    out = final_observations(next_obs, np.array([False, True]), {"final_obs": final})
    np.testing.assert_array_equal(out, [[0, 0, 0], [1, 1, 1]])


# ---------------------------------------------------------------------------- the agents


def test_predict_before_fit_and_input_checks(tiny_agent_dir):
    with pytest.raises(NotFittedError):
        DQNAgent().predict(np.zeros(4))
    agent = load(tiny_agent_dir)
    obs = agent.background_[:5]
    assert np.asarray(agent.predict(obs[0])).shape == () and agent.predict(obs).shape == (5,)
    assert agent.action_values(obs).shape == (5, 2)
    with pytest.raises(DataError, match=r"shape \(4,\)"):
        agent.predict(np.zeros(3))
    with pytest.raises(DataError, match="NaN"):
        agent.predict(np.full(4, np.nan))


def test_fit_is_reproducible_and_records_its_training():
    first = DQNAgent(**TINY_DQN).fit("CartPole-v1")
    second = DQNAgent(**TINY_DQN).fit("CartPole-v1")
    for a, b in zip(first.model_.get_weights(), second.model_.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert first.history_["episode_returns"] == second.history_["episode_returns"]
    assert first.history_["eval_steps"] == [300, 600] and first.training_["env_steps"] == 600
    assert sum(first.history_["episode_lengths"]) <= 600 and first.training_["reward_threshold"] == 475.0


def test_early_stop_at_the_threshold_keeps_the_best_weights():
    agent = A2CAgent(total_timesteps=5_000, n_envs=4, hidden_units=(8,), eval_freq=400, eval_episodes=2,
                     confirm_episodes=4, reward_threshold=5.0).fit("CartPole-v1")
    assert agent.training_["threshold_step"] == 400 and agent.training_["env_steps"] == 400
    assert agent.history_["eval_episodes"] == [4]  # the quick evaluation passed, so 4 episodes confirmed it
    assert agent.evaluate(n_episodes=5)["mean_return"] >= 5.0


def test_evaluate_is_sb3_style(tiny_agent_dir):
    agent = load(tiny_agent_dir)
    result = agent.evaluate(n_episodes=10)
    assert set(result) >= {"mean_return", "std_return", "mean_length", "std_length", "random_mean_return"}
    assert result["n_episodes"] == 10 and result == agent.evaluate(n_episodes=10)  # deterministic
    assert result["mean_return"] == result["mean_length"]  # CartPole: +1 per step
    other = agent.evaluate("CartPoleLongPole-v1", n_episodes=3)
    assert other["n_episodes"] == 3
    with pytest.raises(DataError, match="6 features"):
        agent.evaluate("Acrobot-v1", n_episodes=1)


def test_save_load_roundtrip_and_tampering(tiny_agent_dir, tmp_path):
    agent = load(tiny_agent_dir)
    assert isinstance(agent, DQNAgent) and agent.env_["id"] == "CartPole-v1"
    for name in ("model.keras", "card.json", "history.json", "labels.txt", "background.npz", "learning_curve.png",
                 "policy.tflite", "policy_int8.tflite"):
        assert (tiny_agent_dir / name).is_file(), name
    card = json.loads((tiny_agent_dir / "card.json").read_text())
    assert card["input"]["features"][2] == "pole angle" and card["output"]["actions"] == ["push left", "push right"]
    copy = agent.save(tmp_path / "copy")
    np.testing.assert_array_equal(load(copy).predict(agent.background_), agent.predict(agent.background_))
    with open(copy / "model.keras", "ab") as f:
        f.write(b"tampered")
    with pytest.raises(ModelFormatError, match="does not match"):
        load(copy)


def test_tflite_policies_and_their_card_entries(tiny_agent_dir):
    agent = load(tiny_agent_dir)
    entries = {e["quantization"]: e for e in agent.tflite_}
    assert entries["float32"]["file"] == "policy.tflite" and entries["int8"]["file"] == "policy_int8.tflite"
    assert entries["float32"]["agreement_with_keras"] >= 0.99 and entries["float32"]["n_states"] == 500
    int8 = entries["int8"]
    assert int8["input"]["dtype"] == "float32" and int8["n_episodes"] == 5
    states = agent.background_
    float_policy = TFLitePolicy(tiny_agent_dir / "policy.tflite")
    np.testing.assert_allclose(float_policy.action_values(states), agent.action_values(states), atol=1e-4)
    # the int8 DQN file: float32 observation in, first layer and Q-value head float32, the hidden layer int8
    assert int8["layers"] == {"float_input": "float32", "int8_hidden_1": "int8", "q_values": "float32"}
    assert int8["output"]["kind"] == "Q-values" and "keras_agreement_on_int8_input" not in int8
    lite = TFLitePolicy(tiny_agent_dir / "policy_int8.tflite")
    q = agent.action_values(states)
    np.testing.assert_allclose(lite.action_values(states), q, atol=0.05 * np.abs(q).max() + 0.01)
    np.testing.assert_array_equal(lite.on_input_grid(states), states)  # nothing to round: a float input
    details = lite.runner.interpreter.get_tensor_details()
    kernels = {d["name"]: d["dtype"] for d in details if len(d["shape"]) == 2 and d["shape"][0] > 1
               and "MatMul" in d["name"] and ";" not in d["name"]}
    assert sorted(np.dtype(t).name for t in kernels.values()) == ["float32", "float32", "int8"], kernels
    gap = int8["keras_top_two_gap"]
    assert gap["below"] == [0.001, 0.01, 0.1] and gap["states"] == sorted(gap["states"])
    assert all(0 <= d <= n for d, n in zip(gap["disagreements"], gap["states"]))
    assert gap["disagreements"][-1] <= round((1 - int8["agreement_with_keras"]) * int8["n_states"])
    for key in ("mean_return", "keras_mean_return", "return_ratio_to_keras", "latency_ms_p50", "sha256"):
        assert key in int8, key


def test_int8_preparation_keeps_the_network_and_rounds_to_the_converters_grid():
    """Cross-layer equalization computes the same Q-values; GPTQ's kernels lie on the per-channel
    int8 grid the converter derives (max |w| at 127 steps) and move the layer's outputs on the
    calibration states less than rounding each weight to the nearest step."""
    from toolkit.rl import quantize

    rng = np.random.default_rng(0)
    weights = [rng.normal(0, 0.5, (4, 32)), rng.normal(0, 0.1, 32), rng.normal(0, 0.2, (32, 32)),
               rng.normal(0, 0.1, 32), rng.normal(0, 0.2, (32, 2)), rng.normal(0, 0.1, 2)]
    states = rng.normal(0, 1, (2_000, 4))

    def q_values(w):
        return quantize.hidden_activations(w, states)[-1] @ w[-2] + w[-1]

    equal = quantize.equalize(weights, states, power=1.0)
    np.testing.assert_allclose(q_values(equal), q_values(weights), atol=1e-9)
    peaks = quantize.hidden_activations(equal, states)[0].max(axis=0)
    np.testing.assert_allclose(peaks[peaks > 0], peaks.max())  # every live unit spans the layer's range
    inputs = quantize.hidden_activations(equal, states)[0]
    kernel = equal[2]
    scale = np.abs(kernel).max(axis=0) / 127
    rounded = quantize.gptq_kernel(kernel, inputs)
    steps = rounded / scale
    np.testing.assert_allclose(steps, np.round(steps), atol=1e-6)
    np.testing.assert_allclose(np.abs(steps).max(axis=0), 127, atol=1e-6)
    nearest = np.round(kernel / scale) * scale
    assert np.mean((inputs @ (rounded - kernel)) ** 2) < 0.5 * np.mean((inputs @ (nearest - kernel)) ** 2)
    model = quantize.int8_network(weights, states.astype(np.float32))
    assert model["float_head"] and model["layers"]["int8_hidden_1"] == "int8" and len(model["representative"]) == 500
    keras_q = model["model"].predict(states[:50].astype(np.float32), verbose=0)
    np.testing.assert_allclose(keras_q, q_values(weights)[:50], atol=0.05 * np.abs(keras_q).max())
    # one hidden layer: nothing between the first layer and the head, so the head is the int8 layer
    # and gives the Q-values minus their mean
    single = quantize.int8_network(weights[:2] + weights[4:], states.astype(np.float32))
    assert not single["float_head"] and single["layers"] == {"float_input": "float32", "q_values": "int8"}
    centred = single["model"].predict(states[:50].astype(np.float32), verbose=0)
    np.testing.assert_allclose(centred.sum(axis=1), 0, atol=1e-4)


@pytest.mark.parametrize("method", ["shap", "lime"])
def test_explanations_name_the_features(tiny_agent_dir, method):
    agent = load(tiny_agent_dir)
    obs = agent.background_[7]
    explanation = agent.explain(obs, method=method, budget=300)
    assert explanation.attributions.shape == (4,) and explanation.image.ndim == 3
    assert explanation.target in agent.action_names_ and explanation.seconds > 0
    assert explanation.extra["top_feature"] in agent.feature_names_
    if method == "shap":  # exact Shapley values: they add up to f(x) - E[f(background)]
        from toolkit.explain.tabular import MAX_BACKGROUND, _subsample

        action = explanation.extra["action_index"]
        f = lambda s: agent._explained(agent.action_values(s), action)  # noqa: E731
        background = _subsample(agent.background_.astype(np.float64), MAX_BACKGROUND, 0)
        assert explanation.attributions.sum() == pytest.approx(f(obs[None])[0] - f(background).mean(), abs=1e-3)
    with pytest.raises(DataError, match="Unknown action"):
        agent.explain(obs, target="jump")


def test_warm_start_copies_the_network(tiny_agent_dir):
    source = load(tiny_agent_dir)
    agent = DQNAgent(**{**TINY_DQN, "total_timesteps": 50, "learning_starts": 1_000, "eval_freq": 0})
    agent.fit("CartPoleLongPole-v1", init_from=str(tiny_agent_dir))
    for a, b in zip(agent.model_.get_weights(), source.model_.get_weights()):
        np.testing.assert_array_equal(a, b)  # nothing trained yet: the source's network
    assert agent.training_["transfer"]["source_env"] == "CartPole-v1"
    with pytest.raises(DataError, match="hidden_units"):
        DQNAgent(total_timesteps=50, hidden_units=(8,)).fit("CartPole-v1", init_from=source)
    with pytest.raises(DataError, match="DQNAgent"):
        A2CAgent(total_timesteps=50).fit("CartPole-v1", init_from=source)


def test_tensorboard_logs(tmp_path):
    import tensorflow as tf

    agent = DQNAgent(**{**TINY_DQN, "tensorboard_log": str(tmp_path)}).fit("CartPole-v1")
    run = agent.training_["tensorboard"]
    tags = set()
    for path in tf.io.gfile.glob(f"{run}/events.out.tfevents.*"):
        for record in tf.data.TFRecordDataset(path):
            event = tf.compat.v1.Event.FromString(record.numpy())
            tags.update(v.tag for v in event.summary.value)
    assert {"rollout/episode_return", "eval/mean_return"} <= tags


def test_a2c_samples_or_acts_greedily(tiny_agent_dir):
    agent = A2CAgent(total_timesteps=200, n_envs=2, hidden_units=(8,), eval_freq=0).fit("CartPole-v1")
    probs = agent.action_values(agent.background_)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert np.array_equal(agent.predict(agent.background_), probs.argmax(axis=1))
    sampled = agent.predict(np.repeat(agent.background_[:1], 2000, axis=0), deterministic=False, seed=0)
    assert abs(sampled.mean() - probs[0, 1]) < 0.05


def test_play_writes_a_gif(tiny_agent_dir, tmp_path):
    from PIL import Image

    from toolkit.rl.play import play_saved

    agent = load(tiny_agent_dir)
    result = agent.play(tmp_path / "episode.gif", n_episodes=2, seed=5)
    with Image.open(tmp_path / "episode.gif") as gif:
        assert gif.n_frames == result["frames"] == sum(result["lengths"]) + 2 and gif.size == (300, 200)
    evaluation = agent.evaluate(n_episodes=2, seed=5)
    assert np.mean(result["returns"]) == evaluation["mean_return"]
    # `toolkit play` reads the weights without Keras: the same actions, the same GIF
    saved = play_saved(tiny_agent_dir, tmp_path / "saved.gif", 2, seed=5)
    assert (tmp_path / "saved.gif").read_bytes() == (tmp_path / "episode.gif").read_bytes()
    assert saved["returns"] == result["returns"]
    lite = play_saved(tiny_agent_dir, tmp_path / "lite.gif", seed=5, tflite="policy.tflite", every=2)
    assert lite["returns"][0] == result["returns"][0] and lite["frames"] < result["frames"]
    with pytest.raises(DataError, match="6 features"):
        play_saved(tiny_agent_dir, tmp_path / "acrobot.gif", env="Acrobot-v1")
    with pytest.raises(DataError, match=".gif"):
        agent.play(tmp_path / "episode.mp4")
