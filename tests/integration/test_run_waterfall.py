"""A waterfall of Providers (issue 15, acceptance 3): per item, providers in order until one answers
non-empty; every item succeeds, its outputs name the provider that answered, and each provider's
calls, hits and credits are exact."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from kubernetes import client

from oxygen.api.common import GROUP, VERSION
from oxygen.devcluster.wait import wait_for
from tests.integration.test_providers import (
    ALICE,
    _enforced,
    alice,
    create,
    grant,
    provider_manifest,
    refusal,
    run_manifest,
)
from tests.support.provider import Provider, Reply, always, echo, inputs_of, with_credits
from tests.support.runs import Runs

pytestmark = pytest.mark.cluster

__all__ = ["alice"]  # the fixture, used by name

COUNT = 40
ITEMS = [{"rowId": f"r{i}", "inputs": {"n": i}} for i in range(COUNT)]


def half_empty(item_id: str, attempt: int, body: dict[str, Any]) -> Reply:
    """A: {} for even n, an answer for odd n."""
    n = inputs_of(body)["n"]
    return Reply(body={} if n % 2 == 0 else {"from": "a", "n": n})


def quarter_failing(item_id: str, attempt: int, body: dict[str, Any]) -> Reply:
    """B (reached by the even n only): 503 for n divisible by 8, an answer otherwise."""
    n = inputs_of(body)["n"]
    return always(503)(item_id, attempt, body) if n % 8 == 0 else Reply(body={"from": "b", "n": n})


def test_a_waterfall_stops_at_the_first_non_empty_answer(runs: Runs, api: client.ApiClient) -> None:
    with (
        Provider(half_empty) as a,
        Provider(quarter_failing) as b,
        Provider(with_credits("0.5", echo())) as c,
    ):
        create(api, runs.ns, "providers", provider_manifest("a", a.url, price="1", secret=None))
        create(api, runs.ns, "providers", provider_manifest("b", b.url, price="2", secret=None))
        create(api, runs.ns, "providers", provider_manifest("c", c.url, price="3", secret=None))
        waterfall = [{"providerRef": {"name": name}} for name in ("a", "b", "c")]
        runs.create(
            "falls",
            {
                "items": ITEMS,
                "producer": {"waterfall": waterfall, "until": "nonEmpty"},
                "retry": {"maxAttempts": 2, "backoffSeconds": 0.1},
            },
        )
        status = runs.wait_phase("falls", timeout=180)
        calls = {"a": len(a.calls), "b": len(b.calls), "c": len(c.calls)}
    assert status["phase"] == "succeeded", status
    items = runs.items("falls")
    by_n = {int(i["rowId"][1:]): i for i in items.values()}
    assert len(by_n) == COUNT and all(i["status"] == "succeeded" for i in by_n.values())
    for n, item in by_n.items():
        expected = "a" if n % 2 else ("c" if n % 8 == 0 else "b")
        assert item["outputs"]["provider"] == expected, (n, item["outputs"])
        if expected == "c":
            assert item["outputs"]["result"] == {"n": n}
        else:
            assert item["outputs"]["result"] == {"from": expected, "n": n}
    # A: every item, 20 hits, 1 each (empty answers are calls made). B: the 20 A left empty, 5 of
    # them failing twice (maxAttempts 2), 15 hits at 2. C: those 5, 0.5 each from X-Credits-Used.
    assert calls == {"a": 40, "b": 25, "c": 5}
    summaries = {p["provider"]: p for p in status["providers"]}
    assert {
        name: (p["attempts"], p["hits"], p["itemsSucceeded"], Decimal(p["creditsUsed"]))
        for name, p in summaries.items()
    } == {
        "a": (40, 20, 20, Decimal(40)),
        "b": (25, 15, 15, Decimal(30)),
        "c": (5, 5, 5, Decimal("2.5")),
    }
    assert Decimal(status["creditsUsed"]) == Decimal("72.5")
    assert sum(Decimal(i["creditsUsed"]) for i in by_n.values()) == Decimal("72.5")


def test_a_waterfall_names_only_providers_its_writer_may_get(
    runs: Runs, api: client.ApiClient, alice: client.ApiClient
) -> None:
    """alice may get Provider a, not b: a waterfall of a and b is refused, naming b; of a alone, allowed."""
    create(api, runs.ns, "providers", provider_manifest("a", "http://127.0.0.1:9/", secret=None))
    create(api, runs.ns, "providers", provider_manifest("b", "http://127.0.0.1:9/", secret=None))
    grant(
        api,
        runs.ns,
        "alice-a",
        ALICE,
        [{"apiGroups": [GROUP], "resources": ["providers"], "resourceNames": ["a"], "verbs": ["get"]}],
    )
    both = run_manifest(
        "both", {"waterfall": [{"providerRef": {"name": "a"}}, {"providerRef": {"name": "b"}}]}
    )
    wait_for(
        lambda: _enforced(
            lambda: client.CustomObjectsApi(alice).create_namespaced_custom_object(
                GROUP, VERSION, runs.ns, "runs", both, dry_run="All"
            )
        ),
        timeout=30,
        what="the admission policies to be enforced",
    )
    code, message = refusal(lambda: create(alice, runs.ns, "runs", both))
    assert code == 403, message
    expected = (
        f"Run both names Provider b (spec.producer.waterfall.providerRef), but {ALICE} may not get "
        f"providers b in namespace {runs.ns}"
    )
    assert expected in message, message
    only_a = run_manifest("only-a", {"waterfall": [{"providerRef": {"name": "a"}}]})
    client.CustomObjectsApi(alice).create_namespaced_custom_object(
        GROUP, VERSION, runs.ns, "runs", only_a, dry_run="All"
    )
