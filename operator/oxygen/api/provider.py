"""The Provider resource: an admin-owned endpoint, its header Secret, its price and its limits.

A Run names it (`spec.producer.providerRef`) instead of carrying a URL and a price of its own, so a
tenant who may create Runs but not Providers cannot set what a call costs, nor point a metered run
at a server of her choosing. The operator resolves the Provider when it plans a run: the shards carry
the resolved http producer (URL, timeout, headers Secret by reference, price), as they did before.
"""

from __future__ import annotations

from decimal import Decimal

from pydantic import Field

from oxygen.api.common import Condition, Credits, HttpUrl, Model, ObjectMeta
from oxygen.api.run import Cache, HeadersFrom, Retry


class ProviderHttp(Model):
    url: HttpUrl
    timeout_seconds: float = Field(default=10, gt=0, le=3600)
    headers_from: HeadersFrom | None = None


class RateLimit(Model):
    """Across every shard of every run using the Provider."""

    requests_per_second: float = Field(gt=0, le=100000)
    burst: int = Field(default=1, ge=1, le=100000)


class ProviderSpec(Model):
    http: ProviderHttp
    # Credits per successful call when the provider reports none (X-Credits-Used wins).
    price: Credits = Decimal(0)
    rate_limit: RateLimit | None = None
    max_in_flight: int | None = Field(default=None, ge=1, le=100000)
    # Defaults a Run may tighten (fewer attempts, longer backoff), never widen.
    retry: Retry = Field(default_factory=Retry, json_schema_extra={"default": {}})
    # Never pay twice: the default cache of runs naming this Provider (a Run's own wins).
    cache: Cache | None = None


class ProviderStatus(Model):
    """Observed, for humans and alerts."""

    runs: int = 0
    in_flight: int = 0
    requests_per_second: float = 0.0
    throttled: int = 0
    # The rate the allocator shares out now: rateLimit, lowered after 429s, recovering without them.
    effective_requests_per_second: float | None = None
    observed_generation: int = 0
    conditions: list[Condition] = Field(default_factory=list)


class Provider(Model):
    api_version: str = "oxygen.dev/v1alpha1"
    kind: str = "Provider"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: ProviderSpec
    status: ProviderStatus = Field(default_factory=ProviderStatus)


def tightened(run_retry: Retry, provider_retry: Retry) -> Retry:
    """The Run's retry within the Provider's: at most its attempts, at least its backoff."""
    return Retry(
        max_attempts=min(run_retry.max_attempts, provider_retry.max_attempts),
        backoff_seconds=max(run_retry.backoff_seconds, provider_retry.backoff_seconds),
    )
