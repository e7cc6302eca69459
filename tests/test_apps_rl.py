"""The RL tab: handlers called directly (on a tiny agent), and the launched app over HTTP."""

from __future__ import annotations

import pytest

gr = pytest.importorskip("gradio")

from apps import rl  # noqa: E402
from apps.common import REPO  # noqa: E402


def test_import_is_light():
    import subprocess
    import sys

    code = "import sys, apps.rl; print('tensorflow' in sys.modules or 'gymnasium' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert out.stdout.strip() == "False", out.stderr


@pytest.fixture(scope="module")
def service(tiny_agent_dir, tmp_path_factory):
    return rl.RLService({"tiny": tiny_agent_dir, "missing": tmp_path_factory.mktemp("none") / "agent"})


def test_overview_and_facts(service):
    curve, facts = rl.agent_overview(service, "tiny")
    assert curve.ndim == 3 and curve.shape[-1] == 3 and "DQN" in facts and "policy_int8.tflite" in facts
    assert service.backends("tiny") == ["Keras", "policy.tflite", "policy_int8.tflite"]
    assert "not available" in rl.agent_facts(service, "missing")
    with pytest.raises(gr.Error, match="missing"):
        rl.agent_overview(service, "missing")


@pytest.mark.parametrize("backend", ["Keras", "policy.tflite"])
def test_play_episode_makes_a_gif_once(service, backend):
    from PIL import Image

    path, note = rl.play_episode(service, "tiny", 4, backend)
    with Image.open(path) as gif:
        assert gif.n_frames > 1
    again, note_again = rl.play_episode(service, "tiny", 4, backend)
    assert again == path and note_again == note and "return" in note


def test_compare_with_random(service):
    table = rl.compare_random(service, "tiny", 0, 5)
    assert "random actions" in table and "5 episodes" in table
    with pytest.raises(gr.Error, match="1 to 100"):
        rl.compare_random(service, "tiny", 0, 1000)


def test_step_through_an_episode(service):
    frame, values, attribution, status, state = rl.reset_episode(service, "tiny", 2, "shap", "Keras")
    assert frame.shape == (400, 600, 3) and attribution.ndim == 3 and "(chosen)" in values
    assert state == {"agent": "tiny", "seed": 2, "actions": []} and "Step 0" in status
    for k in range(3):
        frame, values, attribution, status, state = rl.step_episode(service, "tiny", state, "lime", "policy.tflite")
        assert len(state["actions"]) == k + 1 and f"Step {k + 1}" in status
    agent = service.agent("tiny")
    assert state["actions"][0] == int(agent.predict(rl._episode(agent, 2, [], render=False)[0]))
    while "episode is over" not in status:
        *_, status, state = rl.step_episode(service, "tiny", state, "lime", "Keras")
    with pytest.raises(gr.Error, match="episode is over"):
        rl.step_episode(service, "tiny", state, "lime", "Keras")


@pytest.mark.parametrize("call, message", [
    (lambda s: rl.play_episode(s, "nope", 0), "Unknown agent"),
    (lambda s: rl.play_episode(s, "tiny", "abc"), "whole number"),
    (lambda s: rl.play_episode(s, "tiny", -1), "between 0"),
    (lambda s: rl.play_episode(s, "tiny", 0, "other.tflite"), "Unknown policy file"),
    (lambda s: rl.step_episode(s, "tiny", None), "Press Reset"),
    (lambda s: rl.step_episode(s, "tiny", {"agent": "tiny", "seed": 0, "actions": [7]}), "not valid"),
    (lambda s: rl.step_episode(s, "tiny", {"agent": "tiny", "seed": 0, "actions": [0] * 20_000}), "not valid"),
    (lambda s: rl.reset_episode(s, "tiny", 0, "gradcam"), "Unknown explanation method"),
])
def test_bad_requests_are_messages(service, call, message):
    with pytest.raises(gr.Error, match=message):
        call(service)


def test_launched_app_over_http(service):
    import httpx

    from benchmarks.common import rest_event

    demo = rl.build_demo(service=service)
    demo.queue(default_concurrency_limit=2)
    demo.launch(server_name="127.0.0.1", server_port=None, prevent_thread_lock=True, quiet=True,
                max_file_size="10mb", allowed_paths=[])
    base = demo.local_url.rstrip("/")
    try:
        with httpx.Client(timeout=60) as http:
            event, data = rest_event(http, base, "reset_episode", ["tiny", 1, "shap", "Keras"])
            assert event == "complete" and "(chosen)" in data[1] and data[4]["actions"] == []
            event, data = rest_event(http, base, "step_episode", ["tiny", data[4], "shap", "Keras"])
            assert event == "complete" and len(data[4]["actions"]) == 1
            bad = {"agent": "tiny", "seed": 0, "actions": [7]}
            event, data = rest_event(http, base, "step_episode", ["tiny", bad, "shap", "Keras"])
            assert event == "error" and "not valid" in str(data)
    finally:
        demo.close()
