"""`oxygen providers list|get`: the shape of a Provider and its kubectl-like row."""

from __future__ import annotations

from typing import Any

import pytest

from oxygen.cli.main import build_parser
from oxygen.cli.providers import COLUMNS, provider_row, provider_shape, url_host

BODY: dict[str, Any] = {
    "metadata": {"name": "clearbit", "namespace": "team-a", "creationTimestamp": "2026-01-01T00:00:00Z"},
    "spec": {
        "http": {"url": "https://user:pw@enrich.example:8443/v2/company?key=k", "timeoutSeconds": 10},
        "price": "2",
        "rateLimit": {"requestsPerSecond": 50, "burst": 50},
        "maxInFlight": 200,
    },
    "status": {
        "runs": 2,
        "inFlight": 17,
        "requestsPerSecond": 41.5,
        "throttled": 3,
        "conditions": [{"type": "Ready", "status": "True", "reason": "Ready"}],
    },
}


def test_the_shape_names_host_price_limits_and_observed_use() -> None:
    shape = provider_shape(BODY)
    assert shape == {
        "name": "clearbit",
        "namespace": "team-a",
        "url_host": "enrich.example:8443",
        "price": "2",
        "rate_limit": {"requests_per_second": 50, "burst": 50},
        "max_in_flight": 200,
        "requests_per_second": 41.5,
        "in_flight": 17,
        "runs": 2,
        "throttled": 3,
        "ready": True,
        "created_at": "2026-01-01T00:00:00Z",
    }
    row = provider_row(shape, with_namespace=False)
    assert len(row) == len(COLUMNS)
    assert row[:8] == ["clearbit", "enrich.example:8443", "2", "50/s", 200, "41.5/s", 17, 2]
    assert provider_row(shape, with_namespace=True)[:2] == ["team-a", "clearbit"]


def test_a_provider_without_limits_or_status() -> None:
    shape = provider_shape({"metadata": {"name": "p"}, "spec": {"http": {"url": "http://127.0.0.1:9/"}}})
    assert (shape["url_host"], shape["price"], shape["rate_limit"], shape["max_in_flight"]) == (
        "127.0.0.1:9",
        "0",
        None,
        None,
    )
    assert (shape["requests_per_second"], shape["in_flight"], shape["runs"], shape["ready"]) == (
        0.0,
        0,
        0,
        None,
    )
    assert provider_row(shape, False)[3:6] == [None, None, "0/s"]


@pytest.mark.parametrize(
    ("url", "host"),
    [
        ("https://a.example/x", "a.example"),
        ("http://[::1]:8080/", "[::1]:8080"),
        ("http://a.example:notaport/", "a.example"),
        (None, None),
        ("", None),
    ],
)
def test_url_host(url: str | None, host: str | None) -> None:
    assert url_host(url) == host


def test_the_commands_parse() -> None:
    parser = build_parser()
    assert parser.parse_args(["providers", "list", "-A", "--json"]).command == "list"
    assert parser.parse_args(["providers", "get", "clearbit"]).name == "clearbit"
    with pytest.raises(SystemExit) as usage:
        parser.parse_args(["providers", "get"])
    assert usage.value.code == 2
