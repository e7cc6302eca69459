"""What DQN and A2C share: the config fields, greedy evaluation over many episodes at once, the
evaluation callback (best weights, early stop at a return threshold), the learning curve and
TensorBoard logs, warm starts, explanations, TFLite export and the card.

The contract follows Stable-Baselines3: ``fit(env, total_timesteps=...)`` where ``env`` is an id,
a ``gymnasium.Env`` or a callable; ``predict(obs)`` takes one observation or a batch and returns
greedy actions; ``evaluate(env=None, n_episodes=100)`` returns the mean and std of the return
and of the episode length with deterministic actions, like SB3's ``evaluate_policy``.

Acting is cheap: the policy network's weights are copied into numpy after each training round
and a step's forward pass is a few small matrix products (about 20 us for a 256x256 MLP),
never ``model.predict``.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ClassVar

import numpy as np

from ..base import ExportPlan, Task, target_index, write_labels
from ..config import COUNT, RecipeOption, check_fraction, check_non_negative, check_positive, out_option, setting
from ..errors import DataError, ModelFormatError
from ..plotting import learning_curve_png
from .numpy_mlp import archived_dense_stack, dense_stack, forward, softmax  # noqa: F401  (re-exported)
from .envs import EnvMaker, as_maker, check_spaces, maker_with_spaces, space_names
from .episodes import (  # noqa: F401  (re-exported: the agents and users import them from here)
    EVAL_SEED_OFFSET, MAX_PARALLEL, TEST_SEED_OFFSET, Episodes, Monitor, run_episodes,
)
from .lite import TFLitePolicy  # noqa: F401  (re-exported)
from .quantize import CALIBRATION_SEED, calibration_states

if TYPE_CHECKING:
    from ..explain.base import Explanation

BACKGROUND_FILE = "background.npz"
CURVE_FILE = "learning_curve.png"
BACKGROUND_STATES = 200
EXPORT_STATES = 10_000
TFLITE_FILES = {"float32": "policy.tflite"}  # other presets: policy_<preset>.tflite
GAP_BOUNDS = (0.001, 0.01, 0.1)  # the card's keras_top_two_gap bins (Q-value or probability differences)


@dataclasses.dataclass
class ExportNetwork:
    """What an agent's policy file is converted from: the Keras model, what it outputs, the same
    outputs from the agent's ``action_values``, and for int8 the ops kept float32 (``float_nodes``,
    a test on tensor names), each layer's precision and the converter's calibration samples."""

    model: Any
    kind: str
    same_outputs: Callable[[np.ndarray], np.ndarray] = lambda outputs: outputs
    float_nodes: Callable[[str], bool] | None = None
    layers: dict[str, str] | None = None
    representative: np.ndarray | None = None  # int8 calibration samples (default: the calibration states)


@dataclasses.dataclass(frozen=True)
class AgentConfig:
    """Settings every agent has (DQNConfig and A2CConfig add their algorithm's).

    total_timesteps: environment steps of ``fit`` (``fit(env, total_timesteps=...)`` overrides).
    eval_freq: greedy evaluation every this many environment steps (0: none), over
        ``eval_episodes`` episodes; when their mean reaches the threshold, ``confirm_episodes``
        episodes confirm it (SB3's EvalCallback + StopTrainingOnRewardThreshold).
    reward_threshold: the return that counts as solved (default: the environment's
        ``spec.reward_threshold``, e.g. 475 for CartPole-v1, -100 for Acrobot-v1).
    stop_at_threshold: stop training once an evaluation confirms the threshold.
    keep_best: end ``fit`` with the weights of the best evaluation (not the last ones).
    init_from: a saved agent folder whose network weights start this one (transfer).
    tensorboard_log: folder for TensorBoard event files (one run subfolder per fit).
    jit_compile: compile the training step with XLA.
    """

    total_timesteps: int = setting(50_000, "environment steps (default: the tuned setting for the environment); "
                                   "training stops earlier once a greedy evaluation reaches the environment's "
                                   "reward threshold", flags=("--timesteps", "--total-timesteps"))
    seed: int = setting(0, "seeds the network, the environments and the exploration")
    eval_freq: int = setting(2_500, "greedy evaluation every N environment steps (0: none)")
    eval_episodes: int = setting(10, "episodes of each greedy evaluation during training")
    confirm_episodes: int = setting(100, "episodes that confirm a threshold reached during training")
    reward_threshold: float | None = setting(None, "the return that counts as solved (default: the environment's)")
    stop_at_threshold: bool = setting(True, "train all --timesteps even after solving",
                                      flags=("--no-early-stop",))
    keep_best: bool = setting(True, "end with the last weights, not the best evaluation's")
    init_from: str | None = setting(None, "a saved agent folder to warm-start the network from")
    tensorboard_log: str | None = setting(None, "write TensorBoard logs under DIR", flags=("--tensorboard",))
    jit_compile: bool = setting(True, "do not compile the training step with XLA")
    hidden_units: tuple[int, ...] = setting((64, 64), "sizes of the network's hidden layers")
    n_envs: int = setting(1, "environments stepped side by side")

    def __post_init__(self) -> None:
        if isinstance(self.hidden_units, int):
            object.__setattr__(self, "hidden_units", (self.hidden_units,))
        object.__setattr__(self, "hidden_units", tuple(int(u) for u in self.hidden_units))
        if not self.hidden_units or min(self.hidden_units) < 1:
            raise ValueError(f"hidden_units must be one or more positive layer sizes. Received {self.hidden_units}.")
        for name in ("init_from", "tensorboard_log"):
            if isinstance(getattr(self, name), os.PathLike):
                object.__setattr__(self, name, str(getattr(self, name)))
        check_positive(self, "total_timesteps", "eval_episodes", "confirm_episodes", "n_envs")
        check_non_negative(self, "eval_freq", "seed")

    @classmethod
    def for_env(cls, env_id: str | None, **overrides: Any):
        """The tuned settings for ``env_id`` (rl-baselines3-zoo's, where it has them), with overrides."""
        return cls(**{**cls.presets().get(env_id or "", {}), **overrides})

    @classmethod
    def presets(cls) -> dict[str, dict]:
        return {}


def in_unit_interval(config, *names, closed_low=True):
    check_fraction(config, *names, low_closed=closed_low, high_closed=True)


# ---------------------------------------------------------------------------- the agent


class Agent(Task):
    """Base of the RL agents. Subclasses build the network, run the algorithm in ``_learn`` and
    say how the network's outputs become actions (``_outputs``)."""

    algorithm: ClassVar[str] = "agent"
    action_value_name: ClassVar[str] = "value"  # what action_values returns, as the RL tab names it
    output_kind: ClassVar[str] = "outputs"
    tags = frozenset({"policy"})
    input_kind = "observation"
    explain_methods = ("shap", "lime")
    runner = "toolkit.rl.lite:TFLitePolicy"
    family = "rl"  # `toolkit train rl --algo dqn|a2c`
    recipe_options = (
        RecipeOption("env", "a gymnasium id with discrete actions and vector observations: CartPole-v1, Acrobot-v1, "
                     "MountainCar-v0, CartPoleLongPole-v1, ...", required=True),
        out_option(),
        RecipeOption("episodes", "greedy evaluation episodes after training", 100, COUNT),
    )

    @classmethod
    def train_recipe(cls, out, *, command: str | None = None, **options: Any) -> dict:
        """Train on ``env`` with its tuned settings (``config_class.for_env``) overridden by the
        given config fields, evaluate greedily over ``episodes``, save to ``out``; returns {out,
        env_steps, seconds, reward_threshold, threshold_step, best_eval_mean, tensorboard, metrics}."""
        defaults = {o.name: o.default for o in cls.recipe_options if o.name != "out"}
        opts = {k: default if options.get(k) is None else options[k] for k, default in defaults.items()}
        given = {k: v for k, v in options.items() if k not in defaults and v is not None}
        config = cls.config_class.for_env(opts["env"], **given)  # the tuned settings, then the given ones
        if not opts["episodes"] > 0:
            raise ValueError(f"episodes must be > 0. Received {opts['episodes']!r}.")
        agent = cls(config).fit(opts["env"])
        agent.metrics_ = agent.evaluate(n_episodes=opts["episodes"])
        agent.command_ = command
        directory = agent.save(out)
        keys = ("env_steps", "seconds", "reward_threshold", "threshold_step", "best_eval_mean", "tensorboard")
        return {"out": str(directory), **{k: agent.training_.get(k) for k in keys}, "metrics": agent.metrics_}

    def __init__(self, config: Any = None, **overrides: Any):
        super().__init__(config, **overrides)
        self.env_: dict | None = None  # the card's record: id, kwargs, name, reward_threshold
        self.n_features_: int | None = None
        self.n_actions_: int | None = None
        self.feature_names_: list[str] = []
        self.action_names_: list[str] = []
        self.observation_bounds_: dict | None = None
        self.background_: np.ndarray | None = None
        self.training_: dict = {}
        self._maker: EnvMaker | None = None
        self._stack = None

    @property
    def class_names_(self) -> list[str]:
        """The action names: the labels of the network's outputs (labels.txt beside an export)."""
        return self.action_names_

    # ================================================================== subclasses
    def _build_network(self, n_features: int, n_actions: int):  # pragma: no cover - abstract
        raise NotImplementedError

    def _learn(self, maker: EnvMaker, total_timesteps: int, monitor: Monitor) -> int:  # pragma: no cover
        raise NotImplementedError

    def _stack_names(self) -> list[str]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _outputs(self, raw: np.ndarray) -> np.ndarray:
        """The exported network's outputs (Q-values or probabilities) from the numpy forward pass."""
        return raw

    def _export_network(self, quantization: str, calibration: np.ndarray | None) -> ExportNetwork:
        """The Keras model to convert (int8: prepared on the ``calibration`` states) and what it outputs."""
        return ExportNetwork(self.model_, self.output_kind)

    def _explained(self, outputs: np.ndarray, action: int) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    explained_quantity: ClassVar[str] = ""

    # ================================================================== acting
    def _refresh(self) -> None:
        """Copy the network's weights into the numpy forward pass (after each training round)."""
        self._stack = dense_stack(self.model_, self._stack_names())

    def _raw(self, obs: np.ndarray) -> np.ndarray:
        if self._stack is None:
            self._refresh()
        return forward(self._stack, obs)

    def _greedy(self, obs: np.ndarray) -> np.ndarray:
        return np.argmax(self._raw(obs), axis=-1)

    def _prepare(self, obs: Any) -> tuple[np.ndarray, bool]:
        """A (N, F) float32 batch, and whether one observation was given."""
        self._check_fitted()
        x = np.asarray(obs, dtype=np.float32)
        single = x.ndim == 1
        if single:
            x = x[None]
        if x.ndim != 2 or x.shape[1] != self.n_features_:
            raise DataError(
                f"Expected one observation of shape ({self.n_features_},) or a batch (N, {self.n_features_}) of "
                f"{self.env_['name'] if self.env_ else 'the environment'}'s observations "
                f"({', '.join(self.feature_names_)}). Received shape {np.shape(obs)}."
            )
        if not np.isfinite(x).all():
            raise DataError("The observation contains NaN or infinite values. Pass the environment's observation.")
        return x, single

    def action_values(self, obs: Any) -> np.ndarray:
        """The policy network's outputs (Q-values for DQN, action probabilities for A2C), (N, A)."""
        x, single = self._prepare(obs)
        out = self._outputs(self._raw(x))
        return out[0] if single else out

    def predict(self, obs: Any, deterministic: bool = True, seed: int | None = None) -> np.ndarray:
        """Greedy actions for one observation (a 0-d array) or a batch (N,); with
        ``deterministic=False`` an A2C agent samples from its policy (DQN stays greedy)."""
        x, single = self._prepare(obs)
        actions = self._act(x, deterministic, np.random.default_rng(seed))
        return actions[0] if single else actions

    def _act(self, x: np.ndarray, deterministic: bool, rng: np.random.Generator) -> np.ndarray:
        return self._greedy(x)

    # ================================================================== fit
    def fit(self, env: Any, total_timesteps: int | None = None, init_from: Any = None, **overrides: Any) -> "Agent":
        """Train on ``env`` (an id such as ``"CartPole-v1"``, a ``gymnasium.Env`` or a callable)
        for ``total_timesteps`` environment steps (default: the config's). ``init_from`` (an
        agent or a saved agent folder; default: the config's) warm-starts the network."""
        if overrides:
            self.config = dataclasses.replace(self.config, **overrides)
        cfg = self.config
        total = int(total_timesteps if total_timesteps is not None else cfg.total_timesteps)
        if total < 1:
            raise ValueError(f"total_timesteps must be >= 1. Received {total}.")
        maker = as_maker(env)  # a bad environment fails here, before TensorFlow loads
        probe = maker.make()
        n_features, n_actions = check_spaces(probe)
        self.feature_names_, self.action_names_ = space_names(probe, n_features, n_actions)
        box = probe.observation_space
        self.observation_bounds_ = {"low": np.asarray(box.low, np.float64).tolist(),
                                    "high": np.asarray(box.high, np.float64).tolist()}
        maker.release([probe])
        import keras

        keras.utils.set_random_seed(cfg.seed)
        self.n_features_, self.n_actions_ = n_features, n_actions
        self.model_ = self._build_network(n_features, n_actions)
        source = init_from if init_from is not None else cfg.init_from
        transfer = self._warm_start(source) if source is not None else None
        self._maker = maker
        self.env_ = {**(maker.spec or {"id": None, "kwargs": {}}), "name": maker.name,
                     "reward_threshold": maker.threshold()}
        self._refresh()
        monitor = Monitor(self, maker, cfg.n_envs)
        steps = self._learn(maker, total, monitor)
        facts = monitor.finish(steps)
        self._refresh()
        self.history_ = dict(monitor.history)
        self.training_ = {**facts, "total_timesteps": total, "transfer": transfer}
        self.metrics_ = {}
        self.data_spec_ = {"env": self.env_}
        self.tflite_ = []
        self.directory_ = None
        self.background_ = self._collect_background(maker)
        return self

    def _warm_start(self, source: Any) -> dict:
        from ..base import load

        agent = load(source) if isinstance(source, (str, os.PathLike)) else source
        if not isinstance(agent, Agent) or agent.model_ is None:
            raise DataError(f"init_from expects a fitted agent or a saved agent folder. Received {source!r}.")
        if type(agent) is not type(self):
            raise DataError(f"init_from needs a {type(self).__name__} to copy the network from. Received a "
                            f"{type(agent).__name__}; train this agent with the same algorithm as the source.")
        theirs, ours = agent.model_.get_weights(), self.model_.get_weights()
        shapes = [w.shape for w in theirs], [w.shape for w in ours]
        if shapes[0] != shapes[1]:
            raise DataError(
                f"init_from's network does not fit this one: its weights have shapes {shapes[0]}, this agent's "
                f"{shapes[1]}. Warm-start from an agent with the same observation size ({self.n_features_}), the "
                f"same number of actions ({self.n_actions_}) and the same hidden_units ({self.config.hidden_units})."
            )
        self.model_.set_weights(theirs)
        return {"from": str(agent.directory_) if agent.directory_ else "an agent in memory",
                "source_env": (agent.env_ or {}).get("name")}

    def _collect_background(self, maker: EnvMaker) -> np.ndarray:
        """States from a few greedy episodes: the background of SHAP and LIME explanations."""
        envs = maker.copies(4)
        try:
            episodes = run_episodes(self._greedy, envs, 4, self.config.seed + TEST_SEED_OFFSET + 777, collect=True)
        finally:
            maker.release(envs)
        states = episodes.states
        if len(states) > BACKGROUND_STATES:
            pick = np.random.default_rng(self.config.seed).choice(len(states), BACKGROUND_STATES, replace=False)
            states = states[np.sort(pick)]
        return states.astype(np.float32)

    @classmethod
    def greedy_from_folder(cls, directory: str | os.PathLike, card: dict) -> Callable[[np.ndarray], np.ndarray]:
        """A saved agent's greedy policy without loading Keras (nor TensorFlow): its acting
        network's weights read from ``model.keras`` (sha256 checked against the card) into the
        numpy forward pass a loaded agent acts with, so the actions are the same."""
        from ..base import checked_model_file, config_from_dict

        names = cls(config_from_dict(cls.config_class, card.get("config", {})))._stack_names()
        stack = archived_dense_stack(checked_model_file(directory, card), names)
        return lambda obs: np.argmax(forward(stack, obs), axis=-1)

    # ================================================================== environments
    def env_maker(self, env: Any = None) -> EnvMaker:
        """``env`` as an :class:`EnvMaker`; by default the environment the agent was trained on."""
        self._check_fitted()
        if env is not None:
            return maker_with_spaces(env, self.n_features_, self.n_actions_, self.env_["name"])
        if self._maker is None:
            if not self.env_ or not self.env_.get("id"):
                raise DataError("This agent's card names no registered environment to remake. Pass env=...")
            self._maker = EnvMaker(self.env_)
        return self._maker

    def reload_data(self) -> dict | None:
        """The environment the agent was trained on (id and kwargs), for the CLI's evaluate/export."""
        return {"id": self.env_["id"], "kwargs": self.env_.get("kwargs") or {}} if self.env_ and self.env_.get(
            "id") else None

    def load_data(self, source: Any) -> Any:
        """An environment id stays an id; ``"0.1,0.2,..."`` (or a .npy file) is an observation."""
        if isinstance(source, (str, os.PathLike)) and str(source).endswith(".npy"):
            return np.load(source)
        if isinstance(source, str):
            try:
                values = [float(v) for v in source.replace(",", " ").split()]
            except ValueError:
                return source  # not numbers: an environment id
            if values:
                return np.array(values, np.float32)
        return source

    # ================================================================== evaluate
    def evaluate(self, env: Any = None, n_episodes: int = 100, seed: int | None = None, policy: Any = None,
                 baseline: bool = True) -> dict[str, float]:
        """Greedy returns over ``n_episodes`` episodes (episode k starts from seed + k; default
        seed: held out from the evaluations during training): mean/std of the return and of the
        episode length, and a random agent's mean return on the same episodes (``baseline``).
        ``policy`` (e.g. a :class:`TFLitePolicy`) plays instead of the Keras network."""
        maker = self.env_maker(env)
        seed = self.config.seed + TEST_SEED_OFFSET if seed is None else int(seed)
        act = self._greedy if policy is None else policy.predict
        envs = maker.copies(min(MAX_PARALLEL, int(n_episodes)))
        try:
            result = run_episodes(act, envs, n_episodes, seed).summary()
            if baseline:
                rng = np.random.default_rng(seed)
                random = run_episodes(lambda o: rng.integers(self.n_actions_, size=len(o)), envs, n_episodes, seed)
                result["random_mean_return"] = float(random.returns.mean())
                result["random_std_return"] = float(random.returns.std())
        finally:
            maker.release(envs)
        return result

    # ================================================================== explain
    def explain(self, obs: Any, method: str | None = "shap", target: int | str | None = None,
                budget: int | None = None, seed: int = 0) -> Explanation:
        """Which observation features drove the action for ``obs``: SHAP (KernelExplainer,
        exact Shapley values for a handful of features) or LIME (tabular, regression) over the
        background states from real episodes. DQN explains the chosen action's advantage
        Q(s, a) - mean Q(s, .), A2C the action's probability; positive values push towards it."""
        from ..explain.tabular import FEATURE_METHODS, explain_features

        method = method or "shap"
        if method not in FEATURE_METHODS:
            raise DataError(f"Unknown explanation method {method!r} for agents. "
                             f"Valid methods: {list(FEATURE_METHODS)}.")
        x, _ = self._prepare(obs)
        if len(x) != 1:
            raise DataError(f"explain() takes one observation. Received a batch of {len(x)}.")
        outputs = self._outputs(self._raw(x))[0]
        action = self._target_action(target, outputs)
        background = self.background_ if self.background_ is not None and len(self.background_) else x
        explanation = explain_features(
            lambda states: self._explained(self._outputs(self._raw(np.asarray(states, np.float32))), action),
            x[0], background, self.feature_names_, method=method, budget=budget, seed=seed,
            target=self.action_names_[action], quantity=self.explained_quantity,
        )
        explanation.extra.update({"action_index": action, self.output_kind.replace(" ", "_"): outputs.tolist()})
        return explanation

    def _target_action(self, target: int | str | None, outputs: np.ndarray) -> int:
        return target_index(target, self.action_names_, lambda: np.argmax(outputs), what="action")

    # ================================================================== play
    def play(self, out: str | os.PathLike | None = None, n_episodes: int = 1, seed: int | None = None,
             env: Any = None, policy: Any = None, **kwargs: Any) -> dict:
        """Render ``n_episodes`` greedy episodes to an animated GIF (see :func:`toolkit.rl.play.record`)."""
        from .play import record

        maker = self.env_maker(env)
        seed = self.config.seed + TEST_SEED_OFFSET if seed is None else int(seed)
        return record(self._greedy if policy is None else policy.predict, maker, out, n_episodes, seed,
                      action_names=self.action_names_, **kwargs)

    # ================================================================== export
    def _tflite_filename(self, quantization: str) -> str:
        return TFLITE_FILES.get(quantization, f"policy_{quantization}.tflite")

    def _export_plan(self, data: Any, quantization: str, n_states: int = EXPORT_STATES,
                     n_episodes: int = 100) -> ExportPlan:
        """The policy network (``policy.tflite``, ``policy_int8.tflite``, ...): raw observation (1, F)
        in, Q-values or action probabilities out, argmax is the action.

        The card entry records the action agreement with the Keras network over ``n_states``
        states from real greedy episodes of ``data`` (default: the training environment), how many
        of those states and of the disagreements have Keras' top two outputs close together
        (``keras_top_two_gap``), the TFLite policy's own mean return over ``n_episodes`` episodes
        next to the Keras policy's on the same episodes, latency, size and sha256. int8 is
        calibrated on other episodes (:func:`toolkit.rl.quantize.calibration_states`, greedy and
        epsilon-greedy). A DQN's int8 file takes the float32 observation and keeps its first layer
        and its Q-value head float32 (``layers`` in the entry; see :mod:`toolkit.rl.quantize`); an
        int8 file with an int8 input (A2C) adds ``keras_agreement_on_int8_input``: the Keras
        policy's agreement with itself when it reads the states rounded to that input's grid.
        """
        maker = self.env_maker(data)
        seed = self.config.seed + TEST_SEED_OFFSET
        envs = maker.copies(MAX_PARALLEL)
        try:
            states = self._states(envs, n_states, seed + 500_000)
            calibration = calibration_states(self, envs, seed + CALIBRATION_SEED) if quantization == "int8" else None
            network = self._export_network(quantization, calibration)
        except BaseException:
            maker.release(envs)
            raise
        check = {"maker": maker, "envs": envs, "seed": seed, "n_episodes": int(n_episodes), "states": states,
                 "kind": network.kind, "keras_out": network.same_outputs(self._outputs(self._raw(states))),
                 "layers": network.layers}
        representative = network.representative if network.representative is not None else calibration
        return ExportPlan(network.model, representative=representative, check=check, sample=states[:1],
                          release=lambda: maker.release(envs), float_nodes=network.float_nodes)

    def _export_checks(self, runner, plan: ExportPlan) -> dict:
        check = plan.check
        states, keras_out, kind, n_episodes = check["states"], check["keras_out"], check["kind"], check["n_episodes"]
        lite_out = runner.action_values(states)
        keras_episodes = run_episodes(self._greedy, check["envs"], n_episodes, check["seed"]).summary()
        lite_episodes = run_episodes(runner.predict, check["envs"], n_episodes, check["seed"]).summary()
        input_dtype = runner.runner.input_dtype()
        agree = np.argmax(lite_out, -1) == np.argmax(keras_out, -1)
        top_two = np.sort(keras_out, axis=1)[:, -2:]
        gap = top_two[:, 1] - top_two[:, 0]
        fields = {
            **runner.runner.quantization,
            "input": {"shape": [1, self.n_features_], "dtype": input_dtype,
                      "description": "the raw observation", "features": self.feature_names_},
            "output": {"shape": [1, self.n_actions_], "kind": kind, "actions": self.action_names_,
                       "description": f"{kind}; argmax is the action"},
            "env": check["maker"].name,
            "agreement_with_keras": float(np.mean(agree)),
            "n_states": int(len(states)),
            # where the disagreements are: states whose Keras outputs' top two are closer than each bound
            "keras_top_two_gap": {"below": list(GAP_BOUNDS),
                                  "states": [int(np.sum(gap < b)) for b in GAP_BOUNDS],
                                  "disagreements": [int(np.sum(~agree & (gap < b))) for b in GAP_BOUNDS]},
            "max_abs_output_diff": float(np.max(np.abs(lite_out - keras_out))),
            "mean_return": lite_episodes["mean_return"],
            "std_return": lite_episodes["std_return"],
            "mean_length": lite_episodes["mean_length"],
            "n_episodes": n_episodes,
            "keras_mean_return": keras_episodes["mean_return"],
            "return_ratio_to_keras": _return_ratio(lite_episodes["mean_return"], keras_episodes["mean_return"]),
        }
        if check["layers"]:
            fields["layers"] = check["layers"]
        if input_dtype == "int8":  # what the input's resolution allows any int8 policy
            fields["keras_agreement_on_int8_input"] = float(np.mean(
                self._greedy(runner.on_input_grid(states)) == self._greedy(states)))
        return fields

    def _states(self, envs: list, n_states: int, seed: int) -> np.ndarray:
        """At least ``n_states`` observations from real greedy episodes (episodes are played whole)."""
        n_states = int(n_states)
        if n_states < 1:
            raise ValueError(f"n_states must be >= 1. Received {n_states}.")
        chunks, total, k, n = [], 0, 0, 10
        while total < n_states:
            batch = run_episodes(self._greedy, envs, n, seed + k, collect=True).states
            chunks.append(batch)
            total += len(batch)
            k += n
            n = int(np.clip(np.ceil((n_states - total) / (total / k)), 1, len(envs)))  # episodes still needed
        return np.concatenate(chunks)[:n_states]

    # ================================================================== card / save / load
    def _card_extra(self) -> dict:
        return {
            "algorithm": self.algorithm,
            "env": self.env_,
            "labels": list(self.action_names_),
            "input": {"shape": [self.n_features_], "dtype": "float32", "features": self.feature_names_,
                      "description": "the raw observation", **(self.observation_bounds_ or {})},
            "output": {"shape": [self.n_actions_], "kind": self.output_kind, "actions": self.action_names_,
                       "description": f"{self.output_kind}; argmax is the action"},
            "training": self.training_,
        }

    def _save_extra(self, directory: Path) -> None:
        write_labels(directory, self.action_names_)
        if self.background_ is not None:
            np.savez_compressed(directory / BACKGROUND_FILE, x=self.background_)
        if self.history_:
            title = f"{self.algorithm.upper()} on {self.env_['name']}"
            (directory / CURVE_FILE).write_bytes(
                learning_curve_png(self.history_, self.training_.get("reward_threshold"),
                                   self.training_.get("threshold_step"), title=title))

    def _load_extra(self, directory: Path, card: dict) -> None:
        try:
            self.env_ = card["env"]
            self.n_features_ = int(card["input"]["shape"][0])
            self.n_actions_ = int(card["output"]["shape"][0])
            self.feature_names_ = list(card["input"]["features"])
            self.action_names_ = list(card["output"]["actions"])
        except (KeyError, TypeError, IndexError) as exc:
            raise ModelFormatError(f"{directory}/card.json lacks the agent's {exc} field. Re-save the agent.") from exc
        self.observation_bounds_ = {k: card["input"][k] for k in ("low", "high") if k in card["input"]}
        self.training_ = dict(card.get("training") or {})
        background = directory / BACKGROUND_FILE
        if background.is_file():
            with np.load(background) as npz:
                self.background_ = npz["x"].astype(np.float32)
        self._refresh()

    @property
    def learning_curve(self) -> Path | None:
        """The learning-curve PNG of a saved agent."""
        if self.directory_ is None or not (Path(self.directory_) / CURVE_FILE).is_file():
            return None
        return Path(self.directory_) / CURVE_FILE


def _return_ratio(value: float, reference: float) -> float:
    """value / reference for returns of either sign: 1.0 is equal, 0.95 is 5% worse."""
    if reference == 0:
        return 1.0 if value == 0 else float("nan")
    return float(1 - (reference - value) / abs(reference))
