"""Issue 16, acceptance 2 and 3 (lean): the run-core, run-control, modes and credits acceptance tests,
unchanged, against an operator with `--item-store` (a real PostgreSQL). Their `runs.items()` reads the
store's rows (tests/support/item_store.py); RunShards carry a range and a summary only."""

from __future__ import annotations

import pytest

from tests.integration.test_credits import (
    test_cancel_releases_and_dry_run_only_estimates,
    test_concurrent_runs_with_operator_sigkill_keep_the_identity,
    test_failed_items_release_their_reservation,
    test_provider_reported_fractional_costs_are_exact,
    test_reserve_during_the_run_and_capture_at_the_end,
)
from tests.integration.test_run_control import (
    test_operator_sigkilled_three_times_loses_and_double_counts_nothing,
    test_pause_and_resume_with_kubectl_patch,
    test_pause_resume_and_cancel_by_reapplying_the_manifest,
    test_retry_failed_reexecutes_only_the_failed_items,
)
from tests.integration.test_run_core import test_echo_run_of_250_items_in_5_shards
from tests.integration.test_run_resilience import test_worker_pod_killed_mid_shard_is_replaced_and_resumes
from tests.integration.test_run_sources_and_modes import (
    test_dry_run_calls_nothing_and_creates_no_job,
    test_items_from_jsonl_and_csv,
    test_smoke_test_then_promotion_runs_exactly_the_rest,
)
from tests.integration.test_run_throughput import test_retry_acceptance_holds_with_32_in_flight
from tests.support.item_store import StoreRuns
from tests.support.operator_process import OperatorProcess

pytestmark = pytest.mark.cluster

__all__ = [
    "test_cancel_releases_and_dry_run_only_estimates",
    "test_concurrent_runs_with_operator_sigkill_keep_the_identity",
    "test_dry_run_calls_nothing_and_creates_no_job",
    "test_echo_run_of_250_items_in_5_shards",
    "test_failed_items_release_their_reservation",
    "test_items_from_jsonl_and_csv",
    "test_operator_sigkilled_three_times_loses_and_double_counts_nothing",
    "test_pause_and_resume_with_kubectl_patch",
    "test_pause_resume_and_cancel_by_reapplying_the_manifest",
    "test_provider_reported_fractional_costs_are_exact",
    "test_reserve_during_the_run_and_capture_at_the_end",
    "test_retry_acceptance_holds_with_32_in_flight",
    "test_retry_failed_reexecutes_only_the_failed_items",
    "test_smoke_test_then_promotion_runs_exactly_the_rest",
    "test_worker_pod_killed_mid_shard_is_replaced_and_resumes",
]


@pytest.fixture(scope="module")
def operator(store_operator: OperatorProcess) -> OperatorProcess:
    """The tests' operator is the one with the item store (the SIGKILL test kills this one)."""
    return store_operator


@pytest.fixture
def runs(store_runs: StoreRuns) -> StoreRuns:
    return store_runs
