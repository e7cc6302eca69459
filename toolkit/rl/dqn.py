"""Deep Q-learning (Mnih et al. 2015), as the textbook describes it: a Q-network (MLP), experience
replay in a numpy ring buffer, a target network with hard or Polyak updates, a linearly decaying
epsilon-greedy exploration, the Huber loss, gradient-norm clipping, and Double DQN
(van Hasselt et al. 2016) as an option.

The settings and their meanings follow Stable-Baselines3's DQN; the defaults are rl-baselines3-zoo's
tuned CartPole-v1 ones and ``DQNConfig.for_env`` gives the zoo's Acrobot-v1 and MountainCar-v0
ones. Every ``train_freq`` environment steps, ``gradient_steps`` minibatches are sampled in numpy
and trained on in ONE compiled call (``tf.function`` with XLA, a ``tf.range`` loop inside), then the
weights are copied into the numpy forward pass that picks the actions.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ..base import register_task
from ..config import check_non_negative, check_positive, setting
from .agent import Agent, AgentConfig, ExportNetwork, Monitor, in_unit_interval
from .envs import EnvMaker, final_observations, vector_env
from .quantize import int8_network

# rl-baselines3-zoo, hyperparams/dqn.yml (CartPole-v1 is the default of DQNConfig).
DQN_PRESETS = {
    "CartPole-v1": {},
    "CartPoleLongPole-v1": {},
    "Acrobot-v1": dict(total_timesteps=100_000, learning_rate=6.3e-4, batch_size=128, buffer_size=50_000,
                       learning_starts=0, gamma=0.99, target_update_interval=250, train_freq=4, gradient_steps=-1,
                       exploration_fraction=0.12, exploration_final_eps=0.1),
    "MountainCar-v0": dict(total_timesteps=120_000, learning_rate=4e-3, batch_size=128, buffer_size=10_000,
                           learning_starts=1_000, gamma=0.98, target_update_interval=600, train_freq=16,
                           gradient_steps=8, exploration_fraction=0.2, exploration_final_eps=0.07),
}


@dataclasses.dataclass(frozen=True)
class DQNConfig(AgentConfig):
    """Settings of a :class:`DQNAgent` (Stable-Baselines3's names and meanings).

    buffer_size / batch_size: replay memory (transitions) and minibatch size.
    learning_starts: environment steps of random actions before training starts.
    train_freq / gradient_steps: every ``train_freq`` vector steps, ``gradient_steps`` updates
        (-1: as many as environment steps were collected).
    target_update_interval / tau: every ``target_update_interval`` environment steps the target
        network moves to ``tau * online + (1 - tau) * target`` (tau = 1: a hard copy).
    exploration_*: epsilon falls linearly from ``exploration_initial_eps`` to
        ``exploration_final_eps`` over the first ``exploration_fraction`` of ``total_timesteps``.
    max_grad_norm: gradients are clipped to this global norm. double_q: Double DQN targets.
    hidden_units: the Q-network's ReLU layers. n_envs: environments stepped side by side.
    """

    total_timesteps: int = setting(50_000, "environment steps (default: the tuned setting for the environment); "
                                   "training stops earlier once a greedy evaluation reaches the environment's "
                                   "reward threshold", flags=("--timesteps", "--total-timesteps"))
    hidden_units: tuple[int, ...] = setting((256, 256), "sizes of the Q-network's ReLU layers")
    learning_rate: float = setting(2.3e-3, "Adam's learning rate (default: the tuned setting)", tune=(1e-4, 1e-2))
    buffer_size: int = setting(100_000, "replay memory, in transitions", tune=(10_000, 1_000_000))
    learning_starts: int = setting(1_000, "environment steps of random actions before training starts")
    batch_size: int = setting(64, "minibatch size", tune=(32, 256))
    gamma: float = setting(0.99, "discount factor", tune=(0.9, 0.999))
    train_freq: int = setting(256, "train every N vector steps", tune=(1, 256))
    gradient_steps: int = setting(128, "updates per training round (-1: as many as steps collected)")
    target_update_interval: int = setting(10, "environment steps between target-network updates",
                                          tune=(10, 10_000))
    tau: float = setting(1.0, "target update: tau * online + (1 - tau) * target (1: a hard copy)")
    exploration_fraction: float = setting(0.16, "share of the timesteps over which epsilon falls", tune=(0.05, 0.5))
    exploration_initial_eps: float = setting(1.0, "epsilon at the start")
    exploration_final_eps: float = setting(0.04, "epsilon at the end of the fall", tune=(0.01, 0.1))
    max_grad_norm: float = setting(10.0, "gradients are clipped to this global norm")
    double_q: bool = setting(False, "DQN: Double DQN targets")

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive(self, "learning_rate", "buffer_size", "batch_size", "train_freq", "target_update_interval",
                 "max_grad_norm")
        check_non_negative(self, "learning_starts")
        if self.gradient_steps == 0 or self.gradient_steps < -1:
            raise ValueError(f"gradient_steps must be >= 1, or -1 (as many as environment steps collected). "
                             f"Received {self.gradient_steps}.")
        in_unit_interval(self, "gamma", "exploration_initial_eps", "exploration_final_eps")
        in_unit_interval(self, "tau", "exploration_fraction", closed_low=False)

    @classmethod
    def presets(cls) -> dict[str, dict]:
        return DQN_PRESETS


class ReplayBuffer:
    """A numpy ring buffer of transitions (obs, action, reward, next obs, terminated)."""

    def __init__(self, capacity: int, n_features: int):
        self.capacity = int(capacity)
        self.obs = np.zeros((self.capacity, n_features), np.float32)
        self.next_obs = np.zeros((self.capacity, n_features), np.float32)
        self.actions = np.zeros(self.capacity, np.int32)
        self.rewards = np.zeros(self.capacity, np.float32)
        self.dones = np.zeros(self.capacity, np.float32)
        self.position = 0
        self.size = 0

    def add(self, obs, actions, rewards, next_obs, terminated) -> None:
        n = len(actions)
        index = (self.position + np.arange(n)) % self.capacity
        self.obs[index], self.next_obs[index] = obs, next_obs
        self.actions[index], self.rewards[index], self.dones[index] = actions, rewards, terminated
        self.position = int((self.position + n) % self.capacity)
        self.size = min(self.size + n, self.capacity)

    def sample(self, rng: np.random.Generator, shape: tuple[int, int]) -> tuple[np.ndarray, ...]:
        """(gradient steps, batch) minibatches, sampled uniformly with replacement."""
        index = rng.integers(0, self.size, size=shape)
        return self.obs[index], self.actions[index], self.rewards[index], self.next_obs[index], self.dones[index]


@register_task("dqn", aliases=("rl",))  # `toolkit train rl` trains a DQN agent by default
class DQNAgent(Agent):
    """A DQN agent for environments with discrete actions and vector observations.

    >>> agent = DQNAgent(seed=0).fit("CartPole-v1", total_timesteps=50_000)
    >>> agent.evaluate(n_episodes=100)         # {'mean_return': 500.0, 'std_return': 0.0, ...}
    >>> agent.predict(obs)                     # the greedy action
    >>> agent.save("cartpole_dqn"); agent.export("cartpole_dqn", quantization="int8")
    """

    config_class = DQNConfig
    algorithm = "dqn"
    action_value_name = "Q-value"
    output_kind = "Q-values"
    explained_quantity = "advantage Q(s, a) - mean Q(s, .)"

    def _build_network(self, n_features: int, n_actions: int):
        import keras

        inputs = keras.Input((n_features,), name="observation")
        x = inputs
        for i, units in enumerate(self.config.hidden_units):
            x = keras.layers.Dense(units, activation="relu", name=f"hidden_{i}")(x)
        outputs = keras.layers.Dense(n_actions, name="q_values")(x)
        return keras.Model(inputs, outputs, name="q_network")

    def _stack_names(self) -> list[str]:
        return [f"hidden_{i}" for i in range(len(self.config.hidden_units))] + ["q_values"]

    def _export_network(self, quantization: str, calibration: np.ndarray | None) -> ExportNetwork:
        """The Q-network; for int8, a copy prepared by :func:`toolkit.rl.quantize.int8_network`:
        float32 first layer and head around int8 hidden layers, Q-values out (a one-hidden-layer
        network: an int8 head giving Q(s, a) - mean_a Q(s, a), same argmax)."""
        if quantization != "int8":
            return ExportNetwork(self.model_, self.output_kind)
        prepared = int8_network(self.model_.get_weights(), calibration)
        copy = {k: prepared[k] for k in ("model", "float_nodes", "layers", "representative")}
        if prepared["float_head"]:
            return ExportNetwork(kind=self.output_kind, **copy)
        return ExportNetwork(kind="Q-values minus their mean over the actions",
                             same_outputs=lambda q: q - q.mean(axis=1, keepdims=True), **copy)

    def _explained(self, outputs: np.ndarray, action: int) -> np.ndarray:
        return outputs[:, action] - outputs.mean(axis=1)

    def epsilon(self, steps: int, total_timesteps: int) -> float:
        cfg = self.config
        progress = min(1.0, steps / max(1.0, cfg.exploration_fraction * total_timesteps))
        return cfg.exploration_initial_eps + progress * (cfg.exploration_final_eps - cfg.exploration_initial_eps)

    # ------------------------------------------------------------------ compiled training
    def _compile(self, gradient_steps: int):
        """(train(batches of gradient_steps x batch_size) -> mean loss, update_target(), the target network)."""
        import keras
        import tensorflow as tf

        cfg = self.config
        model = self.model_
        target = keras.models.clone_model(model)
        target.set_weights(model.get_weights())
        optimizer = keras.optimizers.Adam(cfg.learning_rate)
        optimizer.build(model.trainable_variables)
        gamma, double_q, clip = float(cfg.gamma), bool(cfg.double_q), float(cfg.max_grad_norm)
        huber = keras.losses.Huber(delta=1.0, reduction="sum_over_batch_size")
        variables = model.trainable_variables

        def step(obs, actions, rewards, next_obs, dones):
            next_q = target(next_obs, training=False)
            if double_q:  # the online network picks the action, the target network values it
                best = tf.argmax(model(next_obs, training=False), axis=1, output_type=tf.int32)
                next_value = tf.gather(next_q, best, batch_dims=1)
            else:
                next_value = tf.reduce_max(next_q, axis=1)
            y = tf.stop_gradient(rewards + gamma * (1.0 - dones) * next_value)
            with tf.GradientTape() as tape:
                q = tf.gather(model(obs, training=True), actions, batch_dims=1)
                loss = huber(y, q)
            grads, _ = tf.clip_by_global_norm(tape.gradient(loss, variables), clip)
            optimizer.apply_gradients(zip(grads, variables))
            return loss

        @tf.function(jit_compile=cfg.jit_compile, reduce_retracing=True)
        def train(obs, actions, rewards, next_obs, dones):
            total = tf.constant(0.0)
            for g in tf.range(gradient_steps):
                total += step(obs[g], actions[g], rewards[g], next_obs[g], dones[g])
            return total / gradient_steps

        tau = float(cfg.tau)

        @tf.function
        def update_target():
            for t, s in zip(target.weights, model.weights):
                t.assign(tau * s + (1.0 - tau) * t)

        return train, update_target, target

    # ------------------------------------------------------------------ the loop
    def _learn(self, maker: EnvMaker, total_timesteps: int, monitor: Monitor) -> int:
        cfg = self.config
        n_envs = cfg.n_envs
        gradient_steps = cfg.gradient_steps if cfg.gradient_steps > 0 else cfg.train_freq * n_envs
        train, update_target, _ = self._compile(gradient_steps)
        buffer = ReplayBuffer(min(cfg.buffer_size, total_timesteps + n_envs), self.n_features_)
        rng = np.random.default_rng(cfg.seed)
        envs, obs = vector_env(maker, n_envs, cfg.seed)
        target_every = max(cfg.target_update_interval // n_envs, 1)
        steps, calls = 0, 0
        try:
            while steps < total_timesteps:
                eps = self.epsilon(steps, total_timesteps)
                if steps < cfg.learning_starts:
                    actions = rng.integers(self.n_actions_, size=n_envs)
                else:
                    actions = self._greedy(obs)
                    explore = rng.random(n_envs) < eps
                    if explore.any():
                        actions = np.where(explore, rng.integers(self.n_actions_, size=n_envs), actions)
                next_obs, rewards, terminated, truncated, infos = envs.step(actions)
                done = np.logical_or(terminated, truncated)
                # A time limit is not a terminal state: its target still bootstraps from the final observation.
                buffer.add(obs, actions, rewards, final_observations(next_obs, done, infos), terminated)
                obs = np.asarray(next_obs, np.float32)
                steps += n_envs
                calls += 1
                monitor.on_step(steps, np.asarray(rewards, np.float64), done)
                if steps > cfg.learning_starts and calls % cfg.train_freq == 0:
                    batch = buffer.sample(rng, (gradient_steps, cfg.batch_size))
                    loss = float(train(*batch))
                    self._refresh()
                    monitor.on_loss(steps, loss, exploration_rate=eps)
                if calls % target_every == 0:
                    update_target()
                if monitor.maybe_evaluate(steps):
                    break
        finally:
            envs.close()
        return steps
