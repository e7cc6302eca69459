"""The README's Python examples run as written."""

from __future__ import annotations

import re
import warnings

from conftest import REPO


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", (REPO / "README.md").read_text(), flags=re.S)


def test_readme_python_examples_run(tmp_path, capsys):
    blocks = python_blocks()
    assert blocks, "README.md has no Python example"
    for block in blocks:
        code = block.replace("/tmp/digits_model", str(tmp_path / "digits_model")).replace(
            "/tmp/digits_recipe", str(tmp_path / "digits_recipe"))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            exec(compile(code, "README.md", "exec"), {})
    out = capsys.readouterr().out
    assert "(8, 8)" in out and "'probability'" in out
    assert (tmp_path / "digits_model" / "model_int8.tflite").is_file()


def test_readme_shows_the_two_commands_first():
    text = (REPO / "README.md").read_text()
    first_block = re.search(r"```bash\n(.*?)```", text, flags=re.S).group(1)
    assert "make demo" in first_block and "make test" in first_block
