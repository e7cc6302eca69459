"""The README's Python examples run as written, one test per example.

The examples take about two minutes together. `--dist loadfile` gives a file's tests to one worker, so
the examples that import one of ``SECOND_FILE`` run from tests/test_readme_examples.py and the others
from here: the two workers share them. Every example runs exactly once (checked below).
"""

from __future__ import annotations

import re
import warnings

import pytest

from conftest import REPO

SECOND_FILE = ("toolkit.nlp", "toolkit.timeseries", "toolkit.detection")  # text, series, boxes: about half the time


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", (REPO / "README.md").read_text(), flags=re.S)


def in_second_file(block: str) -> bool:
    return any(re.search(rf"^from {re.escape(module)}\b", block, flags=re.M) for module in SECOND_FILE)


def examples(second: bool) -> list:
    """The README's Python blocks this file runs, as pytest parameters named by their place in the README."""
    return [pytest.param(block, id=f"example{k}") for k, block in enumerate(python_blocks())
            if in_second_file(block) == second]


def run_example(block: str, tmp_path, capsys) -> str:
    """Run one README block as a user would (its /tmp folders moved into ``tmp_path``); its stdout."""
    code = block.replace("/tmp/digits_model", str(tmp_path / "digits_model")).replace(
        "/tmp/digits_recipe", str(tmp_path / "digits_recipe"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exec(compile(code, "README.md", "exec"), {})
    out = capsys.readouterr().out
    if "/tmp/digits_model" in block:  # the first example: explain, top_k and the int8 export did their work
        assert "(8, 8)" in out and "'probability'" in out
        assert (tmp_path / "digits_model" / "model_int8.tflite").is_file()
    return out


def test_every_example_runs_once_and_both_files_have_some():
    blocks = python_blocks()
    assert blocks, "README.md has no Python example"
    assert len(examples(False)) + len(examples(True)) == len(blocks)
    assert examples(False) and examples(True), f"move a module in or out of SECOND_FILE {SECOND_FILE}"
    assert sum("/tmp/digits_model" in block for block in blocks) == 1  # the block run_example checks further
    assert "examples(True)" in (REPO / "tests" / "test_readme_examples.py").read_text()


@pytest.mark.parametrize("block", examples(False))
def test_readme_python_example_runs(block, tmp_path, capsys):
    assert run_example(block, tmp_path, capsys).strip(), "every example prints what it shows"


def test_readme_shows_the_two_commands_first():
    text = (REPO / "README.md").read_text()
    first_block = re.search(r"```bash\n(.*?)```", text, flags=re.S).group(1)
    assert "make demo" in first_block and "make test" in first_block
