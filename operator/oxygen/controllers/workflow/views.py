"""Compact views of Runs (what the kopf indexes keep) and the accessors the policies read. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from oxygen.api.common import GROUP
from oxygen.api.run import TERMINAL_PHASES


def run_view(body: Mapping[str, Any]) -> dict[str, Any]:
    """The parts of a Run this controller reads, shaped like the Run (so whole bodies work too)."""
    meta = body.get("metadata") or {}
    status = body.get("status") or {}
    spec = body.get("spec") or {}
    return {
        "metadata": {
            "name": meta.get("name", ""),
            "namespace": meta.get("namespace", ""),
            "uid": meta.get("uid", ""),
            "labels": dict(meta.get("labels") or {}),
            "annotations": {k: v for k, v in (meta.get("annotations") or {}).items() if GROUP in k},
            "ownerReferences": [dict(o) for o in meta.get("ownerReferences") or []],
            "creationTimestamp": meta.get("creationTimestamp"),
            "deletionTimestamp": meta.get("deletionTimestamp"),
        },
        "spec": {"cancel": bool(spec.get("cancel", False))},
        "status": {"phase": status.get("phase"), "finishedAt": status.get("finishedAt")},
    }


def name_of(run: Mapping[str, Any]) -> str:
    return str(run["metadata"]["name"])


def uid_of(run: Mapping[str, Any]) -> str:
    return str((run.get("metadata") or {}).get("uid") or "")


def phase_of(run: Mapping[str, Any]) -> str | None:
    phase = (run.get("status") or {}).get("phase")
    return str(phase) if phase else None


def finished(run: Mapping[str, Any]) -> bool:
    return phase_of(run) in TERMINAL_PHASES


def deleting(run: Mapping[str, Any]) -> bool:
    return bool((run.get("metadata") or {}).get("deletionTimestamp"))


def controlled_by(run: Mapping[str, Any], uid: str) -> bool:
    refs = (run.get("metadata") or {}).get("ownerReferences") or []
    return any(ref.get("uid") == uid and ref.get("controller") for ref in refs)


def history_key(run: Mapping[str, Any]) -> tuple[str, str]:
    """Oldest first: by creation time, then name (creation times have one-second resolution)."""
    return (str(run["metadata"].get("creationTimestamp") or ""), name_of(run))
