"""preflight.py and its use in planning: Providers resolved into what the shards carry, what a run
names checked before anything runs, retries tightened, and runs that set their own price refused
where the account requires Providers."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from oxygen.api.provider import Provider
from oxygen.api.run import Retry
from oxygen.api.runshard import RunShard
from oxygen.api.workflow import Workflow
from oxygen.controllers.run import credits, plan, preflight, rounds
from oxygen.controllers.run.types import RunFailure
from oxygen.execution.jobs import WorkerDefaults, shard_job
from oxygen.planning.rounds import initial_groups, shard_bodies
from tests.support import builders as b

CLEARBIT = b.provider()
FOUND = {"clearbit": CLEARBIT}
SECRETS_OK = {"clearbit-key": True}
HTTP = {"provider": "inline", "http": {"url": "http://x/", "headersFrom": {"secretRef": {"name": "own"}}}}


def workflow(*producers: dict[str, Any]) -> Workflow:
    steps = [{"name": f"s{k}", "producer": p} for k, p in enumerate(producers)]
    return Workflow.model_validate({"metadata": {"name": "wf", "namespace": b.NS}, "spec": {"steps": steps}})


WF_RUN = {"kind": "workflow", "workflowRef": {"name": "wf"}}
INGESTION = {
    "kind": "ingestion",
    "ingestion": {
        "provider": "p",
        "url": "http://x/",
        "query": "q",
        "headersFrom": {"secretRef": {"name": "pages"}},
    },
}


def test_a_provider_ref_becomes_the_providers_http_call_and_price() -> None:
    run = b.run(producer=b.provider_ref(), retry={"maxAttempts": 5, "backoffSeconds": 0.5})
    resolved = plan.resolve(run, plan.Sources(providers=FOUND, secrets=SECRETS_OK))
    producer = resolved.shape.producer
    assert producer is not None and producer.http is not None and producer.http.headers_from is not None
    assert (producer.provider, producer.http.url, producer.http.timeout_seconds) == (
        "clearbit",
        "https://enrich.example/v2/company",
        7,
    )
    assert producer.http.headers_from.secret_ref.name == "clearbit-key"
    assert producer.provider_ref is None
    assert resolved.unit_cost == producer.cost_per_item == Decimal(2)
    # The Provider's defaults (3 attempts, 1 s) tighten the run's 5 attempts, 0.5 s.
    assert resolved.shape.retry == Retry(max_attempts=3, backoff_seconds=1)
    assert resolved.unpriced == ()


def test_the_shards_and_job_carry_the_resolved_provider_and_its_secret_by_reference() -> None:
    body = b.run_body(producer=b.provider_ref())
    run = b.run(producer=b.provider_ref())
    resolved = plan.resolve(run, plan.Sources(providers=FOUND, secrets=SECRETS_OK))
    (shard_body,) = shard_bodies(body, run.spec, 0, initial_groups(run.spec, resolved.items), resolved.shape)
    shard_body["metadata"]["uid"] = "shard-uid"
    shard = RunShard.model_validate(shard_body)
    assert shard.spec.producer.provider == "clearbit" and shard.spec.producer.cost_per_item == Decimal(2)
    job = shard_job(run, shard, shard_body, False, WorkerDefaults())
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert [e["secretRef"]["name"] for e in container["envFrom"]] == ["clearbit-key"]


@pytest.mark.parametrize(
    ("run_retry", "provider_retry", "expected"),
    [
        ((3, 1.0), (5, 0.5), (3, 1.0)),  # the run is tighter: kept
        ((3, 1.0), (2, 4.0), (2, 4.0)),  # the run may not widen: the Provider's
        ((1, 0.0), (3, 1.0), (1, 1.0)),  # each field on its own
    ],
)
def test_a_run_may_tighten_a_providers_retry_not_widen_it(
    run_retry: tuple[int, float], provider_retry: tuple[int, float], expected: tuple[int, float]
) -> None:
    provider = b.provider(retry={"maxAttempts": provider_retry[0], "backoffSeconds": provider_retry[1]})
    declared = [preflight.Use("spec.producer", b.run(producer=b.provider_ref()).spec.producer)]  # type: ignore[arg-type]
    got = preflight.retry(
        Retry(max_attempts=run_retry[0], backoff_seconds=run_retry[1]), declared, {"clearbit": provider}
    )
    assert (got.max_attempts, got.backoff_seconds) == expected


@pytest.mark.parametrize(
    ("spec", "sources", "reason", "message"),
    [
        (
            {"producer": b.provider_ref()},
            plan.Sources(providers={"clearbit": None}),
            "ProviderNotFound",
            'providers.oxygen.dev "clearbit" not found (spec.producer.providerRef)',
        ),
        (
            {"producer": b.provider_ref()},
            plan.Sources(providers=FOUND, secrets={"clearbit-key": False}),
            "SecretNotFound",
            'secrets "clearbit-key" not found (Provider clearbit\'s spec.http.headersFrom.secretRef)',
        ),
        (
            {"producer": HTTP},
            plan.Sources(secrets={"own": False}),
            "SecretNotFound",
            'secrets "own" not found (spec.producer.http.headersFrom.secretRef)',
        ),
        (
            INGESTION,
            plan.Sources(secrets={"pages": False}),
            "SecretNotFound",
            'secrets "pages" not found (spec.ingestion.headersFrom.secretRef)',
        ),
        (
            WF_RUN,
            plan.Sources(workflow=workflow(b.ECHO, HTTP), secrets={"own": False}),
            "SecretNotFound",
            'secrets "own" not found (Workflow wf\'s spec.steps[s1].producer.http.headersFrom.secretRef)',
        ),
        (
            WF_RUN,
            plan.Sources(workflow=workflow(b.provider_ref("gone")), providers={"gone": None}),
            "ProviderNotFound",
            'providers.oxygen.dev "gone" not found (Workflow wf\'s spec.steps[s0].producer.providerRef)',
        ),
    ],
    ids=["provider", "providers-secret", "runs-secret", "ingestion-secret", "step-secret", "step-provider"],
)
def test_what_a_run_names_must_exist(
    spec: dict[str, Any], sources: plan.Sources, reason: str, message: str
) -> None:
    with pytest.raises(RunFailure) as failure:
        plan.resolve(b.run(**spec), sources)
    assert (failure.value.reason, failure.value.message) == (reason, message)


def test_a_secret_the_operator_may_not_check_does_not_fail_the_run() -> None:
    resolved = plan.resolve(b.run(producer=HTTP), plan.Sources(secrets={"own": None}))
    assert len(resolved.items) == 3


@pytest.mark.parametrize(
    ("spec", "sources", "unpriced"),
    [
        ({"producer": b.provider_ref()}, plan.Sources(providers=FOUND, secrets=SECRETS_OK), ()),
        ({}, plan.Sources(), ()),  # builtin echo calls nothing
        ({"producer": {**HTTP, "costPerItem": "0"}}, plan.Sources(), ("spec.producer",)),
        ({"producer": {"provider": "sh", "command": ["true"]}}, plan.Sources(), ("spec.producer",)),
        (INGESTION, plan.Sources(), ("spec.ingestion",)),
        (
            WF_RUN,
            plan.Sources(workflow=workflow(b.provider_ref(), HTTP), providers=FOUND, secrets=SECRETS_OK),
            ("Workflow wf's spec.steps[s1].producer",),
        ),
    ],
    ids=["provider", "builtin", "inline-http", "command", "ingestion", "workflow-step"],
)
def test_unpriced_producers_are_named(
    spec: dict[str, Any], sources: plan.Sources, unpriced: tuple[str, ...]
) -> None:
    assert plan.resolve(b.run(**spec), sources).unpriced == unpriced


@pytest.mark.parametrize(
    ("snapshot", "refused"),
    [
        (b.priced_account(), True),
        (b.priced_account(require=False), False),
        (b.credit_snapshot("100"), False),
        (b.credit_snapshot(None, any_account=False), False),
    ],
    ids=["requires", "does-not-require", "default", "unmetered"],
)
def test_an_account_requiring_providers_refuses_a_run_that_sets_its_own_price(
    snapshot: Any, refused: bool
) -> None:
    run = b.run(producer={**HTTP, "costPerItem": "0"})
    resolved = plan.resolve(run, plan.Sources())
    if not refused:
        credits.require_priced(resolved, snapshot)
        return
    with pytest.raises(RunFailure) as failure:
        credits.require_priced(resolved, snapshot)
    assert failure.value.reason == "UnpricedProducer"
    assert "requires priced Providers" in failure.value.message and "spec.producer" in failure.value.message


def test_workflow_steps_resolve_their_providers_and_hold_the_dearest() -> None:
    wf = workflow(b.provider_ref(), {**b.ECHO, "costPerItem": "1"})
    resolved = plan.resolve(b.run(**WF_RUN), plan.Sources(workflow=wf, providers=FOUND, secrets=SECRETS_OK))
    first = resolved.items[0].producer
    assert first is not None and first.provider == "clearbit" and first.http is not None
    assert resolved.unit_cost == Decimal(2)


def test_a_later_round_of_a_provider_run_keeps_the_provider_as_planned() -> None:
    run = b.run(producer=b.provider_ref())
    resolved = plan.resolve(run, plan.Sources(providers=FOUND, secrets=SECRETS_OK))
    (body,) = shard_bodies(
        b.run_body(producer=b.provider_ref()),
        run.spec,
        0,
        initial_groups(run.spec, resolved.items),
        resolved.shape,
    )
    first = RunShard.model_validate(body).spec
    shape = rounds.later_shape(first, {}, run.spec)
    assert shape.producer == first.producer and shape.retry == first.retry
    # An inline producer is the spec's as it is now (fix the producer, then retry).
    assert rounds.later_shape(first, {}, b.run().spec).producer is None


def test_provider_model_defaults() -> None:
    provider = Provider.model_validate({"metadata": {"name": "p"}, "spec": {"http": {"url": "http://p/"}}})
    assert provider.spec.price == Decimal(0) and provider.spec.retry == Retry()
