"""One way to build the objects the CreditAccount and Workflow controllers read, for unit tests.

Bodies are plain dicts shaped as the API server returns them (camelCase), so a test reads like the
manifest it stands for. Every builder takes keyword overrides for the one field a case is about.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from oxygen.credits.ledger import RunShare

NAMESPACE = "ns"
WF_NAME = "nightly"
WF_UID = "wf-uid-1"
WF_CREATED = "2030-01-01T00:00:10Z"
LABEL_WORKFLOW = "oxygen.dev/workflow"


def t(text: str) -> dt.datetime:
    """An RFC 3339 text as an aware datetime."""
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


# -- CreditAccount ---------------------------------------------------------------------------------


def account(
    name: str = "team",
    grants: dict[str, str] | None = None,
    conditions: list[dict[str, Any]] | None = None,
    generation: int = 1,
    retired: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A CreditAccount with grants {id: amount} (and deleted runs' figures in `retired`)."""
    return {
        "apiVersion": "oxygen.dev/v1alpha1",
        "kind": "CreditAccount",
        "metadata": {"name": name, "namespace": NAMESPACE, "uid": f"uid-{name}", "generation": generation},
        "spec": {"grants": [{"id": gid, "amount": amount} for gid, amount in (grants or {}).items()]},
        "status": {"conditions": conditions or [], **({"retired": retired} if retired else {})},
    }


def share(
    name: str,
    phase: str = "running",
    reserved: str = "0",
    captured: str = "0",
    released: str = "0",
    deleted_at: str = "",
    held: bool = True,
    settled: bool = True,
) -> RunShare:
    """One run's take from its account; `deleted_at`: the Run is being deleted (held: under the
    account's finalizer)."""
    return RunShare(
        name=name,
        uid=f"uid-{name}",
        phase=phase,
        reserved=Decimal(reserved),
        captured=Decimal(captured),
        released=Decimal(released),
        deleted_at=deleted_at,
        held_for_account=held,
        settled=settled,
    )


def retired(*runs: tuple[str, str, str], total_runs: int | None = None) -> dict[str, Any]:
    """A status.retired of deleted runs (name, captured, released), totals over those listed."""
    latest = [
        {
            "name": name,
            "uid": f"uid-{name}",
            "reserved": str(Decimal(c) + Decimal(r)),
            "captured": c,
            "released": r,
            "deletedAt": "2029-12-31T00:00:00Z",
        }
        for name, c, r in runs
    ]
    return {
        "runs": total_runs if total_runs is not None else len(runs),
        "reserved": str(sum((Decimal(e["reserved"]) for e in latest), Decimal(0))),
        "captured": str(sum((Decimal(e["captured"]) for e in latest), Decimal(0))),
        "released": str(sum((Decimal(e["released"]) for e in latest), Decimal(0))),
        "latest": latest,
    }


# -- Workflow and its Runs -------------------------------------------------------------------------


def workflow(
    name: str = WF_NAME, status: dict[str, Any] | None = None, uid: str = WF_UID, **spec: Any
) -> dict[str, Any]:
    return {
        "apiVersion": "oxygen.dev/v1alpha1",
        "kind": "Workflow",
        "metadata": {
            "name": name,
            "namespace": NAMESPACE,
            "uid": uid,
            "generation": 2,
            "creationTimestamp": WF_CREATED,
        },
        "spec": {
            "steps": [{"name": "one", "producer": {"provider": "p", "builtin": "echo"}}],
            "inputs": {"table": "leads", "limit": 10},
            "runTemplate": {"mode": "dry_run", "creditAccount": "team", "retry": {"maxAttempts": 5}},
            **spec,
        },
        "status": dict(status or {}),
    }


def every_minute(policy: str = "Allow", **extra: Any) -> dict[str, Any]:
    return {"schedule": {"cron": "* * * * *", "concurrencyPolicy": policy, **extra}}


def workflow_run(
    name: str,
    phase: str | None = None,
    created: str = "2030-01-01T00:00:00Z",
    owner: str = WF_UID,
    labels: dict[str, str] | None = None,
    cancel: bool = False,
    **meta: Any,
) -> dict[str, Any]:
    """A Run labelled with and controlled by the workflow (uid `uid-<name>`)."""
    return {
        "metadata": {
            "name": name,
            "namespace": NAMESPACE,
            "uid": f"uid-{name}",
            "creationTimestamp": created,
            "labels": labels if labels is not None else {LABEL_WORKFLOW: WF_NAME},
            "ownerReferences": [{"kind": "Workflow", "name": WF_NAME, "uid": owner, "controller": True}],
            **meta,
        },
        "spec": {"cancel": True} if cancel else {},
        "status": {"phase": phase} if phase else {},
    }


def managed(*runs: dict[str, Any], since: str = "2030-01-01T00:00:00Z") -> list[dict[str, Any]]:
    """The status.managedRuns entries recording these runs as created by the workflow."""
    return [{"name": r["metadata"]["name"], "uid": r["metadata"]["uid"], "since": since} for r in runs]


def finished_run(
    name: str,
    phase: str = "succeeded",
    labels: dict[str, str] | None = None,
    finished: str = "2030-01-01T00:10:00Z",
    namespace: str = NAMESPACE,
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A finished Run of the namespace (a possible source of event triggers)."""
    return {
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": f"uid-{name}",
            "labels": labels if labels is not None else {"team": "growth", "stage": "enrich"},
            "annotations": annotations or {},
            "creationTimestamp": "2030-01-01T00:05:00Z",
        },
        "status": {"phase": phase, "finishedAt": finished},
    }
