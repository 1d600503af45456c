"""The webhook's guards without a cluster: authentication answers, the TTL cache, the token bucket.

The Workflow and Secret come from the webhook's cache, filled here: no API call is made (a Kube with
no reachable server would fail the test if one were)."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from oxygen.controllers.workflow.webhook import Hooks, authenticate, webhook_run_name
from oxygen.controllers.workflow.webhook_guard import RateLimiter, TtlCache, WebhookSettings, retry_after
from oxygen.kube.client import Kube
from tests.support.workflow_builders import NAMESPACE, workflow

TOKEN = "s3cret"


class Ticks:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def unreachable_kube() -> Kube:
    from kubernetes import client

    config = client.Configuration()
    config.host = "https://127.0.0.1:1"
    return Kube(client.ApiClient(config), timeout=(0.1, 0.1))


def hooks_with(entries: dict[str, dict[str, Any] | None], secret: dict[str, str] | None) -> Hooks:
    hooks = Hooks.create(unreachable_kube(), WebhookSettings(cache_seconds=60))
    for name, body in entries.items():
        hooks.workflows.put((NAMESPACE, name), body)
    hooks.secrets.put((NAMESPACE, "hook"), secret)
    return hooks


HOOKED = workflow("hooked", triggers={"webhook": {"tokenSecretRef": {"name": "hook"}}})
PLAIN = workflow("plain")
ENCODED = {"token": base64.b64encode(f"{TOKEN}\n".encode()).decode()}


@pytest.mark.parametrize(
    ("case", "name", "presented", "secret", "ok"),
    [
        ("the right token", "hooked", TOKEN, ENCODED, True),
        ("a wrong token", "hooked", "nope", ENCODED, False),
        ("no token", "hooked", None, ENCODED, False),
        ("no such workflow", "missing", TOKEN, ENCODED, False),
        ("no webhook trigger", "plain", TOKEN, ENCODED, False),
        ("no such Secret", "hooked", TOKEN, None, False),
        ("no such key", "hooked", TOKEN, {"other": ENCODED["token"]}, False),
        ("a name that cannot exist", "Not_A_Name", TOKEN, ENCODED, False),
    ],
)
def test_authenticate(
    case: str, name: str, presented: str | None, secret: dict[str, str] | None, ok: bool
) -> None:
    hooks = hooks_with({"hooked": HOOKED, "plain": PLAIN, "missing": None}, secret)
    found = authenticate(hooks, NAMESPACE, name, presented)
    assert (found is not None) is ok, case
    if found is not None:
        assert found[0]["metadata"]["name"] == "hooked"


def test_the_cache_keeps_values_and_absences_for_the_ttl_only() -> None:
    ticks = Ticks()
    cache: TtlCache[str] = TtlCache(10, ticks, max_entries=2)
    assert cache.get(("ns", "a")) == (False, None)
    cache.put(("ns", "a"), "A")
    cache.put(("ns", "gone"), None)
    ticks.now = 9.9
    assert cache.get(("ns", "a")) == (True, "A")
    assert cache.get(("ns", "gone")) == (True, None)
    ticks.now = 10.0
    assert cache.get(("ns", "a")) == (False, None)  # a rotated token is read again after the TTL
    cache.put(("ns", "b"), "B")
    cache.put(("ns", "c"), "C")
    assert cache.get(("ns", "a"))[0] is False and cache.get(("ns", "b")) == (True, "B")  # bounded


def test_the_token_bucket_allows_a_burst_then_the_rate_per_key() -> None:
    ticks = Ticks()
    limiter = RateLimiter(rate=2, burst=3, clock=ticks)
    assert [limiter.take(("ns", "a")) for _ in range(3)] == [0, 0, 0]
    wait = limiter.take(("ns", "a"))
    assert wait == pytest.approx(0.5)
    assert retry_after(wait) == "1"
    assert limiter.take(("ns", "b")) == 0  # another workflow has its own bucket
    ticks.now = 0.5
    assert limiter.take(("ns", "a")) == 0
    assert limiter.take(("ns", "a")) > 0
    ticks.now = 100
    assert [limiter.take(("ns", "a")) for _ in range(4)][:3] == [0, 0, 0]  # refilled to the burst, no more


def test_retry_after_is_whole_seconds_at_least_one() -> None:
    assert retry_after(0.01) == "1"
    assert retry_after(2.2) == "3"
    assert retry_after(float("inf")) == "3600"


def test_webhook_run_names_are_random_and_fit() -> None:
    names = {webhook_run_name("hooked") for _ in range(50)}
    assert len(names) == 50
    assert all(n.startswith("hooked-") and len(n) == len("hooked-") + 5 for n in names)
    assert len(webhook_run_name("x" * 80)) <= 63
