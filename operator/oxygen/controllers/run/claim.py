"""Claiming a child by name: a deterministic name that already exists is ours only if we control it.

A RunShard or a Job the operator creates may find its name taken (409). That object is this run's
only when its controller ownerReference is this run (a shard) or this run's shard (a Job). Else it
belongs to someone else:
- its owner is gone or being deleted (a deleted Run of the same name whose children the garbage
  collector has not removed yet): the pass waits and tries again (`OwnershipConflict.namesake`);
- its owner is alive (another Run whose long name shortened to the same shard name, or a Job someone
  created under the shard's name): the run fails, naming the object. Adopting it would count foreign
  results and credits, or wait forever for a Job that never reports.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from oxygen.api.runshard import RunShardSpec
from oxygen.controllers.run.observe import controller_of
from oxygen.controllers.run.types import RunFailure
from oxygen.kube.client import ApiException, Kube, OwnershipConflict


def _controller(body: Mapping[str, Any], kind: str) -> dict[str, Any] | None:
    for ref in (body.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller") and ref.get("kind") == kind:
            return dict(ref)
    return None


def _owner_alive(kube: Kube, plural: str, namespace: str, ref: Mapping[str, Any]) -> bool:
    """Whether the object `ref` names still exists under that uid and is not being deleted."""
    try:
        owner = kube.get(plural, namespace, str(ref.get("name") or ""))
    except ApiException as err:
        if err.status == 404:
            return False
        raise
    meta = owner.get("metadata") or {}
    return meta.get("uid") == ref.get("uid") and not meta.get("deletionTimestamp")


def shard(kube: Kube, namespace: str, found: Mapping[str, Any], run_uid: str) -> None:
    """Raise unless the RunShard `found` (created or read after a 409) is controlled by run `run_uid`."""
    name = str(found["metadata"]["name"])
    owner = controller_of(found, "Run")
    if owner == run_uid and (found.get("spec") or {}).get("runUid") == run_uid:
        return
    ref = _controller(found, "Run")
    if ref is not None and owner != run_uid and not _owner_alive(kube, "runs", namespace, ref):
        raise OwnershipConflict("RunShard", name, namesake=True)
    holder = f"Run {ref.get('name')!r}" if ref is not None and owner != run_uid else "another owner"
    raise RunFailure(
        "ShardNameTaken",
        f"RunShard {name!r} already exists and belongs to {holder}; rename the Run",
    )


def stale(found: Mapping[str, Any], planned: Mapping[str, Any]) -> bool:
    """Whether our shard `found` (read after a 409) is not the one the plan wants under its name.

    A round's shards are created before the status records the round. When that recording failed,
    the shards stay, never run (jobs.drive starts only recorded rounds), and the next plan of that
    round number finds them: the same spec is the same plan, it is taken over; another spec (the
    run's spec changed in between) is replaced, since a shard's spec is immutable."""
    return RunShardSpec.model_validate(found.get("spec") or {}) != RunShardSpec.model_validate(
        planned.get("spec") or {}
    )


def job(kube: Kube, namespace: str, manifest: Mapping[str, Any]) -> None:
    """After a 409 creating `manifest`: return if the existing Job is this shard's, else raise."""
    name = str(manifest["metadata"]["name"])
    mine = _controller(manifest, "RunShard")
    found = kube.read_job(namespace, name)
    if found is None:  # deleted between the create and the read: the next pass creates it again
        raise OwnershipConflict("Job", name, namesake=True)
    ref = _controller(found, "RunShard")
    if ref is not None and mine is not None and ref.get("uid") == mine.get("uid"):
        return
    if ref is not None and not _owner_alive(kube, "runshards", namespace, ref):
        raise OwnershipConflict("Job", name, namesake=True)
    raise RunFailure(
        "JobNameTaken",
        f"Job {name!r} already exists and is not controlled by this run's shard; "
        "delete that Job or rename the Run",
    )
