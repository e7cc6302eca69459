"""Episodes of a policy (many side by side, one batched forward pass per step), the training
monitor (SB3's Monitor + EvalCallback) and the learning curve."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .envs import EnvMaker

EVAL_SEED_OFFSET = 10_000  # episodes of the evaluations during training
TEST_SEED_OFFSET = 100_000  # episodes of evaluate(): never seen while choosing the best weights
MAX_PARALLEL = 100  # evaluation episodes run side by side (one batched forward pass per step)


@dataclasses.dataclass
class Episodes:
    """Returns and lengths of finished episodes (and the observations seen, when collected)."""

    returns: np.ndarray
    lengths: np.ndarray
    states: np.ndarray | None = None

    def summary(self) -> dict[str, float]:
        return {
            "mean_return": float(self.returns.mean()),
            "std_return": float(self.returns.std()),
            "mean_length": float(self.lengths.mean()),
            "std_length": float(self.lengths.std()),
            "n_episodes": int(len(self.returns)),
        }


def run_episodes(act: Callable[[np.ndarray], np.ndarray], envs: list, n_episodes: int, seed: int,
                 collect: bool = False, max_states: int | None = None) -> Episodes:
    """Play ``n_episodes`` episodes with ``act(obs batch) -> actions``, side by side on ``envs``.

    Episode k starts from ``reset(seed=seed + k)`` whichever environment plays it, so the result
    does not depend on how many run at once. One batched ``act`` call per step for all running
    episodes. ``collect`` keeps every observation acted on (up to ``max_states``).
    """
    from threadpoolctl import threadpool_limits

    n_episodes = int(n_episodes)
    if n_episodes < 1:
        raise ValueError(f"n_episodes must be >= 1. Received {n_episodes}.")
    # Batches of <= 100 observations: one BLAS thread is fastest (threads contend on two cores).
    with threadpool_limits(1, user_api="blas"):
        return _run_episodes(act, envs[: min(len(envs), n_episodes)], n_episodes, seed, collect, max_states)


def _run_episodes(act, envs, n_episodes, seed, collect, max_states) -> Episodes:
    returns = np.zeros(n_episodes)
    lengths = np.zeros(n_episodes, dtype=np.int64)
    slots: list[int | None] = []
    obs = []
    started = 0
    for env in envs:
        o, _ = env.reset(seed=seed + started)
        obs.append(np.asarray(o, np.float32))
        slots.append(started)
        started += 1
    obs = np.stack(obs)
    states: list[np.ndarray] = []
    while any(s is not None for s in slots):
        running = [i for i, s in enumerate(slots) if s is not None]
        actions = np.asarray(act(obs[running])).reshape(-1)
        if collect and (max_states is None or len(states) < max_states):
            states.append(obs[running].copy())
        for i, action in zip(running, actions):
            k = slots[i]
            o, reward, terminated, truncated, _ = envs[i].step(int(action))
            returns[k] += float(reward)
            lengths[k] += 1
            if terminated or truncated:
                if started < n_episodes:
                    o, _ = envs[i].reset(seed=seed + started)
                    slots[i] = started
                    started += 1
                else:
                    slots[i] = None
            obs[i] = o
    collected = np.concatenate(states)[:max_states] if collect and states else None
    return Episodes(returns, lengths, collected)


# ---------------------------------------------------------------------------- the training monitor


class Monitor:
    """Episode statistics, periodic greedy evaluation with best weights and early stopping at a
    return threshold, TensorBoard scalars: the SB3 Monitor + EvalCallback of one ``fit``."""

    def __init__(self, agent: Any, maker: EnvMaker, n_envs: int):
        cfg = agent.config
        self.agent, self.maker, self.cfg = agent, maker, cfg
        self.threshold = cfg.reward_threshold if cfg.reward_threshold is not None else maker.threshold()
        self.history: dict[str, list] = {k: [] for k in (
            "episode_steps", "episode_returns", "episode_lengths", "eval_steps", "eval_mean", "eval_std",
            "eval_episodes", "loss_steps", "loss")}
        self.episode_return = np.zeros(n_envs)
        self.episode_length = np.zeros(n_envs, dtype=np.int64)
        self.next_eval = cfg.eval_freq
        self.best_mean = -np.inf
        self.best_weights = None
        self.best_step: int | None = None
        self.threshold_step: int | None = None
        self.threshold_seconds: float | None = None
        self.started = time.perf_counter()
        self.eval_seconds = 0.0
        self._eval_envs: list | None = None
        self._losses: list[float] = []
        self._next_loss_log = 1_000
        self.log_dir: str | None = None
        self.writer = self._writer(cfg.tensorboard_log)

    def _writer(self, root: str | None):
        if not root:
            return None
        import tensorflow as tf

        name = f"{self.agent.task_name}_{(self.maker.id or 'env').replace('/', '_')}_seed{self.cfg.seed}"
        run, k = Path(root) / name, 1
        while run.exists():
            k += 1
            run = Path(root) / f"{name}_{k}"
        self.log_dir = str(run)
        return tf.summary.create_file_writer(str(run))

    def scalar(self, name: str, value: float, step: int) -> None:
        """One TensorBoard scalar. ``tf.summary.write`` with the scalars plugin's metadata is what
        ``tf.summary.scalar`` does, minus its need for the tensorboard package."""
        if self.writer is not None:
            import tensorflow as tf
            from tensorflow.core.framework import summary_pb2

            metadata = summary_pb2.SummaryMetadata()
            metadata.plugin_data.plugin_name = "scalars"
            with self.writer.as_default():
                tf.summary.write(name, tf.constant(float(value), tf.float32), step=int(step), metadata=metadata)

    # ------------------------------------------------------------------ per step
    def on_step(self, steps: int, rewards: np.ndarray, done: np.ndarray) -> None:
        """Account one vector step (``steps``: environment steps so far, this one included)."""
        self.episode_return += rewards
        self.episode_length += 1
        for i in np.flatnonzero(done):
            ret, length = float(self.episode_return[i]), int(self.episode_length[i])
            self.history["episode_steps"].append(int(steps))
            self.history["episode_returns"].append(ret)
            self.history["episode_lengths"].append(length)
            self.scalar("rollout/episode_return", ret, steps)
            self.scalar("rollout/episode_length", length, steps)
            self.episode_return[i] = 0.0
            self.episode_length[i] = 0

    def on_loss(self, steps: int, loss: float, **scalars: float) -> None:
        self._losses.append(float(loss))
        if steps >= self._next_loss_log:
            mean = float(np.mean(self._losses))
            self.history["loss_steps"].append(int(steps))
            self.history["loss"].append(mean)
            self.scalar("train/loss", mean, steps)
            for name, value in scalars.items():
                self.scalar(f"train/{name}", value, steps)
            self._losses = []
            self._next_loss_log = steps + 1_000

    # ------------------------------------------------------------------ evaluation
    def maybe_evaluate(self, steps: int) -> bool:
        """Evaluate when one is due; True when training should stop."""
        return self.cfg.eval_freq > 0 and steps >= self.next_eval and self.evaluate(steps)

    def evaluate(self, steps: int) -> bool:
        """Evaluate the current policy; True when training should stop (threshold confirmed)."""
        cfg = self.cfg
        while self.next_eval <= steps:
            self.next_eval += cfg.eval_freq
        start = time.perf_counter()
        if self._eval_envs is None:
            self._eval_envs = self.maker.copies(min(MAX_PARALLEL, max(cfg.eval_episodes, cfg.confirm_episodes)))
        act = self.agent._greedy
        seed = cfg.seed + EVAL_SEED_OFFSET
        episodes = run_episodes(act, self._eval_envs, cfg.eval_episodes, seed)
        mean = float(episodes.returns.mean())
        reached = self.threshold is not None and mean >= self.threshold
        if reached and cfg.confirm_episodes > cfg.eval_episodes:
            episodes = run_episodes(act, self._eval_envs, cfg.confirm_episodes, seed)
            mean = float(episodes.returns.mean())
            reached = mean >= self.threshold
        std = float(episodes.returns.std())
        self.eval_seconds += time.perf_counter() - start
        for key, value in (("eval_steps", int(steps)), ("eval_mean", mean), ("eval_std", std),
                           ("eval_episodes", len(episodes.returns))):
            self.history[key].append(value)
        self.scalar("eval/mean_return", mean, steps)
        self.scalar("eval/mean_length", float(episodes.lengths.mean()), steps)
        if mean > self.best_mean:
            self.best_mean, self.best_step = mean, int(steps)
            self.best_weights = [np.array(w) for w in self.agent.model_.get_weights()]
        if reached and self.threshold_step is None:
            self.threshold_step = int(steps)
            self.threshold_seconds = time.perf_counter() - self.started
        return bool(reached and cfg.stop_at_threshold)

    def finish(self, steps: int) -> dict:
        """Final evaluation (when the last one is stale), best weights back; the training facts."""
        if self.cfg.eval_freq > 0 and (not self.history["eval_steps"] or self.history["eval_steps"][-1] != steps):
            self.evaluate(steps)
        if self.cfg.keep_best and self.best_weights is not None:
            self.agent.model_.set_weights(self.best_weights)
        if self._eval_envs:
            self.maker.release(self._eval_envs)
        if self.writer is not None:
            self.writer.flush()
            self.writer.close()
        seconds = time.perf_counter() - self.started
        return {
            "env_steps": int(steps),
            "episodes": len(self.history["episode_returns"]),
            "seconds": round(seconds, 2),
            "eval_seconds": round(self.eval_seconds, 2),
            "reward_threshold": self.threshold,
            "threshold_step": self.threshold_step,
            "threshold_seconds": None if self.threshold_seconds is None else round(self.threshold_seconds, 2),
            "best_eval_mean": None if self.best_weights is None else self.best_mean,
            "best_eval_step": self.best_step,
            "kept": "best" if self.cfg.keep_best and self.best_weights is not None else "last",
            "tensorboard": self.log_dir,
        }
