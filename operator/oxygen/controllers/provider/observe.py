"""Observe: the runs and shards using a Provider (compact views for the indexes), and the one read a
pass makes (whether the Provider's header Secret exists, metadata only)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from oxygen.api.labels import LABEL_PROVIDER
from oxygen.api.provider import Provider, ProviderStatus
from oxygen.api.run import TERMINAL_PHASES
from oxygen.controllers.run.observe import Reader as RunReader
from oxygen.controllers.run.observe import now, shard_run
from oxygen.execution.producers import DEFAULT_CONCURRENCY, DEFAULT_HTTP_CONCURRENCY
from oxygen.execution.ratelimit import Share, share_of
from oxygen.kube.client import Kube

# The Secret is looked up again this often (at once when the spec changed or it was missing).
SECRET_RECHECK_SECONDS = 30.0


@dataclass(frozen=True)
class RunUse:
    """A Run that names the Provider (spec.producer.providerRef)."""

    uid: str
    active: bool


@dataclass(frozen=True)
class ShardUse:
    """A shard that calls the Provider (labelled by planning), with the counts its worker reports."""

    name: str
    done: bool
    running: int
    attempts: int
    throttled: int
    # For the allocator (shares.py): the run, its concurrency (the run's weight), whether a worker
    # has started, the calls and 429s it counted, and the share written into its annotation.
    run_uid: str = ""
    concurrency: int = 1
    started: bool = False
    calls: int = 0
    throttled_calls: int = 0
    share: Share | None = None
    share_seen: int | None = None


def run_use(body: Mapping[str, Any]) -> tuple[str, RunUse] | None:
    """(Provider name, use) for a Run naming a Provider; None for any other Run."""
    producer = (body.get("spec") or {}).get("producer") or {}
    name = (producer.get("providerRef") or {}).get("name")
    if not name:
        return None
    phase = (body.get("status") or {}).get("phase") or "queued"
    return str(name), RunUse(uid=str(body["metadata"].get("uid") or ""), active=phase not in TERMINAL_PHASES)


def shard_use(body: Mapping[str, Any]) -> tuple[str, ShardUse] | None:
    """(Provider name, use) for a shard a Run controls; None for any other RunShard.

    Only the operator's own shards count: one whose controller is not the Run its spec.runUid names
    (a RunShard anyone with create rights could write) takes no share of the Provider's limits.
    """
    name = ((body.get("metadata") or {}).get("labels") or {}).get(LABEL_PROVIDER)
    if not name or shard_run(body) is None:
        return None
    status = body.get("status") or {}
    summary = status.get("summary") or {}
    spec = body.get("spec") or {}
    producer = spec.get("producer") or {}
    concurrency = producer.get("concurrency") or (
        DEFAULT_HTTP_CONCURRENCY if producer.get("http") else DEFAULT_CONCURRENCY
    )
    return str(name), ShardUse(
        name=str(body["metadata"]["name"]),
        done=status.get("phase") in ("Succeeded", "Failed"),
        running=int(summary.get("running") or 0),
        attempts=int(summary.get("attempts") or 0),
        throttled=int((summary.get("errorClasses") or {}).get("http_429") or 0),
        run_uid=str(spec.get("runUid") or ""),
        concurrency=max(1, int(concurrency)),
        started=status.get("phase") == "Running" or bool(status.get("startedAt")),
        calls=int(summary.get("calls") or 0),
        throttled_calls=int(summary.get("throttledCalls") or 0),
        share=share_of(body["metadata"].get("annotations") or {}),
        share_seen=status.get("rateShareEpoch"),
    )


@dataclass
class ProviderState:
    """What a Provider's daemon remembers between passes."""

    written: ProviderStatus
    # The attempts summed over its shards at the last pass, and when: the rate is their difference.
    attempts: int | None = None
    at: float = 0.0
    secret: bool | None = None
    secret_checked: float | None = None
    secret_generation: int = 0
    # The rate the allocator shares out now (shares.py), shown in status.
    effective: float | None = None

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> ProviderState:
        return cls(written=ProviderStatus.model_validate(body.get("status") or {}))


@dataclass(frozen=True)
class Observed:
    provider: Provider
    runs: list[RunUse]
    shards: list[ShardUse]
    secret: bool | None  # the header Secret exists (None: no Secret named, or the operator may not tell)
    now: str
    clock: float


class Reader:
    def __init__(self, kube: Kube) -> None:
        self.runs = RunReader(kube)

    def observe(
        self, body: dict[str, Any], runs: list[RunUse], shards: list[ShardUse], state: ProviderState
    ) -> Observed:
        provider = Provider.model_validate(body)
        clock = time.monotonic()
        headers = provider.spec.http.headers_from
        if headers is None:
            state.secret = None
        elif (
            state.secret_checked is None
            or state.secret is False
            or state.secret_generation != provider.metadata.generation
            or clock - state.secret_checked >= SECRET_RECHECK_SECONDS
        ):
            state.secret = self.runs.secret_exists(provider.metadata.namespace, headers.secret_ref.name)
            state.secret_checked = clock
            state.secret_generation = provider.metadata.generation
        return Observed(provider, runs, shards, state.secret, now(), clock)
