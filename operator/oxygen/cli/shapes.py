"""Resources → the snake_case JSON shapes of DESIGN.md (run, item) and the CLI's other rows. Pure.

The contract fields come first and are never renamed; extra fields follow them.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

Obj = Mapping[str, Any]


def _credits(value: Any) -> str:
    """Credits as the exact decimal string the status holds ("0.25"); absent means "0"."""
    if value is None or value == "":
        return "0"
    return str(value)


def run_shape(run: Obj) -> dict[str, Any]:
    meta = run.get("metadata") or {}
    spec = run.get("spec") or {}
    status = run.get("status") or {}
    producer = spec.get("producer") or {}
    return {
        "id": meta.get("uid"),
        "kind": status.get("kind") or spec.get("kind", "column"),
        "status": status.get("phase") or "queued",
        "mode": status.get("mode") or spec.get("mode", "live"),
        "trigger": status.get("trigger") or spec.get("trigger", "user"),
        "items_total": int(status.get("itemsTotal", 0)),
        "items_succeeded": int(status.get("itemsSucceeded", 0)),
        "items_failed": int(status.get("itemsFailed", 0)),
        "items_pending": int(status.get("itemsPending", 0)),
        "credits_used": _credits(status.get("creditsUsed")),
        "credits_reserved": _credits(status.get("creditsReserved")),
        "started_at": status.get("startedAt"),
        "finished_at": status.get("finishedAt"),
        "web_url": status.get("webUrl"),
        # Extras beyond the contract.
        "name": meta.get("name"),
        "namespace": meta.get("namespace"),
        "items_running": int(status.get("itemsRunning", 0)),
        "items_retrying": int(status.get("itemsRetrying", 0)),
        "items_skipped": int(status.get("itemsSkipped", 0)),
        "credits_estimated": _credits(status.get("creditsEstimated")),
        "message": status.get("message"),
        "table": spec.get("table"),
        "column": spec.get("column"),
        "provider": producer.get("provider") or (producer.get("providerRef") or {}).get("name"),
        "paused": bool(spec.get("paused", False)),
        "retry_failed": int(spec.get("retryFailed", 0)),
        "created_at": meta.get("creationTimestamp"),
    }


def item_shape(
    spec_item: Obj, result: Obj | None, *, shard: str | None = None, provider: str | None = None
) -> dict[str, Any]:
    """One item: inputs from the shard's spec, everything else from its result (pending if none yet).

    Inputs the worker resolved (workflow steps) or found (ingestion pages) are in the result and win.
    A workflow step's item also names its `step`; `provider` is the step's own producer's if it has one.
    """
    result = result or {}
    resolved = result.get("inputs")
    shape = {
        "id": spec_item.get("id"),
        "row_id": spec_item.get("rowId", result.get("rowId")),
        "status": result.get("status") or "pending",
        "attempt_count": int(result.get("attemptCount", spec_item.get("attemptCount", 0))),
        "inputs": resolved if isinstance(resolved, dict) else spec_item.get("inputs") or {},
        "outputs": result.get("outputs"),
        "error": result.get("error"),
        "credits_used": _credits(result.get("creditsUsed")),
        # Extras beyond the contract.
        "error_class": result.get("errorClass"),
        "started_at": result.get("startedAt"),
        "finished_at": result.get("finishedAt"),
        "latency_seconds": result.get("latencySeconds"),
        "shard": shard,
        "provider": result.get("provider") or (spec_item.get("producer") or {}).get("provider") or provider,
    }
    step = result.get("step") or spec_item.get("step")
    if step is not None:
        shape["step"] = step
    return shape


def shard_items(shard: Obj, status: str | None = None) -> Iterator[dict[str, Any]]:
    """The shard's items whose latest result lives here (superseded ones moved to a later round),
    then the items found while it ran (ingestion pages), which only its status holds."""
    spec = shard.get("spec") or {}
    found = (shard.get("status") or {}).get("items") or []
    results = {r.get("id"): r for r in found}
    name = (shard.get("metadata") or {}).get("name")
    provider = (spec.get("producer") or {}).get("provider")
    declared = spec.get("items") or []
    declared_ids = {i.get("id") for i in declared}
    discovered = [
        {"id": r.get("id"), "rowId": r.get("rowId")} for r in found if r.get("id") not in declared_ids
    ]
    for spec_item in [*declared, *discovered]:
        result = results.get(spec_item.get("id"))
        if result is not None and result.get("supersededBy"):
            continue
        item = item_shape(spec_item, result, shard=name, provider=provider)
        if status is None or item["status"] == status:
            yield item


def superseded_results(shard: Obj, row_id: str) -> Iterator[dict[str, Any]]:
    """Earlier attempts at a row that a later round took over: the cell's history."""
    spec = shard.get("spec") or {}
    for result in (shard.get("status") or {}).get("items") or []:
        if result.get("rowId") == row_id and result.get("supersededBy"):
            yield {
                "round": spec.get("round"),
                "shard": (shard.get("metadata") or {}).get("name"),
                "status": result.get("status"),
                "attempt_count": int(result.get("attemptCount", 0)),
                "error": result.get("error"),
                "superseded_by": result.get("supersededBy"),
                "finished_at": result.get("finishedAt"),
            }


def provider_rows(run: Obj) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for p in (run.get("status") or {}).get("providers") or []:
        attempts = int(p.get("attempts", 0))
        latency_sum = float(p.get("latencySecondsSum", 0.0))
        out.append(
            {
                "provider": p.get("provider"),
                "items_succeeded": int(p.get("itemsSucceeded", 0)),
                "items_failed": int(p.get("itemsFailed", 0)),
                "credits_used": _credits(p.get("creditsUsed")),
                "attempts": attempts,
                "mean_latency_seconds": round(latency_sum / attempts, 6) if attempts else None,
            }
        )
    return out


def event_shape(event: Obj) -> dict[str, Any]:
    involved = event.get("involvedObject") or {}
    meta = event.get("metadata") or {}
    series = event.get("series") or {}
    first = event.get("firstTimestamp") or event.get("eventTime") or meta.get("creationTimestamp")
    last = event.get("lastTimestamp") or series.get("lastObservedTime") or event.get("eventTime") or first
    return {
        "type": event.get("type"),
        "reason": event.get("reason"),
        "message": event.get("message"),
        "run": involved.get("name"),
        "namespace": involved.get("namespace") or meta.get("namespace"),
        "first_seen": first,
        "last_seen": last,
        "count": int(event.get("count") or series.get("count") or 1),
        "source": (event.get("source") or {}).get("component") or event.get("reportingComponent"),
    }


def grant_rows(account: Obj) -> Iterator[dict[str, Any]]:
    meta = account.get("metadata") or {}
    for grant in (account.get("spec") or {}).get("grants") or []:
        yield {
            "account": meta.get("name"),
            "run": None,
            "type": "granted",
            "amount": _credits(grant.get("amount")),
            # Grants carry no time of their own unless declared; the account's creation stands in.
            "at": grant.get("at") or meta.get("creationTimestamp"),
            "reason": grant.get("reason"),
            "id": grant.get("id"),
        }


def run_ledger_rows(run: Obj) -> Iterator[dict[str, Any]]:
    meta = run.get("metadata") or {}
    account = (run.get("spec") or {}).get("creditAccount") or "default"
    for entry in (run.get("status") or {}).get("ledger") or []:
        round_ = entry.get("round")
        yield {
            "account": account,
            "run": meta.get("name"),
            "type": entry.get("type"),
            "amount": _credits(entry.get("amount")),
            "at": entry.get("at"),
            "reason": entry.get("reason") or (f"round {round_}" if round_ is not None else None),
            "id": entry.get("id"),
        }


def sort_ledger(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    # Undated rows last; ties keep their order (grants before the runs that draw on them).
    return sorted(rows, key=lambda r: (r["at"] is None, r["at"] or ""))
