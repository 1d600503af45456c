"""plan.py: resolving a run's items, round 0's groups and estimate, the initial Plan or the wait."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from oxygen.api.run import RunStatus
from oxygen.api.workflow import Workflow
from oxygen.controllers.run import plan
from oxygen.controllers.run.types import RunFailure
from oxygen.credits.gate import Decision, decide
from tests.support import builders as b

UNMETERED = Decision(metered=False, allowed=True, account=None, message="unmetered")
ITEMS_FROM = {"itemsFrom": {"configMapKeyRef": {"name": "rows", "key": "rows.jsonl"}}}
WORKFLOW = Workflow.model_validate(
    {
        "metadata": {"name": "wf", "namespace": b.NS},
        "spec": {
            "inputs": {"a": 1},
            "steps": [
                {"name": "one", "producer": {**b.ECHO, "costPerItem": "1"}},
                {"name": "two", "producer": {**b.ECHO, "costPerItem": "3"}},
            ],
        },
    }
)


@pytest.mark.parametrize(
    ("spec", "sources", "items", "sequence", "unit", "in_scope"),
    [
        ({}, plan.Sources(), 3, "independent", "0", 3),
        (
            ITEMS_FROM,
            plan.Sources(config_map={"rows.jsonl": '{"inputs": {"a": 1}}\n{"inputs": {"a": 2}}'}),
            2,
            "independent",
            "0",
            2,
        ),
        (
            {"kind": "workflow", "workflowRef": {"name": "wf"}, "inputs": {"b": 2}},
            plan.Sources(workflow=WORKFLOW),
            2,
            "steps",
            "3",
            2,
        ),
        (
            {
                "kind": "ingestion",
                "ingestion": {
                    "provider": "p",
                    "url": "http://x",
                    "query": "q",
                    "maxPages": 4,
                    "costPerPage": "2",
                },
            },
            plan.Sources(),
            1,
            "pages",
            "2",
            4,
        ),
    ],
    ids=["inline", "configmap", "workflow", "ingestion"],
)
def test_resolve(
    spec: dict[str, Any], sources: plan.Sources, items: int, sequence: str, unit: str, in_scope: int
) -> None:
    resolved = plan.resolve(b.run(**spec), sources)
    assert len(resolved.items) == items
    assert resolved.shape.sequence == sequence
    assert resolved.unit_cost == Decimal(unit)
    assert resolved.in_scope == in_scope


def test_workflow_context_merges_run_inputs_over_the_workflows() -> None:
    resolved = plan.resolve(
        b.run(kind="workflow", workflowRef={"name": "wf"}, inputs={"a": 9}), plan.Sources(workflow=WORKFLOW)
    )
    assert resolved.shape.context == {"inputs": {"a": 9}, "steps": {}}


@pytest.mark.parametrize(
    ("spec", "sources", "reason"),
    [
        ({"kind": "workflow", "workflowRef": {"name": "wf"}}, plan.Sources(), "WorkflowNotFound"),
        (ITEMS_FROM, plan.Sources(), "ItemsSourceNotFound"),
        (ITEMS_FROM, plan.Sources(config_map={"other": ""}), "ItemsSourceNotFound"),
        (ITEMS_FROM, plan.Sources(config_map={"rows.jsonl": "{not json"}), "ItemsSourceMalformed"),
    ],
    ids=["no-workflow", "no-configmap", "no-key", "malformed"],
)
def test_resolve_fails_the_run(spec: dict[str, Any], sources: plan.Sources, reason: str) -> None:
    with pytest.raises(RunFailure) as failure:
        plan.resolve(b.run(**spec), sources)
    assert failure.value.reason == reason


@pytest.mark.parametrize(
    ("spec", "groups", "estimate"),
    [
        ({"producer": {**b.ECHO, "costPerItem": "2"}}, [(3, True)], "6"),
        (
            {
                "mode": "smoke_test",
                "smokeTest": {"sampleSize": 1},
                "producer": {**b.ECHO, "costPerItem": "2"},
            },
            [(1, True), (2, False)],
            "2",
        ),
        ({"mode": "dry_run", "producer": {**b.ECHO, "costPerItem": "2"}}, [(3, False)], "6"),
    ],
    ids=["live", "smoke-test-holds-the-sample", "dry-run-estimates-all"],
)
def test_scope(spec: dict[str, Any], groups: list[tuple[int, bool]], estimate: str) -> None:
    run = b.run(**spec)
    found, amount = plan.scope(run, plan.resolve(run, plan.Sources()))
    assert [(len(g.items), g.execute) for g in found] == groups
    assert amount == Decimal(estimate)


def test_initial_plans_round_zero_with_identity_first_and_records_it() -> None:
    obs = b.observed(b.run_body(batchSize=2))
    status = RunStatus()
    run = obs.run
    result = plan.initial(obs, status, plan.resolve(run, plan.Sources()), UNMETERED, b.settings())
    assert [kind for kind, _ in result.worker_identity] == ["ServiceAccount", "Role", "RoleBinding"]
    role = result.worker_identity[1][1]
    assert role["rules"][0]["resourceNames"] == ["leads-r0-0000", "leads-r0-0001"]
    assert [s.body["metadata"]["name"] for s in result.shards] == ["leads-r0-0000", "leads-r0-0001"]
    assert all(s.initial_status is None for s in result.shards)
    assert result.status is status
    assert [(r.round, r.reason, r.items, r.shards) for r in status.rounds] == [(0, "initial", 3, 2)]
    assert status.started_at == b.NOW
    assert status.observed_generation == 1
    assert status.metered is False
    assert [e.reason for e in result.events] == ["Planned"]
    assert "parallelism 4" in result.events[0].message


def test_initial_with_a_fixed_worker_account_makes_no_identity() -> None:
    from oxygen.execution.jobs import WorkerDefaults

    obs = b.observed()
    settings = b.settings(worker=WorkerDefaults(service_account="shared"))
    result = plan.initial(obs, RunStatus(), plan.resolve(obs.run, plan.Sources()), UNMETERED, settings)
    assert result.worker_identity == []


def test_a_run_without_items_makes_no_identity() -> None:
    # An empty resourceNames list would grant the worker every RunShard of the namespace.
    obs = b.observed(b.run_body(items=[]))
    result = plan.initial(obs, RunStatus(), plan.resolve(obs.run, plan.Sources()), UNMETERED, b.settings())
    assert result.shards == []
    assert result.worker_identity == []


def test_dry_run_shards_carry_their_skipped_status() -> None:
    obs = b.observed(b.run_body(mode="dry_run"))
    result = plan.initial(obs, RunStatus(), plan.resolve(obs.run, plan.Sources()), UNMETERED, b.settings())
    assert len(result.shards) == 1
    initial = result.shards[0].initial_status
    assert initial is not None
    assert {i["status"] for i in initial["items"]} == {"skipped"}


def test_initial_caps_parallelism_and_says_so() -> None:
    obs = b.observed(b.run_body(parallelism=500))
    result = plan.initial(
        obs, RunStatus(), plan.resolve(obs.run, plan.Sources()), UNMETERED, b.settings(max_parallelism=10)
    )
    assert [e.reason for e in result.events] == ["Planned", "ParallelismCapped"]
    assert "parallelism 10" in result.events[0].message
    assert result.events[1].type == "Warning"
    assert "500" in result.events[1].message


def test_metered_plan_reserves_the_estimate() -> None:
    obs = b.observed(b.run_body(producer={**b.ECHO, "costPerItem": "2"}))
    decision = decide(b.credit_snapshot("100"), b.UID, Decimal(6))
    status = RunStatus()
    plan.initial(obs, status, plan.resolve(obs.run, plan.Sources()), decision, b.settings())
    assert status.metered is True
    assert status.credits_reserved == Decimal(6)
    assert status.credits_estimated == Decimal(6)
    assert [e.amount for e in status.ledger] == [Decimal(6)]


def test_dry_run_is_planned_even_when_credits_do_not_suffice() -> None:
    obs = b.observed(b.run_body(mode="dry_run", producer={**b.ECHO, "costPerItem": "50"}))
    decision = decide(b.credit_snapshot("10"), b.UID, Decimal(150))
    status = RunStatus()
    result = plan.initial(obs, status, plan.resolve(obs.run, plan.Sources()), decision, b.settings())
    assert status.rounds
    assert status.ledger == []
    assert result.status is status


def test_insufficient_credits_fail_when_the_account_says_so() -> None:
    obs = b.observed(b.run_body(producer={**b.ECHO, "costPerItem": "50"}))
    decision = decide(b.credit_snapshot("10", on_insufficient="fail"), b.UID, Decimal(150))
    with pytest.raises(RunFailure) as failure:
        plan.initial(obs, RunStatus(), plan.resolve(obs.run, plan.Sources()), decision, b.settings())
    assert failure.value.reason == "InsufficientCredits"


def _waiting(written: RunStatus, clock: float, last_write: float, available: str = "10") -> Any:
    obs = b.observed(
        b.run_body(producer={**b.ECHO, "costPerItem": "50"}),
        written=written,
        clock=clock,
        last_write=last_write,
    )
    decision = decide(b.credit_snapshot(available), b.UID, Decimal(150))
    status = written.model_copy(deep=True)
    return plan.initial(obs, status, plan.resolve(obs.run, plan.Sources()), decision, b.settings()), status


def test_a_run_waits_queued_and_says_so_once() -> None:
    first, status = _waiting(RunStatus(), clock=100.0, last_write=99.5)
    assert first.shards == []
    assert first.status is status
    assert status.phase == "queued"
    assert status.rounds == []
    assert [(e.reason, e.type) for e in first.events] == [("InsufficientCredits", "Warning")]
    # Next pass, waiting already written: nothing new to say, and no write while the figure is fresh.
    again, _ = _waiting(status, clock=101.0, last_write=100.0)
    assert again.status is None
    assert again.events == []
    # Much later, the available figure moved: written again, still without an Event.
    later, _ = _waiting(status, clock=200.0, last_write=100.0, available="20")
    assert later.status is not None
    assert later.events == []


def test_credit_account_missing_while_others_exist_waits() -> None:
    obs = b.observed()
    decision = decide(b.credit_snapshot(None, any_account=True), b.UID, Decimal(0))
    result = plan.initial(obs, RunStatus(), plan.resolve(obs.run, plan.Sources()), decision, b.settings())
    assert [e.reason for e in result.events] == ["CreditAccountNotFound"]
