"""Cancel: delete every Job; once they (and so their pods) are gone, the unfinished items are skipped.

Pure. Before settling shards, reconcile.py confirms with the API server that no Job is left (the
index may lag behind a deletion): `confirmed` takes what that list returned.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from oxygen.status.views import JobView, ShardView

CANCELED = "canceled"


@dataclass(frozen=True)
class CancelDecision:
    delete_jobs: list[str]
    # True: the index shows no Job; ask the API server before settling (see `confirmed`).
    confirm: bool


def cancel(jobs: Mapping[str, JobView]) -> CancelDecision:
    # Deletion is asked once per Job; a deleting Job goes when its pods are gone.
    return CancelDecision([j.name for j in jobs.values() if not j.deleting], confirm=not jobs)


def confirmed(remaining_jobs: Sequence[str], shards: Mapping[str, ShardView]) -> tuple[list[str], list[str]]:
    """(Jobs still to delete, shards to settle as skipped). Shards are settled only once no Job is left."""
    if remaining_jobs:
        return list(remaining_jobs), []
    settle = [
        s.name
        for s in shards.values()
        if s.summary.pending + s.summary.running + s.summary.retrying or not s.done
    ]
    return [], settle
