"""The task contract (tests/test_contract.py) for object_detector: its own file so that the two workers can share the long cases."""

from __future__ import annotations

from test_contract import check_contract


def test_contract_object_detector(tmp_path):
    check_contract("object_detector", tmp_path)
