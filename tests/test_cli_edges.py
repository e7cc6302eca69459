"""Edges of the command line and of what it saves: out-of-range numbers, output paths that cannot
be written, cards that are not objects, seeds, a resumed training's history, file modes."""

from __future__ import annotations

import argparse
import json
import os
import stat

import numpy as np
import pytest

from conftest import SHIPPED_DIGITS, one_error_line, run, write_image
from toolkit.cli import main
from toolkit.config import SEED_MAX, Bounded


def _argparse_error(capsys, argv) -> str:
    with pytest.raises(SystemExit) as info:
        main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert info.value.code == 2 and "Traceback" not in err
    return err


@pytest.fixture(scope="module")
def shipped():
    if not (SHIPPED_DIGITS / "card.json").is_file():
        pytest.skip("saved_models/vision/digits_cnn is missing; run `make models`")
    return SHIPPED_DIGITS


@pytest.fixture
def image(tmp_path):
    return write_image(tmp_path / "digit.png", np.kron(np.eye(8) * 255, np.ones((4, 4))))


@pytest.fixture
def blocked(tmp_path):
    """A path whose parent is a file: no user, root included, can write there."""
    (tmp_path / "file").write_text("in the way")
    return tmp_path / "file" / "sub"


# ---------------------------------------------------------------------------- numbers


@pytest.mark.parametrize("argv, expected", [
    (["predict", "M", "--image", "I", "--top-k", "-3"], "--top-k: expected a whole number >= 1. Received '-3'"),
    (["predict", "M", "--image", "I", "--top-k", "0"], "--top-k: expected a whole number >= 1"),
    (["explain", "M", "--image", "I", "--out", "x.png", "--seed", "-1"], f"in [0, {SEED_MAX}]"),
    (["generate", "M", "--out", "g.png", "--seed", str(SEED_MAX + 1)], f"in [0, {SEED_MAX}]"),
    (["calibrate", "M", "--max-flagged", "3"], "--max-flagged: expected a number in [0, 1)"),
    (["train", "vision", "--data", "digits", "--out", "x", "--test-size", "1.5"], "--test-size: expected a number in (0, 1)"),
    (["train", "vision", "--data", "digits", "--out", "x", "--seed", "-1"], "--seed: expected a whole number in [0, "),
    (["train", "vision", "--data", "digits", "--out", "x", "--learning-rate", "nan"], "Received 'nan'"),
    (["train", "text_classifier", "--data", "d", "--out", "x", "--test-size", "0"], "--test-size"),
    (["play", "M", "--out", "p.gif", "--scale", "inf"], "--scale: expected a number in (0, 1]"),
    (["compress", "M", "--prune", "1"], "--prune: expected a number in (0, 1)"),
    (["serve", "--port", "-1"], "--port: expected a whole number in [1, 65535]"),
], ids=lambda v: v if isinstance(v, str) and " " not in v else None)
def test_out_of_range_numbers_are_refused_by_the_parser(capsys, argv, expected):
    assert expected in _argparse_error(capsys, argv)


def _actions(parser: argparse.ArgumentParser, path=("toolkit",)):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _actions(sub, (*path, name))
        else:
            yield path, action


def test_every_numeric_option_of_every_command_has_a_range():
    """A plain type=int/float accepts -3, NaN and inf: every numeric option, generated ones included,
    parses with Bounded (or has choices)."""
    from toolkit.cli_args import build_parser

    seen = 0
    for path, action in _actions(build_parser()):
        if action.type in (int, float):
            assert action.choices, f"{' '.join(path)} {action.option_strings} takes any {action.type.__name__}"
        if isinstance(action.type, Bounded):
            seen += 1
            for bad in ("nan", "inf", "abc"):
                with pytest.raises(argparse.ArgumentTypeError):
                    action.type(bad)
            if "seed" in action.dest:
                assert action.type(str(SEED_MAX)) == SEED_MAX
                with pytest.raises(argparse.ArgumentTypeError):
                    action.type("-1")
    assert seen > 50  # the generated options of every task, not only the hand-written ones


def test_seeds_have_one_range_in_configs_too():
    from toolkit.vision.classifier import ImageClassifier

    with pytest.raises(ValueError, match=rf"seed must be a whole number in \[0, {SEED_MAX}\]"):
        ImageClassifier.train_recipe("x", data="digits", seed=SEED_MAX + 1, epochs=1)


def test_digits_keeps_its_fixed_split(capsys, tmp_path):
    code, _, err = run(capsys, "train", "vision", "--data", "digits", "--out", tmp_path / "m", "--test-size", "0.3",
                       "--epochs", "1")
    assert one_error_line(code, err) and "fixed test split" in err and "--test-size" in err
    assert not (tmp_path / "m").exists()


# ---------------------------------------------------------------------------- output paths


def test_explain_to_an_unknown_file_ending_writes_nothing(capsys, shipped, image, tmp_path):
    out = tmp_path / "why.unknownext"
    code, _, err = run(capsys, "explain", shipped, "--image", image, "--out", out)
    assert one_error_line(code, err) and ".png" in err and "'.unknownext'" in err
    assert not out.exists()


@pytest.mark.parametrize("verb", ["explain", "export", "evaluate", "train"])
def test_out_where_nothing_can_be_written(capsys, shipped, image, blocked, verb):
    extra = {"explain": ["--image", image, "--out", blocked / "why.png"], "export": ["--out", blocked],
             "evaluate": ["--out", blocked]}.get(verb)
    argv = [verb, shipped, *extra] if extra else ["train", "vision", "--data", "digits", "--out", blocked]
    code, out, err = run(capsys, *argv)
    assert one_error_line(code, err) and "Cannot write" in err and "is a file" in err and not out


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_out_in_a_read_only_folder(capsys, shipped, image, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        code, _, err = run(capsys, "explain", shipped, "--image", image, "--out", locked / "why.png")
    finally:
        locked.chmod(0o700)
    assert one_error_line(code, err) and "not writable" in err


def test_an_os_error_deep_inside_is_one_line(capsys, monkeypatch):
    import toolkit.cli as cli

    def refuse(args, command):
        raise PermissionError(13, "Permission denied", "/somewhere/model.keras")

    monkeypatch.setitem(cli.VERBS, "evaluate", refuse)
    code, _, err = run(capsys, "evaluate", "m")
    assert one_error_line(code, err) and "'/somewhere/model.keras'" in err and "permission denied" in err


def test_storage_errors_name_the_path(blocked):
    from toolkit.errors import OutputError
    from toolkit.storage import atomic_write_text, replace_directory

    with pytest.raises(OutputError, match="Cannot write .*sub/a.txt"):
        atomic_write_text(blocked / "a.txt", "x")
    with pytest.raises(OutputError, match="Cannot write"):
        replace_directory(blocked / "model", lambda tmp: None)


@pytest.mark.parametrize("card", ["[1, 2]", "null", "\"text\""])
@pytest.mark.parametrize("verb", ["explain", "export"])
def test_a_card_that_is_not_an_object(capsys, tmp_path, image, card, verb):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "card.json").write_text(card)
    extra = ["--image", image, "--out", tmp_path / "why.png"] if verb == "explain" else []
    code, _, err = run(capsys, verb, tmp_path / "m", *extra)
    assert one_error_line(code, err) and "JSON object" in err


# ---------------------------------------------------------------------------- saved files


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_saved_files_honour_the_umask(tmp_path, umask):
    from toolkit.storage import replace_directory, write_json

    old = os.umask(umask)
    try:
        write_json(tmp_path / "a.json", {"a": 1})
        (tmp_path / "plain.txt").write_text("x")
        folder = replace_directory(tmp_path / "model", lambda tmp: (tmp / "x.txt").write_text("x"))
    finally:
        os.umask(old)
    mode = stat.S_IMODE((tmp_path / "a.json").stat().st_mode)
    assert mode == stat.S_IMODE((tmp_path / "plain.txt").stat().st_mode) == 0o666 & ~umask
    assert stat.S_IMODE(folder.stat().st_mode) == 0o777 & ~umask


def test_a_resumed_training_keeps_every_epoch(tmp_path, tiny_data):
    """Killed during epoch 3 of 4 and run again: the history (and history.json) has all 4 epochs,
    the first two from before the kill."""
    import keras

    from toolkit.vision.classifier import ImageClassifier

    class Killed(Exception):
        pass

    class KillAfter(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.losses = []

        def on_epoch_end(self, epoch, logs=None):
            self.losses.append(logs["loss"])
            if epoch == 2:
                raise Killed  # before the backups save the third epoch: the next run starts there

    settings = dict(backbone="small_cnn", epochs=4, patience=100, backup_dir=str(tmp_path / "backup"), seed=0)
    kill = KillAfter()
    with pytest.raises(Killed):
        ImageClassifier(**settings).fit(tiny_data, callbacks=[kill])
    assert (tmp_path / "backup" / "phase1_epochs.json").is_file()
    clf = ImageClassifier(**settings).fit(tiny_data)
    history = clf.history_
    assert len(history["loss"]) == 4 and len(history["val_loss"]) == 4
    np.testing.assert_allclose(history["loss"][:2], kill.losses[:2], rtol=1e-6)
    assert not (tmp_path / "backup").exists()
    clf.save(tmp_path / "model")
    saved = json.loads((tmp_path / "model" / "history.json").read_text())
    assert len(saved["loss"]) == 4
