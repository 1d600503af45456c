"""A run planned on a Provider keeps it (reviewer finding 3): a smoke test planned with providerRef
under an account that requires priced Providers, then edited to an inline producer at price 0 and
live, is promoted through the Provider at its price, never through the inline URL."""

from __future__ import annotations

from decimal import Decimal

import pytest
from kubernetes import client

from oxygen.devcluster.wait import wait_for
from tests.integration.test_providers import KEY, account, create, provider_manifest, secret
from tests.support.provider import Provider, echo
from tests.support.runs import Runs

pytestmark = pytest.mark.cluster

ITEMS = [{"rowId": f"r{i}", "inputs": {"domain": f"d{i}.example"}} for i in range(3)]


def test_a_smoke_test_on_a_provider_is_promoted_through_it_whatever_the_spec_says_later(
    runs: Runs, api: client.ApiClient
) -> None:
    secret(api, runs.ns, "clearbit-key", {"X-Api-Key": KEY})
    account(api, runs.ns, "100", require=True)
    with Provider(echo(), required_headers={"X-Api-Key": KEY}) as priced, Provider(echo()) as free:
        create(api, runs.ns, "providers", provider_manifest("clearbit", priced.url))
        spec = {
            "items": ITEMS,
            "producer": {"providerRef": {"name": "clearbit"}},
            "mode": "smoke_test",
            "smokeTest": {"sampleSize": 1},
        }
        runs.create("sampled", spec)
        runs.wait_phase("sampled", "succeeded", "completed")
        assert runs.status("sampled")["plannedProvider"] == "clearbit"
        inline = {"providerRef": None, "provider": "free", "http": {"url": free.url}, "costPerItem": "0"}
        runs.patch("sampled", {"producer": inline, "mode": "live"})
        wait_for(
            lambda: (
                len(runs.status("sampled").get("rounds") or []) == 2
                and runs.status("sampled").get("phase") in ("succeeded", "completed", "failed")
                and runs.status("sampled")
            ),
            timeout=120,
            what="the promotion round to finish",
        )
        priced_calls, free_calls = len(priced.calls), len(free.calls)
    status = runs.status("sampled")
    assert status["phase"] == "succeeded", status
    assert status["itemsSucceeded"] == 3
    assert (priced_calls, free_calls) == (3, 0)
    assert Decimal(status["creditsUsed"]) == Decimal(6)  # the Provider's price, every item
