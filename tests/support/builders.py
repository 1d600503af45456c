"""One way to build what the Run controller's decisions take: a Run, shard views and bodies, Job
views, a credit snapshot, an observed pass. Every unit test of controllers/run builds from here."""

from __future__ import annotations

import re
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from oxygen.api.common import API_VERSION
from oxygen.api.creditaccount import CreditAccount
from oxygen.api.provider import Provider
from oxygen.api.run import Run, RunStatus
from oxygen.api.runshard import ItemResult, RunShard, ShardSummary
from oxygen.controllers.run.types import Observed
from oxygen.credits.gate import CreditSnapshot
from oxygen.credits.ledger import RunShare
from oxygen.planning.names import shard_name
from oxygen.settings import OperatorSettings
from oxygen.status.shard import summarize
from oxygen.status.views import JobView, ShardView

NS = "team-a"
RUN = "leads"
UID = "run-uid-1"
NOW = "2026-01-01T00:00:00Z"
ECHO = {"provider": "echo", "builtin": "echo"}


def run_body(
    name: str = RUN,
    uid: str = UID,
    namespace: str = NS,
    status: RunStatus | dict[str, Any] | None = None,
    generation: int = 1,
    **spec: Any,
) -> dict[str, Any]:
    """A Run as the API server returns it; `spec` in camelCase, default: 3 inline echo items."""
    full = {"items": [{"inputs": {"i": i}} for i in range(3)], "producer": dict(ECHO), **spec}
    if full.get("kind") in ("workflow", "ingestion") or "itemsFrom" in spec:
        full.pop("items", None)
    if full.get("kind") in ("workflow", "ingestion"):
        full.pop("producer", None)
    wire = status.wire() if isinstance(status, RunStatus) else (status or {})
    return {
        "apiVersion": API_VERSION,
        "kind": "Run",
        "metadata": {"name": name, "namespace": namespace, "uid": uid, "generation": generation},
        "spec": full,
        "status": wire,
    }


def run(**kwargs: Any) -> Run:
    return Run.model_validate(run_body(**kwargs))


def shard_view(
    index: int = 0,
    round_: int = 0,
    execute: bool = True,
    phase: str = "Pending",
    run: str = RUN,
    **summary: Any,
) -> ShardView:
    """A shard as the index holds it; `summary` counts (pending=, succeeded=, failed=, …)."""
    return ShardView(
        name=shard_name(run, round_, index),
        round=round_,
        index=index,
        execute=execute,
        item_count=sum(v for k, v in summary.items() if isinstance(v, int)),
        provider="echo",
        phase=phase,
        summary=ShardSummary(**summary),
        uid=shard_uid(shard_name(run, round_, index)),
    )


def shards(*views: ShardView) -> dict[str, ShardView]:
    return {v.name: v for v in views}


def shard_body(
    owner: dict[str, Any] | None = None,
    round_: int = 0,
    index: int = 0,
    items: Sequence[str] = (),
    execute: bool = True,
    skip_reason: str | None = None,
    sequence: str = "independent",
    ids: Sequence[str] | None = None,
    **result: Any,
) -> dict[str, Any]:
    """A RunShard body owned by `owner` (a run_body); `items` are the item statuses ("" = no status yet)."""
    owner = owner or run_body()
    meta = owner["metadata"]
    ids = list(ids) if ids is not None else [str(k) for k in range(len(items))]
    results = [ItemResult(id=i, status=s, **result) for i, s in zip(ids, items, strict=True) if s]
    return {
        "apiVersion": API_VERSION,
        "kind": "RunShard",
        "metadata": {
            "name": shard_name(meta["name"], round_, index),
            "namespace": meta["namespace"],
            "uid": shard_uid(shard_name(meta["name"], round_, index)),
            "resourceVersion": "7",
            "ownerReferences": [
                {
                    "apiVersion": API_VERSION,
                    "kind": "Run",
                    "name": meta["name"],
                    "uid": meta["uid"],
                    "controller": True,
                }
            ],
        },
        "spec": {
            "runName": meta["name"],
            "runUid": meta["uid"],
            "round": round_,
            "index": index,
            "execute": execute,
            "skipReason": skip_reason,
            "producer": dict(ECHO),
            "retry": {},
            "sequence": sequence,
            "items": [{"id": i, "inputs": {"n": i}} for i in ids],
        },
        "status": {
            "phase": "Succeeded"
            if results and all(r.status in ("succeeded", "failed", "skipped") for r in results)
            else "Pending",
            "items": [r.wire() for r in results],
            "summary": summarize(results).wire(),
        },
    }


def shard(*args: Any, **kwargs: Any) -> RunShard:
    return RunShard.model_validate(shard_body(*args, **kwargs))


def shard_uid(name: str) -> str:
    return f"uid-{name}"


def job_view(name: str, **fields: Any) -> JobView:
    """A Job as the index holds it; by default controlled by the shard its name is of (`-j<n>` cut)."""
    shard = re.sub(r"-j\d+$", "", name)
    return JobView(name=name, **{"shard": shard, "owner_uid": shard_uid(shard), **fields})


def jobs(*views: JobView) -> dict[str, JobView]:
    return {v.name: v for v in views}


def credit_snapshot(
    granted: str | None = "100",
    on_insufficient: str = "queue",
    shares: Sequence[RunShare] = (),
    any_account: bool = True,
    name: str = "default",
) -> CreditSnapshot:
    """The account `name` with one grant (None: no such account; `any_account`: others exist)."""
    if granted is None:
        return CreditSnapshot(NS, name, None, any_account=any_account)
    account = CreditAccount.model_validate(
        {
            "metadata": {"name": name, "namespace": NS},
            "spec": {"grants": [{"id": "g1", "amount": granted}], "onInsufficient": on_insufficient},
        }
    )
    return CreditSnapshot(NS, name, account, any_account=True, shares=list(shares))


def share(uid: str = "other", reserved: str = "0", captured: str = "0", phase: str = "running") -> RunShare:
    return RunShare(
        name=uid,
        uid=uid,
        phase=phase,
        reserved=Decimal(reserved),
        captured=Decimal(captured),
        released=Decimal(0),
    )


def observed(
    body: dict[str, Any] | None = None,
    shard_views: dict[str, ShardView] | None = None,
    job_views: dict[str, JobView] | None = None,
    written: RunStatus | None = None,
    clock: float = 100.0,
    last_write: float = 0.0,
) -> Observed:
    body = body or run_body()
    return Observed(
        body=body,
        run=Run.model_validate(body),
        shards=shard_views or {},
        jobs=job_views or {},
        written=written if written is not None else RunStatus.model_validate(body.get("status") or {}),
        now=NOW,
        clock=clock,
        last_write=last_write,
    )


def settings(**fields: Any) -> OperatorSettings:
    return OperatorSettings(web_base_url="https://oxygen.example", **fields)


def provider(
    name: str = "clearbit",
    url: str = "https://enrich.example/v2/company",
    price: str = "2",
    secret: str | None = "clearbit-key",
    **spec: Any,
) -> Provider:
    """A Provider as an admin declares it; `spec` in camelCase (retry, rateLimit, maxInFlight, …)."""
    http: dict[str, Any] = {"url": url, "timeoutSeconds": 7}
    if secret is not None:
        http["headersFrom"] = {"secretRef": {"name": secret}}
    return Provider.model_validate(
        {"metadata": {"name": name, "namespace": NS}, "spec": {"http": http, "price": price, **spec}}
    )


def provider_ref(name: str = "clearbit") -> dict[str, Any]:
    """A producer naming a Provider (camelCase, for run_body's producer=)."""
    return {"providerRef": {"name": name}}


def priced_account(granted: str = "100", require: bool = True, name: str = "default") -> CreditSnapshot:
    """An account that requires its runs to use Providers (requireProviders)."""
    account = CreditAccount.model_validate(
        {
            "metadata": {"name": name, "namespace": NS},
            "spec": {
                "grants": [{"id": "g1", "amount": granted}],
                "onInsufficient": "fail",
                "requireProviders": require,
            },
        }
    )
    return CreditSnapshot(NS, name, account, any_account=True)
