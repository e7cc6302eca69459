"""The task contract (tests/test_contract.py) for date_translator: its own file so that the two workers can share the long cases."""

from __future__ import annotations

from test_contract import check_contract


def test_contract_date_translator(tmp_path):
    check_contract("date_translator", tmp_path)
