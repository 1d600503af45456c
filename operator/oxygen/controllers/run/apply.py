"""Apply: the only caller of the Kubernetes API that changes anything for the Run controller.

A Plan is written in an order that a crash at any point leaves recoverable:
1. the worker identity (ServiceAccount, Role naming the shards, RoleBinding) before the shards, so a
   shard never exists that its worker may not read;
2. new shards (409: ours only if this run controls it, see claim.py), then the status of those that
   skip;
3. shard status patches (supersede, settle, restore), after the shards that take their items over;
   then never-run shards of a refused round, after their items are restored to their holders;
4. Jobs: delete, suspend, resume, create (409: ours only if this run's shard controls it);
5. the Run's status (a merge patch of the status subresource), recorded in the daemon's memory;
   a metered run's first gets RETIRE_FINALIZER on the Run before it (its account must fold in its
   charges before the Run may go away: controllers/creditaccount/retire.py);
6. Events, only once the status write (if any) succeeded.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Iterator
from typing import Any

from oxygen.api.labels import LABEL_SHARD
from oxygen.controllers.run import claim
from oxygen.controllers.run.observe import remember_shard
from oxygen.controllers.run.types import Plan, RunFailure, RunState
from oxygen.credits.ledger import RETIRE_FINALIZER
from oxygen.kube.client import ApiException, Kube, OwnershipConflict
from oxygen.status.views import JobView, job_owner

log = logging.getLogger("oxygen.controllers.run")

# The API server's answers that say the object itself is wrong: writing it again cannot help.
REFUSED = frozenset({400, 422})


class ObjectRefused(Exception):
    """The API server refused an object the run needs (invalid, not transient): the run fails."""

    def __init__(self, kind: str, name: str, message: str) -> None:
        super().__init__(f"the API server refused {kind} {name!r}: {message}")
        self.kind = kind
        self.name = name


def server_message(err: ApiException) -> str:
    """The `message` of the API server's Status, else the HTTP reason."""
    with contextlib.suppress(ValueError, TypeError, AttributeError, KeyError):
        return str(json.loads(err.body)["message"])
    return str(err.reason or err.status)


@contextlib.contextmanager
def refusal(kind: str, name: object) -> Iterator[None]:
    try:
        yield
    except ApiException as err:
        if err.status in REFUSED:
            raise ObjectRefused(kind, str(name), server_message(err)) from None
        raise


class Applier:
    def __init__(self, kube: Kube) -> None:
        self.kube = kube

    def apply(self, plan: Plan, run_body: dict[str, object], state: RunState) -> None:
        meta = run_body["metadata"]
        assert isinstance(meta, dict)
        ns, name = str(meta["namespace"]), str(meta["name"])
        for kind, manifest in plan.worker_identity:
            try:
                with refusal(kind, (manifest.get("metadata") or {}).get("name")):
                    self.kube.apply_owned(kind, ns, manifest)
            except OwnershipConflict as conflict:
                if conflict.namesake:
                    raise  # the old run's objects are being collected: the next pass retries
                raise RunFailure("WorkerIdentityConflict", f"{conflict}; rename the Run") from None
        for shard in plan.shards:
            with refusal("RunShard", (shard.body.get("metadata") or {}).get("name")):
                created = self.kube.create_or_get("runshards", ns, shard.body)
                claim.shard(self.kube, ns, created, str(meta["uid"]))
                if claim.stale(created, shard.body):
                    created = self._replace_shard(ns, created, shard.body)
                if shard.initial_status is not None and not (created.get("status") or {}).get("items"):
                    created = self.kube.patch_status(
                        "runshards", ns, created["metadata"]["name"], shard.initial_status
                    )
            remember_shard(state, created)
        for shard_name, status in plan.shard_status:
            with refusal("RunShard status", shard_name):
                remember_shard(state, self.kube.patch_status("runshards", ns, shard_name, status))
        for shard_name, uid in plan.delete_shards:
            self.kube.delete("runshards", ns, shard_name, uid)
            state.fresh_shards.pop(shard_name, None)
        for job in plan.delete_jobs:
            self.kube.delete_job(ns, job)
        for view in plan.suspend_jobs:
            self.kube.set_job_suspended(ns, view.name, True)
            state.fresh_jobs[view.name] = view
        for job in plan.resume_jobs:
            self.kube.set_job_suspended(ns, job, False)
        for manifest in plan.create_jobs:
            with refusal("Job", (manifest.get("metadata") or {}).get("name")):
                if not self.kube.create_job(ns, manifest):
                    claim.job(self.kube, ns, manifest)  # raises unless the Job is this shard's
                    continue  # ours, created by an earlier pass: the index reports it as it is
            job = manifest["metadata"]["name"]
            of_shard = str((manifest["metadata"].get("labels") or {}).get(LABEL_SHARD) or "")
            state.fresh_jobs[job] = JobView(name=job, active=1, owner_uid=job_owner(manifest), shard=of_shard)
        if plan.status is not None:
            planned = plan.status.metered and plan.status.rounds
            if planned and RETIRE_FINALIZER not in (meta.get("finalizers") or []):
                self.kube.set_finalizer("runs", ns, name, RETIRE_FINALIZER, present=True)
            with refusal("Run status", name):
                self.kube.patch_status("runs", ns, name, plan.status.wire())
            state.status = plan.status.model_copy(deep=True)
            state.status_writes += 1
            state.last_write = time.monotonic()
        for event in plan.events:
            self.kube.event(dict(run_body), event.reason, event.message, type_=event.type)

    def _replace_shard(self, ns: str, found: dict[str, Any], planned: dict[str, Any]) -> dict[str, Any]:
        """A never-run shard of an unrecorded round, planned again differently: deleted, created anew."""
        name = str(found["metadata"]["name"])
        log.info("RunShard %s/%s of an unrecorded round is planned again differently: replaced", ns, name)
        self.kube.delete("runshards", ns, name, str(found["metadata"].get("uid") or ""))
        created = self.kube.create_or_get("runshards", ns, planned)
        if claim.stale(created, planned):  # still being deleted: the next pass tries again
            raise OwnershipConflict("RunShard", name, namesake=True)
        return created
