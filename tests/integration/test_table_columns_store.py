"""The column runs over a Table of test_table_columns.py, with the operator's item store: failed
cells, `rows: empty`, retry-failed and a cell's history; never paying twice."""

from __future__ import annotations

import pytest

from tests.integration.test_table_columns import (
    crm,
    test_failed_cells_say_why_and_rows_empty_runs_only_them_with_history,
    test_never_pay_twice_for_the_same_inputs,
)
from tests.support.item_store import StoreRuns
from tests.support.operator_process import OperatorProcess

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

__all__ = [
    "crm",
    "test_failed_cells_say_why_and_rows_empty_runs_only_them_with_history",
    "test_never_pay_twice_for_the_same_inputs",
]


@pytest.fixture(scope="module")
def operator(store_operator: OperatorProcess) -> OperatorProcess:
    return store_operator


@pytest.fixture
def runs(store_runs: StoreRuns) -> StoreRuns:
    return store_runs
