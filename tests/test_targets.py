"""The issue's numbers, as measured by `make bench` (which runs this after the benchmarks)."""

from __future__ import annotations

import pytest

from benchmarks.run import _benchmarks, results


@pytest.mark.slow
def test_every_benchmark_has_results():
    assert set(_benchmarks()) <= set(results()), "run `make bench`"


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(_benchmarks()))
def test_targets_are_met(name):
    result = results().get(name)
    if result is None:
        pytest.fail(f"no results for {name}; run `make bench`")
    failed = [f"{row['name']}: {row['measured']} (goal {row['goal']})" for row in result["rows"] if not row["passed"]]
    assert not failed, failed
