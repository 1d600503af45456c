"""Provider URLs: the CRD's rules (CEL url library) refuse at apply what a worker could not call;
the models check the same for objects built in Python. The rules are on what users write (Runs,
Workflows), not on RunShards (the operator copies URLs already checked)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from oxygen.api.common import PORT_MESSAGE, URL_MESSAGE
from oxygen.api.crdgen import RESOURCES, crd
from oxygen.api.run import HttpProducer


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://127.0.0.1:99999/x", PORT_MESSAGE),
        ("http://a:0/x", PORT_MESSAGE),
        ("http://", URL_MESSAGE),
        ("https:///path", URL_MESSAGE),
        ("ftp://host/x", URL_MESSAGE),
        ("host:8080/x", URL_MESSAGE),
        ("", "at least 1 character"),
    ],
)
def test_refused(url: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message.replace("(", r"\(").replace(")", r"\)")):
        HttpProducer(url=url)


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8080/x", "https://api.example.com", "http://[::1]:65535/", "http://h:1"]
)
def test_accepted(url: str) -> None:
    assert HttpProducer(url=url).url == url


def _url_rules(node: Any) -> int:
    if isinstance(node, list):
        return sum(_url_rules(n) for n in node)
    if not isinstance(node, dict):
        return 0
    own = sum("isURL(self)" in r["rule"] for r in node.get("x-kubernetes-validations", []))
    return own + sum(_url_rules(v) for v in node.values())


def test_rules_where_users_write_urls() -> None:
    counted = {r.kind: _url_rules(crd(r)) for r in RESOURCES}
    # Run: producer.http.url, producer.waterfall[].http.url, ingestion.url and itemsFrom.url.url;
    # Workflow: each step's (http and waterfall); Provider: spec.http.url.
    assert counted == {"Run": 8, "Workflow": 4, "Provider": 2, "RunShard": 0, "CreditAccount": 0, "Table": 0}
