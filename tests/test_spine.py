"""The spine, checked statically: tasks declare what they are, the CLI is generated from them."""

from __future__ import annotations

import ast
import dataclasses
import json

import pytest
from conftest import REPO, one_error_line, run

from toolkit.base import ALIASES, TAGS, Task, registered_tasks, task_class

CLI = REPO / "toolkit" / "cli.py"
TASKS = registered_tasks()


def test_cli_is_small_and_has_no_task_switches():
    source = CLI.read_text()
    assert len(source.splitlines()) < 350
    assert "hasattr(" not in source
    strings = {node.value for node in ast.walk(ast.parse(source)) if isinstance(node, ast.Constant)
               and isinstance(node.value, str)}
    # tags may share a task's name; "anomaly" is also the flag column of AnomalyDetector.detect()'s table
    names = (set(TASKS) | set(ALIASES)) - TAGS - {"anomaly"}
    assert not strings & names, f"task names in toolkit/cli.py: {sorted(strings & names)}"


@pytest.mark.parametrize("name", sorted(TASKS))
def test_every_task_declares_itself(name):
    cls = TASKS[name]
    assert cls.explain_methods and cls.default_explain_method() == cls.explain_methods[0]
    assert cls.tags <= TAGS
    assert isinstance(cls.runner_class(), type)
    assert cls.train_recipe.__func__ is not Task.train_recipe.__func__
    for field in dataclasses.fields(cls.config_class):
        assert field.metadata.get("help"), f"{cls.config_class.__name__}.{field.name} has no help text"
    fields = {f.name for f in dataclasses.fields(cls.config_class)}
    assert any(o.name == "out" for o in cls.recipe_options)
    for option in cls.recipe_options:
        assert option.help and (option.name not in fields or option.name == "out"), option


def test_tune_ranges_are_ordered():
    for cls in TASKS.values():
        for field in dataclasses.fields(cls.config_class):
            if "tune" in field.metadata:
                low, high = field.metadata["tune"]
                assert low < high, (cls.__name__, field.name)


def test_train_help_lists_every_task_and_alias(capsys):
    with pytest.raises(SystemExit):
        run(capsys, "train", "--help")
    out = capsys.readouterr().out
    for name in [*TASKS, *ALIASES]:
        assert name in out, name


@pytest.mark.parametrize("alias", sorted(ALIASES))
def test_every_alias_resolves(alias):
    assert task_class(alias) is TASKS[ALIASES[alias]]


@pytest.mark.parametrize("argv, dest, value", [
    (["train", "vision", "--data", "digits", "--out", "m", "--augment", "auto"], "augment", "auto"),
    (["train", "image_classifier", "--data", "digits", "--out", "m", "--image-size", "32", "48"], "image_size",
     [32, 48]),
    (["train", "rl", "--env", "CartPole-v1", "--out", "m", "--no-early-stop"], "stop_at_threshold", False),
    (["train", "rl", "--env", "CartPole-v1", "--out", "m", "--timesteps", "10"], "total_timesteps", 10),
    (["train", "a2c", "--env", "CartPole-v1", "--out", "m", "--n-steps", "8"], "n_steps", 8),
])
def test_generated_arguments(argv, dest, value):
    from toolkit.cli import build_parser

    assert getattr(build_parser().parse_args(argv), dest) == value


def test_family_option_of_the_other_algorithm(capsys, tmp_path):
    code, _, err = run(capsys, "train", "rl", "--env", "CartPole-v1", "--algo", "dqn", "--n-steps", "8",
                       "--out", tmp_path / "x")
    assert one_error_line(code, err) and "--n-steps is an A2C option; drop it or use --algo a2c." in err


def test_target_index_is_one_home():
    from toolkit.base import target_index
    from toolkit.errors import DataError

    names = ["1", "2", "cat"]
    assert target_index("cat", names) == 2 and target_index("2", names) == 1  # a name wins over an index
    assert target_index("0", names) == 0 and target_index(1, names) == 1 and target_index(None, names, 2) == 2
    with pytest.raises(DataError, match=r"Unknown label 'dog'. Expected one of \['1', '2', 'cat'\]"):
        target_index("dog", names, what="label")
    with pytest.raises(DataError):
        target_index(True, names)


@pytest.mark.parametrize("card", [[1, 2], None, "text"])
def test_a_card_that_is_not_an_object(tmp_path, capsys, card):
    from toolkit.base import load
    from toolkit.errors import ModelFormatError

    (tmp_path / "card.json").write_text(json.dumps(card))
    with pytest.raises(ModelFormatError, match="JSON object"):
        load(tmp_path)
    code, _, err = run(capsys, "evaluate", tmp_path)
    assert one_error_line(code, err) and "JSON object" in err


@pytest.mark.parametrize("file", ["/etc/passwd", "../model.keras", "sub/../../x.keras", "..", 7])
def test_a_card_whose_model_file_leaves_the_folder(tmp_path, capsys, file, shipped_digits):
    from toolkit.base import load
    from toolkit.errors import ModelFormatError

    folder = tmp_path / "m"
    folder.mkdir()
    card = json.loads((shipped_digits / "card.json").read_text())
    card["model"]["file"] = file
    (folder / "card.json").write_text(json.dumps(card))
    (tmp_path / "model.keras").write_bytes((shipped_digits / "model.keras").read_bytes())
    with pytest.raises(ModelFormatError, match="file name inside"):
        load(folder)
    code, _, err = run(capsys, "predict", folder, "--image", "x.png")
    assert one_error_line(code, err) and "file name inside" in err


MODULES = sorted([*(REPO / "toolkit").rglob("*.py"), *(REPO / "apps").glob("*.py")])


def test_no_module_over_600_lines():
    long = {str(p.relative_to(REPO)): n for p in MODULES if (n := len(p.read_text().splitlines())) > 600}
    assert not long, f"split these modules: {long}"


def _imported_names(path):
    """(module, name) of every ``from X import name`` in a file, relative imports resolved to the package."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                package = path.parent.relative_to(REPO).parts
                module = ".".join([*package[: len(package) - node.level + 1], module]).strip(".")
            for alias in node.names:
                yield module, alias.name


def test_apps_use_only_public_names_and_no_task_switches():
    names = set(TASKS) - TAGS  # registered names (short aliases like "nlp" also name the saved_models folders)
    for path in sorted((REPO / "apps").glob("*.py")):
        private = [f"{m}.{n}" for m, n in _imported_names(path)
                   if n.startswith("_") and not n.startswith("__") and m.split(".")[0] in ("apps", "toolkit")]
        assert not private, f"{path.name} imports private names {private}"
        source = path.read_text()
        assert "hasattr(" not in source, f"{path.name} probes with hasattr"
        strings = {node.value for node in ast.walk(ast.parse(source))
                   if isinstance(node, ast.Constant) and isinstance(node.value, str)}
        if path.name != "main.py":  # main.py lists the tab modules by their file names
            assert not strings & names, f"task names in {path.name}: {sorted(strings & names)}"


def test_toolkit_modules_import_no_private_names_of_other_modules():
    for path in MODULES:
        if path.parts[-2] == "apps":
            continue
        here = ".".join(path.relative_to(REPO).with_suffix("").parts)
        private = [f"{m}.{n}" for m, n in _imported_names(path)
                   if n.startswith("_") and not n.startswith("__") and m.startswith("toolkit") and m != here]
        assert not private, f"{path.relative_to(REPO)} imports private names {private}"
