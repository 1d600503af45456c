"""`oxygen providers list|get` against the real API server: each `--json` answer checked against the
stored Provider, the table like kubectl's, and the exit codes of the README (3: not found)."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client

from oxygen.api.common import GROUP, VERSION
from oxygen.devcluster.wait import wait_for
from tests.integration.test_cli import Cli
from tests.integration.test_providers import create, provider_manifest
from tests.support.provider import Provider, echo, with_latency
from tests.support.runs import Runs

pytestmark = pytest.mark.cluster

ITEMS = [{"rowId": f"r{i}", "inputs": {"i": i}} for i in range(200)]


@pytest.fixture
def cli(cluster: Any, runs: Runs) -> Cli:
    return Cli(cluster, runs.ns)


def stored(api: client.ApiClient, ns: str, name: str) -> dict[str, Any]:
    body: dict[str, Any] = client.CustomObjectsApi(api).get_namespaced_custom_object(
        GROUP, VERSION, ns, "providers", name
    )
    return body


def test_providers_list_and_get(cli: Cli, runs: Runs, api: client.ApiClient) -> None:
    assert cli.json("providers", "list") == []
    with Provider(with_latency(1.0, echo())) as slow:
        limited = provider_manifest("clearbit", slow.url + "v2/company?x=1", price="2.5", secret=None)
        limited["spec"].update(rateLimit={"requestsPerSecond": 50, "burst": 10}, maxInFlight=200)
        create(api, runs.ns, "providers", limited)
        create(api, runs.ns, "providers", provider_manifest("plain", "http://127.0.0.1:9/", secret=None))
        # A run using clearbit (1 s a call, one at a time: minutes of work), seen by its controller.
        runs.create(
            "busy", {"items": ITEMS, "producer": {"providerRef": {"name": "clearbit"}, "concurrency": 1}}
        )
        wait_for(
            lambda: (stored(api, runs.ns, "clearbit").get("status") or {}).get("runs") == 1,
            timeout=120,
            what="the Provider's status to count the run",
        )
        listed = cli.json("providers", "list")
        got = cli.json("providers", "get", "clearbit")
        table = cli("providers", "list")
        runs.patch("busy", {"cancel": True})
    host = slow.url.split("//")[1].split("/")[0]
    assert [p["name"] for p in listed] == ["clearbit", "plain"]
    clearbit = listed[0]
    assert {
        k: clearbit[k] for k in ("name", "namespace", "url_host", "price", "rate_limit", "max_in_flight")
    } == {
        "name": "clearbit",
        "namespace": runs.ns,
        "url_host": host,
        "price": "2.5",
        "rate_limit": {"requests_per_second": 50, "burst": 10},
        "max_in_flight": 200,
    }
    assert clearbit["runs"] == got["runs"] == 1
    assert isinstance(clearbit["requests_per_second"], float | int) and isinstance(clearbit["in_flight"], int)
    assert {k: got[k] for k in ("name", "url_host", "price", "rate_limit", "max_in_flight")} == {
        k: clearbit[k] for k in ("name", "url_host", "price", "rate_limit", "max_in_flight")
    }
    assert listed[1]["url_host"] == "127.0.0.1:9" and listed[1]["rate_limit"] is None
    assert table.returncode == 0, table.stderr
    header, *rows = table.stdout.splitlines()
    assert header.split()[:3] == ["NAME", "HOST", "PRICE"] and "RATE LIMIT" in header
    assert rows[0].split()[:5] == ["clearbit", host, "2.5", "50/s", "200"]
    assert rows[1].split()[:3] == ["plain", "127.0.0.1:9", "2"]

    missing = cli("providers", "get", "nope")
    assert missing.returncode == 3 and missing.stdout == ""
    assert missing.stderr == f'error: provider "nope" not found in namespace "{runs.ns}"\n'
    assert cli("providers", "get").returncode == 2
    everywhere = cli.json("providers", "list", "-A", namespaced=False)
    assert {(p["namespace"], p["name"]) for p in everywhere} >= {(runs.ns, "clearbit"), (runs.ns, "plain")}
