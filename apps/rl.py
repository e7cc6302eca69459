"""RL tab: pick a shipped agent, watch it play (an animated GIF), step through an episode with the
Q-values or action probabilities of every step and the feature attribution (SHAP/LIME) of the
current state, compare its return with a random agent's, and see its learning curve.

Plain handler functions (tested directly) plus ``build_demo(agent_dirs=None) -> gr.Blocks``.
Nothing heavy happens at import time: agents load on first use, once, and are shared by all
requests. The step-through keeps no environment on the server: the session state is the agent,
the seed and the actions taken so far, and each step replays them (environments are
deterministic given the seed; replaying 500 CartPole steps costs a few milliseconds).
"""

from __future__ import annotations

import collections
import functools
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from apps.common import (KERAS, MAKE_MODELS, SAVED_MODELS, ModelSlot, data_error, folders_key, int_in,
                         MAX_SEED, missing_note, named, seed_value, tab_header, tflite_table, user_errors)

RL_MODELS = SAVED_MODELS / "rl"
TITLE = "RL"
DEFAULT_AGENT_DIRS = {
    "CartPole DQN": RL_MODELS / "cartpole_dqn",
    "CartPole A2C": RL_MODELS / "cartpole_a2c",
    "Acrobot DQN": RL_MODELS / "acrobot_dqn",
}
MAX_COMPARE_EPISODES = 100
MAX_STEPS = 10_000  # actions a step-through request may replay (classic-control episodes end at 500)
GIF_CACHE = 16
RL_TFLITE_COLUMNS = (("action agreement", "agreement_with_keras", "{:.4f}"), ("TFLite return", "mean_return", "{:.1f}"),
                     ("latency p50", "latency_ms_p50", "{:.3f} ms"))


class RLService:
    """The shipped agents (each loaded once), their TFLite policies, and the GIFs made so far."""

    def __init__(self, agent_dirs: dict[str, str | Path] | None = None):
        dirs = DEFAULT_AGENT_DIRS if agent_dirs is None else agent_dirs
        self._slots = {name: ModelSlot(name, d) for name, d in dirs.items()}
        self._lock = threading.Lock()
        self._gifs: collections.OrderedDict = collections.OrderedDict()
        self._gif_dir: Path | None = None

    @property
    def agent_names(self) -> list[str]:
        return list(self._slots)

    def directory(self, name: str) -> Path:
        return self._slot(name).directory

    def _slot(self, name: str) -> ModelSlot:
        if not isinstance(name, str) or name not in self._slots:
            raise data_error(f"Unknown agent {name!r}. Choose one of {self.agent_names}.")
        return self._slots[name]

    def agent(self, name: str):
        return self._slot(name).load()

    def backends(self, name: str) -> list[str]:
        return self._slot(name).backends()

    def policy(self, name: str, backend: str | None):
        """``predict(obs)`` of the agent's Keras network or of one of its policy files."""
        agent = self.agent(name)
        if backend in (None, "", KERAS):
            return agent
        if not isinstance(backend, str) or backend not in self.backends(name):
            raise data_error(f"Unknown policy file {backend!r}. Choose one of {self.backends(name)}.")
        from toolkit.rl import TFLitePolicy

        return self._slot(name).runner(backend, TFLitePolicy)

    def gif(self, key: tuple, make) -> tuple[Path, dict]:
        """The GIF for ``key`` (agent, policy, seed) and its episode facts; ``make(path)`` writes
        it the first time. The last GIF_CACHE GIFs are kept."""
        with self._lock:
            if key in self._gifs and self._gifs[key][0].is_file():
                self._gifs.move_to_end(key)
                return self._gifs[key]
            if self._gif_dir is None:
                self._gif_dir = Path(tempfile.mkdtemp(prefix="toolkit-rl-"))
            path = self._gif_dir / ("_".join(str(k) for k in key).replace(" ", "-").replace("/", "-") + ".gif")
        result = make(path)
        with self._lock:
            self._gifs[key] = (path, result)
            while len(self._gifs) > GIF_CACHE:
                _, (old, _) = self._gifs.popitem(last=False)
                old.unlink(missing_ok=True)
        return path, result

    def warm_up(self) -> None:
        """Load the agents now (a missing one is reported in the page, not here), and explain one
        state with each method so the first step-through does not pay for importing SHAP and LIME."""
        from toolkit.errors import ToolkitError
        from toolkit.explain.tabular import FEATURE_METHODS

        loaded = []
        for name in self.agent_names:
            try:
                loaded.append(self.agent(name))
            except ToolkitError:
                pass
        if loaded and loaded[0].background_ is not None:
            for method in FEATURE_METHODS:
                loaded[0].explain(loaded[0].background_[0], method=method)


@functools.lru_cache(maxsize=4)
def shared_service(agent_dirs: tuple | None = None) -> RLService:
    """One service per set of folders, so rebuilding the app does not reload agents. Agents load on
    first use (``warm_up`` loads them ahead: ``apps.main.launch`` runs it in the background)."""
    service = RLService(dict(agent_dirs) if agent_dirs is not None else None)
    return service


# ---------------------------------------------------------------------- inputs


def _seed(seed: Any) -> int:
    return seed_value(seed)


def _episode(agent, seed: int, actions: list[int], render: bool = True):
    """Replay ``actions`` from ``reset(seed=seed)``: (observation, return, done, frame)."""
    env = agent.env_maker().make(render_mode="rgb_array" if render else None)
    try:
        obs, _ = env.reset(seed=seed)
        total, done = 0.0, False
        for action in actions:
            obs, reward, terminated, truncated, _ = env.step(int(action))
            total += float(reward)
            done = terminated or truncated
        frame = env.render() if render else None
    finally:
        env.close()
    return np.asarray(obs, np.float32), total, done, frame


def _values_table(agent, values: np.ndarray, chosen: int, kind: str) -> str:
    lines = [f"| action | {kind} |", "|---|---|"]
    for i, (name, value) in enumerate(zip(agent.action_names_, np.reshape(values, -1))):
        mark = f"**{name}** (chosen)" if i == chosen else name
        lines.append(f"| {mark} | {float(value):.4f} |")
    return "\n".join(lines)


def _check_state(service: RLService, name: str, state: Any) -> tuple[int, list[int]]:
    if not isinstance(state, dict) or state.get("agent") != name or "seed" not in state:
        raise data_error("No episode for this agent yet. Press Reset to start one.")
    actions = state.get("actions") or []
    agent = service.agent(name)
    if not isinstance(actions, list) or len(actions) > MAX_STEPS or any(
            not isinstance(a, int) or not 0 <= a < agent.n_actions_ for a in actions):
        raise data_error("The episode state is not valid. Press Reset to start a new episode.")
    return _seed(state["seed"]), actions


# ---------------------------------------------------------------------- handlers


@user_errors
def agent_overview(service: RLService, name: str):
    """The agent's learning curve (an RGB array; None if the folder has none) and facts from its card."""
    service.agent(name)  # a missing agent is an error here
    return _curve(service, name), agent_facts(service, name)


def agent_facts(service: RLService, name: str) -> str:
    from toolkit.errors import ToolkitError

    try:
        agent = service.agent(name)
    except ToolkitError as exc:
        return f"**Agent not available** ({service.directory(name)}): {exc}"
    t = agent.training_ or {}
    m = agent.metrics_ or {}
    lines = [f"**{agent.algorithm.upper()}** on `{agent.env_['name']}`: observation "
             f"({', '.join(agent.feature_names_)}), actions ({', '.join(agent.action_names_)})."]
    if t:
        reached = (f"threshold {t['reward_threshold']:g} reached after {t['threshold_step']:,} environment steps"
                   if t.get("threshold_step") else f"threshold {t.get('reward_threshold')} not reached")
        lines.append(f"Trained for {t.get('env_steps', 0):,} environment steps in {t.get('seconds', 0):.0f} s; "
                     f"{reached}.")
    if "mean_return" in m:
        lines.append(f"**Greedy return** {m['mean_return']:.1f} ± {m['std_return']:.1f} over {m['n_episodes']} "
                     f"episodes (a random agent: {m.get('random_mean_return', float('nan')):.1f}).")
    if agent.tflite_:
        lines += tflite_table(agent.tflite_, RL_TFLITE_COLUMNS)
    if agent.command_:
        lines.append(f"\nMade by `{agent.command_}`.")
    return "\n".join(lines)


@user_errors
def play_episode(service: RLService, name: str, seed: Any = 0, backend: str = KERAS):
    """One greedy episode as an animated GIF (path), with its return and how long it took."""
    seed = _seed(seed)
    agent = service.agent(name)
    policy = service.policy(name, backend)
    path, result = service.gif((name, backend or KERAS, seed),
                               lambda out: agent.play(out, n_episodes=1, seed=seed,
                                                      policy=None if policy is agent else policy))
    note = (f"**{name}** ({backend or KERAS}), seed {seed}: return **{result['returns'][0]:g}** in "
            f"{result['lengths'][0]} steps (rendered in {result['seconds']:.1f} s).")
    return str(path), note


@user_errors
def compare_random(service: RLService, name: str, seed: Any = 0, n_episodes: Any = 20):
    """The agent's greedy return against a random agent's, on the same episodes (markdown)."""
    seed = _seed(seed)
    n = int_in(n_episodes, "episodes", 1, MAX_COMPARE_EPISODES, default=0)
    start = time.perf_counter()
    result = service.agent(name).evaluate(n_episodes=n, seed=seed)
    return (f"| agent | mean return | std |\n|---|---|---|\n"
            f"| **{name}** (greedy) | {result['mean_return']:.1f} | {result['std_return']:.1f} |\n"
            f"| random actions | {result['random_mean_return']:.1f} | {result['random_std_return']:.1f} |\n\n"
            f"{n} episodes (seeds {seed}..{seed + n - 1}), {time.perf_counter() - start:.1f} s.")


def _method(method: Any) -> str:
    from toolkit.explain.tabular import FEATURE_METHODS

    if method in (None, ""):
        return next(iter(FEATURE_METHODS))
    if not isinstance(method, str) or method not in FEATURE_METHODS:
        raise data_error(f"Unknown explanation method {method!r}. Choose one of {list(FEATURE_METHODS)}.")
    return method


def _show(service: RLService, name: str, seed: int, actions: list[int], method: str, backend: str):
    method = _method(method)
    agent = service.agent(name)
    obs, total, done, frame = _episode(agent, seed, actions)
    policy = service.policy(name, backend)
    values = policy.action_values(obs)
    chosen = int(np.argmax(values))
    kind = agent.action_value_name
    if backend not in (None, "", KERAS):
        kind += f" ({backend})"
    table = _values_table(agent, values, chosen, kind)
    explanation = agent.explain(obs, method=method, target=chosen)
    state = {"agent": name, "seed": seed, "actions": actions}
    status = (f"Step {len(actions)}, return so far {total:g}. " + (
        "**The episode is over.** Press Reset for a new one." if done else
        f"Next action: **{agent.action_names_[chosen]}**; {explanation.extra['sentence']} "
        f"({method.upper()}, {explanation.seconds * 1000:.0f} ms)."))
    return frame, table, explanation.image, status, state


@user_errors
def reset_episode(service: RLService, name: str, seed: Any = 0, method: str = "shap", backend: str = KERAS):
    """A new episode at step 0: the frame, the action values, their explanation, a note, the state."""
    return _show(service, name, _seed(seed), [], method, backend)


@user_errors
def step_episode(service: RLService, name: str, state: Any, method: str = "shap", backend: str = KERAS):
    """Take the policy's action and show the next state (same outputs as ``reset_episode``)."""
    seed, actions = _check_state(service, name, state)
    agent = service.agent(name)
    obs, total, done, _ = _episode(agent, seed, actions, render=False)
    if done:
        raise data_error(f"The episode is over (return {total:g}). Press Reset to start a new one.")
    action = int(np.asarray(service.policy(name, backend).predict(obs)).reshape(-1)[0])
    return _show(service, name, seed, [*actions, action], method, backend)


# ---------------------------------------------------------------------- UI


def build_demo(agent_dirs: dict[str, str | Path] | None = None, service: RLService | None = None):
    import gradio as gr

    from toolkit.explain.tabular import FEATURE_METHODS

    if service is None:
        service = shared_service(folders_key(agent_dirs))
    names = service.agent_names
    first = names[0] if names else None
    with gr.Blocks(title="Reinforcement learning") as demo:
        tab_header("### Reinforcement learning\nWatch a trained agent play, step through an episode with what the "
                   "network thinks of each action and which observation features drove it, and compare it with "
                   "random actions.", missing_note({name: service.directory(name) for name in names}))
        with gr.Row():
            agent = gr.Dropdown(names, value=first, label="Agent")
            seed = gr.Number(value=0, precision=0, label="Episode seed", minimum=0, maximum=MAX_SEED)
            backend = gr.Dropdown(service.backends(first) if first else [KERAS], value=KERAS, label="Policy",
                                  allow_custom_value=True,  # API callers may name another agent's file
                                  info="the Keras network, or a TFLite file as a phone runs it")
        with gr.Tab("Watch"):
            with gr.Row():
                with gr.Column():
                    play_btn = gr.Button("Play an episode", variant="primary")
                    gif = gr.Image(label="Episode", type="filepath", interactive=False)
                    play_note = gr.Markdown()
                with gr.Column():
                    n_episodes = gr.Slider(1, MAX_COMPARE_EPISODES, value=20, step=1, label="Episodes to compare")
                    compare_btn = gr.Button("Compare with a random agent")
                    comparison = gr.Markdown()
                    curve = gr.Image(_curve(service, first), label="Learning curve", type="numpy",
                                     interactive=False)
        with gr.Tab("Step through"):
            with gr.Row():
                method = gr.Radio(list(FEATURE_METHODS), value="shap", label="Attribution method")
                reset_btn = gr.Button("Reset")
                step_btn = gr.Button("Step", variant="primary")
            with gr.Row():
                frame = gr.Image(label="Current state", type="numpy", interactive=False)
                with gr.Column():
                    values = gr.Markdown()
                    status = gr.Markdown()
            attribution = gr.Image(label="Which features drove the next action", type="numpy", interactive=False)
            # The episode (agent, seed, actions) travels with each request, so API clients can step too.
            state = gr.JSON(None, visible=False)
        with gr.Accordion("Agent facts (from card.json)", open=False):
            facts = gr.Markdown(agent_facts(service, first) if first else MAKE_MODELS)

        play_btn.click(named(play_episode, service, "play_episode"), [agent, seed, backend], [gif, play_note],
                       api_name="play_episode")
        compare_btn.click(named(compare_random, service, "compare_random"), [agent, seed, n_episodes], [comparison],
                          api_name="compare_random")
        step_outputs = [frame, values, attribution, status, state]
        reset_btn.click(named(reset_episode, service, "reset_episode"), [agent, seed, method, backend], step_outputs,
                        api_name="reset_episode")
        step_btn.click(named(step_episode, service, "step_episode"), [agent, state, method, backend], step_outputs,
                       api_name="step_episode")

        answers = [gif, play_note, comparison, *step_outputs]  # what belongs to one agent, policy and seed
        empty = (None, "", "", None, "", None, "", None)

        def agent_changed(name: str):  # no answer of the previous agent stays on screen
            image, text = agent_overview(service, name)
            return (gr.update(choices=service.backends(name), value=KERAS), image, text, *empty)

        agent.change(agent_changed, [agent], [backend, curve, facts, *answers], api_name=False)
        for control in (seed, backend):
            control.input(lambda: empty, None, answers, api_name=False, queue=False)
        n_episodes.input(lambda: "", None, [comparison], api_name=False, queue=False)
    return demo


def _curve(service: RLService, name: str | None) -> np.ndarray | None:
    """The learning-curve PNG of an agent as an RGB array (served from memory: the model folder
    may be outside the folders Gradio serves files from), or None when it is not available."""
    from PIL import Image

    from toolkit.errors import ToolkitError

    from toolkit.rl.agent import CURVE_FILE

    try:
        path = service.directory(name) / CURVE_FILE if name else None
    except ToolkitError:
        return None
    if path is None or not path.is_file():
        return None
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def warm_up(agent_dirs: dict[str, str | Path] | None = None) -> None:
    """Load the tab's agents ahead of the first request (``apps.main.launch`` runs it in the background)."""
    shared_service(folders_key(agent_dirs)).warm_up()
