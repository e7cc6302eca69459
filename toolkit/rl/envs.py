"""Environments for the agents: any gymnasium environment with a discrete action space and a
1-D Box (vector) observation space, made from an id, an instance or a callable.

``EnvMaker`` turns what the user passed into fresh copies (training runs several in a
``gymnasium.vector.SyncVectorEnv``, evaluation runs up to 100 episodes side by side) and a
description for the card (id and keyword arguments), so a saved agent can remake its
environment for ``evaluate``, ``export`` and ``play``.

``CartPoleLongPole-v1`` is CartPole-v1 with a pole four times as long (``length`` is half the
pole's length in gymnasium: 0.5 there, 2.0 here; the pole's mass stays 0.1 kg), registered when
this module is imported. A CartPole-v1 DQN balances it for about 180 steps without training, so
learning it is a related task, not the same one; the transfer benchmark warm-starts agents on it
from a CartPole-v1 agent. Any other length: ``gymnasium.make("CartPoleLongPole-v1", length=1.0)``.
"""

from __future__ import annotations

import functools
import os
from typing import Any, Callable

import numpy as np

from ..errors import DataError

LONG_POLE_ID = "CartPoleLongPole-v1"
OFFLINE_IDS = ("CartPole-v1", "Acrobot-v1", "MountainCar-v0", LONG_POLE_ID)  # no extra packages needed
SUPPORTED = (
    "a gymnasium environment with a Discrete action space and a 1-D Box observation space (a vector of "
    f"numbers), e.g. {', '.join(OFFLINE_IDS)}"
)

# Readable names of the observation features and actions, by the environment's class (so
# variants such as CartPoleLongPole-v1 share them). Others get x0.. and action 0..
NAMES: dict[str, tuple[list[str], list[str]]] = {
    "CartPoleEnv": (
        ["cart position", "cart velocity", "pole angle", "pole angular velocity"],
        ["push left", "push right"],
    ),
    "AcrobotEnv": (
        ["cos(link 1 angle)", "sin(link 1 angle)", "cos(link 2 angle)", "sin(link 2 angle)",
         "link 1 angular velocity", "link 2 angular velocity"],
        ["torque -1", "torque 0", "torque +1"],
    ),
    "MountainCarEnv": (
        ["car position", "car velocity"],
        ["accelerate left", "don't accelerate", "accelerate right"],
    ),
}


def long_pole_cartpole(length: float = 2.0, render_mode: str | None = None, **kwargs: Any):
    """CartPole with another pole: ``length`` is half the pole's length, as in gymnasium (0.5)."""
    from gymnasium.envs.classic_control.cartpole import CartPoleEnv

    if not length > 0:
        raise ValueError(f"length must be > 0. Received {length!r}.")
    env = CartPoleEnv(render_mode=render_mode, **kwargs)
    env.length = float(length)
    env.polemass_length = env.masspole * env.length
    return env


def register_variants() -> None:
    import gymnasium as gym

    if LONG_POLE_ID not in gym.registry:
        gym.register(id=LONG_POLE_ID, entry_point="toolkit.rl.envs:long_pole_cartpole", max_episode_steps=500,
                     reward_threshold=475.0, kwargs={"length": 2.0})


register_variants()


def check_spaces(env) -> tuple[int, int]:
    """(number of observation features, number of actions), or a DataError saying what is supported."""
    from gymnasium import spaces

    action, observation = env.action_space, env.observation_space
    name = _name(env)
    if not isinstance(action, spaces.Discrete):
        kind = "continuous actions" if isinstance(action, spaces.Box) else type(action).__name__
        raise DataError(
            f"Expected {SUPPORTED}. Received {name} with action space {action} ({kind}). DQN and A2C choose among "
            "a fixed set of actions; discretise the actions (e.g. gymnasium.wrappers.DiscretizeAction) or use an "
            "algorithm for continuous control."
        )
    if int(action.start) != 0:
        raise DataError(f"Expected a Discrete action space starting at 0. Received {action} from {name}. "
                        "Wrap the environment so that its actions are 0..n-1.")
    if not isinstance(observation, spaces.Box) or len(observation.shape) != 1:
        kind = ("image observations" if isinstance(observation, spaces.Box) and len(observation.shape) >= 2
                else f"{type(observation).__name__} observations")
        raise DataError(
            f"Expected {SUPPORTED}. Received {name} with observation space {observation} ({kind}). Flatten the "
            "observations into one vector (e.g. gymnasium.wrappers.FlattenObservation) or pick a vector-observation "
            "environment."
        )
    if int(action.n) < 2:
        raise DataError(f"Expected at least 2 actions to choose from. Received {action} from {name}.")
    return int(observation.shape[0]), int(action.n)


def space_names(env, n_features: int, n_actions: int) -> tuple[list[str], list[str]]:
    """Feature and action names for ``env`` (readable for the classic-control environments)."""
    features, actions = NAMES.get(type(env.unwrapped).__name__, ([], []))
    if len(features) != n_features:
        features = [f"x{i}" for i in range(n_features)]
    if len(actions) != n_actions:
        actions = [f"action {i}" for i in range(n_actions)]
    return list(features), list(actions)


def _name(env) -> str:
    spec = getattr(env, "spec", None)
    return repr(spec.id) if spec is not None else type(env.unwrapped).__name__


class EnvMaker:
    """Fresh copies of an environment given as an id, a ``gymnasium.Env`` or a callable.

    ``make(render_mode=None)`` returns a new environment; an instance without a registered spec
    cannot be copied, so it is used itself (``instance``) and runs one episode at a time.
    ``spec`` is what the card records (id and keyword arguments), None when it cannot be remade.
    """

    def __init__(self, env: Any, **kwargs: Any):
        import gymnasium as gym

        self.instance = None
        self._factory: Callable[..., Any] | None = None
        self.id: str | None = None
        self.kwargs: dict = {}
        if isinstance(env, dict) and "id" in env:  # a card's record
            env, kwargs = env["id"], {**(env.get("kwargs") or {}), **kwargs}
        if isinstance(env, str):
            self.id, self.kwargs = env, dict(kwargs)
            self._check_id()
        elif isinstance(env, gym.Env):
            self.instance = env
            spec = env.spec
            if spec is not None and spec.id in gym.registry:
                self.id, self.kwargs = spec.id, dict(spec.kwargs or {})
        elif callable(env):
            self._factory = env
        else:
            raise DataError(
                f"Expected an environment id (e.g. 'CartPole-v1'), a gymnasium.Env or a callable returning one. "
                f"Received {type(env).__name__}."
            )

    def _check_id(self) -> None:
        import gymnasium as gym

        try:
            spec = gym.spec(self.id)
        except gym.error.Error as exc:  # NameNotFound, VersionNotFound, ...
            raise DataError(
                f"Unknown environment {self.id!r}: {exc} Pass a registered gymnasium id (these work offline: "
                f"{', '.join(OFFLINE_IDS)}), or a gymnasium.Env / a callable that builds one."
            ) from None
        self.kwargs = {k: v for k, v in self.kwargs.items() if spec.kwargs.get(k, object()) != v}

    @property
    def spec(self) -> dict | None:
        return {"id": self.id, "kwargs": dict(self.kwargs)} if self.id else None

    @property
    def can_copy(self) -> bool:
        return self.id is not None or self._factory is not None

    @functools.cached_property
    def name(self) -> str:
        if self.id:
            extra = ", ".join(f"{k}={v!r}" for k, v in self.kwargs.items())
            return f"{self.id}({extra})" if extra else self.id
        env = self.instance or self.make()
        self.release([env])
        return type(env.unwrapped).__name__

    def release(self, envs: list) -> None:
        """Close environments this maker made; never the user's own (uncopyable) instance."""
        if not self.can_copy:
            return
        for env in envs:
            try:
                env.close()
            except Exception:  # a renderer that is already gone
                pass

    def make(self, render_mode: str | None = None):
        """A new environment (or, for an uncopyable instance, the instance itself)."""
        import gymnasium as gym

        if render_mode == "rgb_array" and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
            os.environ.setdefault("SDL_VIDEODRIVER", "dummy")  # headless: pygame draws frames without a window
        if self.id is not None:
            kwargs = dict(self.kwargs)
            if render_mode is not None:
                kwargs["render_mode"] = render_mode
            try:
                env = gym.make(self.id, **kwargs)
            except (gym.error.Error, TypeError) as exc:  # DependencyNotInstalled (Box2D, ...), bad keyword arguments
                raise DataError(f"Could not make the environment {self.name!r}: {exc}") from None
        elif self._factory is not None:
            env = self._factory(render_mode=render_mode) if render_mode else self._factory()
            if not isinstance(env, gym.Env):
                raise DataError(f"Expected the environment callable to return a gymnasium.Env. "
                                f"Received {type(env).__name__}.")
        else:
            if render_mode is not None and self.instance.render_mode != render_mode:
                raise DataError(
                    f"This environment instance renders as {self.instance.render_mode!r}, not {render_mode!r}, and "
                    "has no registered id to make a copy from. Pass an id or a callable accepting render_mode."
                )
            env = self.instance
        check_spaces(env)
        return env

    def copies(self, n: int, render_mode: str | None = None) -> list:
        """``n`` independent environments (one when the instance cannot be copied)."""
        if not self.can_copy:
            return [self.make(render_mode)]
        return [self.make(render_mode) for _ in range(n)]

    def threshold(self) -> float | None:
        """The environment's reward threshold (gymnasium's ``spec.reward_threshold``)."""
        import gymnasium as gym

        spec = gym.spec(self.id) if self.id else getattr(self.instance, "spec", None)
        return None if spec is None or spec.reward_threshold is None else float(spec.reward_threshold)


def as_maker(env: Any) -> EnvMaker:
    return env if isinstance(env, EnvMaker) else EnvMaker(env)


def maker_with_spaces(env: Any, n_features: int, n_actions: int, trained_on: str) -> EnvMaker:
    """``env`` as an :class:`EnvMaker`, or a DataError when its spaces are not an agent's
    (``n_features`` observation features, ``n_actions`` actions, trained on ``trained_on``)."""
    maker = as_maker(env)
    probe = maker.make()
    found = check_spaces(probe)
    maker.release([probe])
    if found != (n_features, n_actions):
        raise DataError(
            f"This agent acts on {n_features} observation features with {n_actions} actions ({trained_on}). "
            f"Received {maker.name} with {found[0]} features and {found[1]} actions. Evaluate it on an "
            "environment with the same spaces."
        )
    return maker


def vector_env(maker: EnvMaker, n: int, seed: int):
    """A SyncVectorEnv of ``n`` copies that resets finished episodes in the same step, so the
    terminal observation is ``infos["final_obs"]``; reset with seeds seed, seed+1, ..."""
    import gymnasium as gym

    if n > 1 and not maker.can_copy:
        raise DataError(f"n_envs={n} needs copies of the environment, but this instance has no registered id. "
                        "Pass an id or a callable that builds a new environment, or set n_envs=1.")
    envs = gym.vector.SyncVectorEnv([maker.make] * n if maker.can_copy else [lambda: maker.instance],
                                    autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)
    envs.action_space.seed(seed)
    obs, _ = envs.reset(seed=seed)
    return envs, np.asarray(obs, np.float32)


def final_observations(next_obs: np.ndarray, done: np.ndarray, infos: dict) -> np.ndarray:
    """The observations the transitions ended in: the terminal ones where an episode finished."""
    real = np.array(next_obs, dtype=np.float32, copy=True)
    if done.any() and "final_obs" in infos:
        for i in np.flatnonzero(done):
            real[i] = infos["final_obs"][i]
    return real
