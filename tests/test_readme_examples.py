"""The README's Python examples that import toolkit.nlp, toolkit.timeseries or toolkit.detection
(tests/test_readme.py's SECOND_FILE), from their own file so that the other worker can run them."""

from __future__ import annotations

import pytest

from test_readme import examples, run_example


@pytest.mark.parametrize("block", examples(True))
def test_readme_python_example_runs(block, tmp_path, capsys):
    assert run_example(block, tmp_path, capsys).strip(), "every example prints what it shows"
