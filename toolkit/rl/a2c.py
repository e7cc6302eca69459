"""Advantage actor-critic (A2C, the synchronous A3C of Mnih et al. 2016): a policy network and a
value network (the baseline), n-step returns over ``n_envs`` environments stepped side by side
(``gymnasium.vector.SyncVectorEnv``), advantage = n-step return - V(s) (or GAE with
``gae_lambda`` < 1), an entropy bonus, RMSprop and gradient-norm clipping.

Settings and defaults follow Stable-Baselines3's A2C (8 environments for CartPole-v1, as
rl-baselines3-zoo tunes it); ``ent_coef`` defaults to 0.01, the A3C paper's entropy bonus. Each
update is one compiled call (``tf.function`` with XLA) on the ``n_steps x n_envs`` rollout; actions
are sampled from the numpy forward pass of the policy network.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from ..base import register_task
from ..config import check_non_negative, check_positive, setting
from .agent import Agent, AgentConfig, ExportNetwork, Monitor, in_unit_interval, softmax
from .envs import EnvMaker, final_observations, vector_env

A2C_PRESETS = {
    "CartPole-v1": {},
    "CartPoleLongPole-v1": {},
    "Acrobot-v1": dict(n_envs=16, total_timesteps=500_000),
    "MountainCar-v0": dict(n_envs=16, total_timesteps=1_000_000),
}


@dataclasses.dataclass(frozen=True)
class A2CConfig(AgentConfig):
    """Settings of an :class:`A2CAgent` (Stable-Baselines3's names and meanings).

    n_envs / n_steps: each update learns from ``n_steps`` steps of ``n_envs`` environments.
    gamma / gae_lambda: discount, and GAE's lambda (1.0: plain n-step returns).
    ent_coef / vf_coef: weights of the entropy bonus and of the value loss.
    max_grad_norm: gradients are clipped to this global norm. rms_prop_eps: RMSprop's epsilon.
    hidden_units: the tanh layers of the policy network and (separately) of the value network.
    """

    total_timesteps: int = setting(500_000, "environment steps (default: the tuned setting for the environment); "
                                   "training stops earlier once a greedy evaluation reaches the environment's "
                                   "reward threshold", flags=("--timesteps", "--total-timesteps"))
    n_envs: int = setting(8, "environments stepped side by side", tune=(1, 32))
    n_steps: int = setting(5, "steps of each environment per update", tune=(5, 64))
    learning_rate: float = setting(7e-4, "RMSprop's learning rate (default: the tuned setting)", tune=(1e-4, 3e-3))
    gamma: float = setting(0.99, "discount factor", tune=(0.9, 0.999))
    gae_lambda: float = setting(1.0, "GAE's lambda (1.0: plain n-step returns)", tune=(0.9, 1.0))
    ent_coef: float = setting(0.01, "weight of the entropy bonus", tune=(0.0, 0.05))
    vf_coef: float = setting(0.5, "weight of the value loss", tune=(0.25, 1.0))
    max_grad_norm: float = setting(0.5, "gradients are clipped to this global norm")
    rms_prop_eps: float = setting(1e-5, "RMSprop's epsilon")
    eval_freq: int = setting(10_000, "greedy evaluation every N environment steps (0: none)")

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive(self, "n_steps", "learning_rate", "max_grad_norm", "rms_prop_eps")
        check_non_negative(self, "ent_coef", "vf_coef")
        in_unit_interval(self, "gamma", "gae_lambda")

    @classmethod
    def presets(cls) -> dict[str, dict]:
        return A2C_PRESETS


@register_task("a2c")
class A2CAgent(Agent):
    """An advantage actor-critic agent for environments with discrete actions and vector observations.

    >>> agent = A2CAgent(seed=0).fit("CartPole-v1")
    >>> agent.evaluate(n_episodes=100)
    >>> agent.action_values(obs)                # action probabilities
    >>> agent.predict(obs, deterministic=False) # a sampled action
    """

    config_class = A2CConfig
    algorithm = "a2c"
    action_value_name = "probability"
    output_kind = "action probabilities"
    explained_quantity = "probability of the action"

    def _build_network(self, n_features: int, n_actions: int):
        import keras

        orthogonal = keras.initializers.Orthogonal
        inputs = keras.Input((n_features,), name="observation")
        heads = []
        for prefix, units_out, gain, name in (("pi", n_actions, 0.01, "logits"), ("vf", 1, 1.0, "value")):
            x = inputs
            for i, units in enumerate(self.config.hidden_units):
                x = keras.layers.Dense(units, activation="tanh", kernel_initializer=orthogonal(math.sqrt(2)),
                                       name=f"{prefix}_{i}")(x)
            heads.append(keras.layers.Dense(units_out, kernel_initializer=orthogonal(gain), name=name)(x))
        return keras.Model(inputs, heads, name="actor_critic")

    def _stack_names(self) -> list[str]:
        return [f"pi_{i}" for i in range(len(self.config.hidden_units))] + ["logits"]

    def _value_stack(self):
        from .agent import dense_stack

        return dense_stack(self.model_, [f"vf_{i}" for i in range(len(self.config.hidden_units))] + ["value"])

    def _outputs(self, raw: np.ndarray) -> np.ndarray:
        return softmax(raw)

    def _explained(self, outputs: np.ndarray, action: int) -> np.ndarray:
        return outputs[:, action]

    def _export_network(self, quantization: str, calibration: np.ndarray | None) -> ExportNetwork:
        """The policy network with a softmax: observation in, action probabilities out (int8: all of it,
        with an int8 observation in)."""
        import keras

        probabilities = keras.layers.Softmax(name="probabilities")(self.model_.outputs[0])
        return ExportNetwork(keras.Model(self.model_.inputs, probabilities, name="policy"), self.output_kind)

    def _act(self, x: np.ndarray, deterministic: bool, rng: np.random.Generator) -> np.ndarray:
        if deterministic:
            return self._greedy(x)
        return _sample(softmax(self._raw(x)), rng)

    # ------------------------------------------------------------------ compiled update
    def _compile(self):
        import keras
        import tensorflow as tf

        cfg = self.config
        model = self.model_
        optimizer = keras.optimizers.RMSprop(cfg.learning_rate, rho=0.99, epsilon=cfg.rms_prop_eps)
        optimizer.build(model.trainable_variables)
        variables = model.trainable_variables
        ent_coef, vf_coef, clip = float(cfg.ent_coef), float(cfg.vf_coef), float(cfg.max_grad_norm)

        @tf.function(jit_compile=cfg.jit_compile, reduce_retracing=True)
        def update(obs, actions, advantages, returns):
            with tf.GradientTape() as tape:
                logits, values = model(obs, training=True)
                log_probs = tf.nn.log_softmax(logits)
                chosen = tf.gather(log_probs, actions, batch_dims=1)
                policy_loss = -tf.reduce_mean(advantages * chosen)
                value_loss = tf.reduce_mean(tf.square(returns - values[:, 0]))
                entropy = -tf.reduce_mean(tf.reduce_sum(tf.exp(log_probs) * log_probs, axis=1))
                loss = policy_loss + vf_coef * value_loss - ent_coef * entropy
            grads, _ = tf.clip_by_global_norm(tape.gradient(loss, variables), clip)
            optimizer.apply_gradients(zip(grads, variables))
            return loss, entropy

        return update

    # ------------------------------------------------------------------ the loop
    def _learn(self, maker: EnvMaker, total_timesteps: int, monitor: Monitor) -> int:
        from .agent import forward

        cfg = self.config
        n, T = cfg.n_envs, cfg.n_steps
        update = self._compile()
        rng = np.random.default_rng(cfg.seed)
        envs, obs = vector_env(maker, n, cfg.seed)
        value_stack = self._value_stack()
        buf_obs = np.zeros((T, n, self.n_features_), np.float32)
        buf_actions = np.zeros((T, n), np.int32)
        buf_rewards = np.zeros((T, n), np.float32)
        buf_dones = np.zeros((T, n), np.float32)
        buf_values = np.zeros((T, n), np.float32)
        steps = 0
        try:
            while steps < total_timesteps:
                for t in range(T):
                    logits = self._raw(obs)
                    actions = _sample(softmax(logits), rng)
                    next_obs, rewards, terminated, truncated, infos = envs.step(actions)
                    rewards = np.asarray(rewards, np.float32)
                    done = np.logical_or(terminated, truncated)
                    monitor.on_step(steps + n, rewards.astype(np.float64), done)
                    cut = np.logical_and(truncated, np.logical_not(terminated))
                    if cut.any():  # a time limit is not a terminal state: bootstrap from the final observation
                        final = final_observations(next_obs, cut, infos)
                        rewards = rewards + cfg.gamma * cut * forward(value_stack, final)[:, 0]
                    buf_obs[t], buf_actions[t], buf_rewards[t] = obs, actions, rewards
                    buf_dones[t], buf_values[t] = done, forward(value_stack, obs)[:, 0]
                    obs = np.asarray(next_obs, np.float32)
                    steps += n
                advantages = _gae(buf_rewards, buf_values, buf_dones, forward(value_stack, obs)[:, 0],
                                  cfg.gamma, cfg.gae_lambda)
                returns = advantages + buf_values
                loss, entropy = update(buf_obs.reshape(T * n, -1), buf_actions.reshape(-1),
                                       advantages.reshape(-1), returns.reshape(-1))
                self._refresh()
                value_stack = self._value_stack()
                monitor.on_loss(steps, float(loss), entropy=float(entropy))
                if monitor.maybe_evaluate(steps):
                    break
        finally:
            envs.close()
        return steps


def _sample(probs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One action per row of ``probs`` (inverse-CDF sampling)."""
    cumulative = np.cumsum(probs, axis=-1)
    u = rng.random((len(probs), 1)) * cumulative[:, -1:]
    return np.minimum((u > cumulative).sum(axis=-1), probs.shape[-1] - 1)


def _gae(rewards, values, dones, last_values, gamma: float, lam: float) -> np.ndarray:
    """Generalised advantage estimates over a (T, n) rollout (lam = 1: n-step return - V(s))."""
    T = len(rewards)
    advantages = np.zeros_like(rewards)
    running = np.zeros_like(last_values)
    for t in reversed(range(T)):
        next_values = last_values if t == T - 1 else values[t + 1]
        alive = 1.0 - dones[t]
        delta = rewards[t] + gamma * next_values * alive - values[t]
        running = delta + gamma * lam * alive * running
        advantages[t] = running
    return advantages
