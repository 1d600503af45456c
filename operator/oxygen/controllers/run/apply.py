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
from collections.abc import Callable, Iterator
from typing import Any

from oxygen.api.labels import LABEL_SHARD, owner_reference
from oxygen.controllers.run import claim, item_store
from oxygen.controllers.run.observe import remember_shard
from oxygen.controllers.run.types import Plan, RunFailure, RunState
from oxygen.credits.ledger import RETIRE_FINALIZER
from oxygen.execution.jobs import ITEM_STORE_DSN_ENV
from oxygen.itemstore.store import ItemStore
from oxygen.kube.client import ApiException, Kube, OwnershipConflict
from oxygen.planning.items import PlannedItem
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
    def __init__(self, kube: Kube, store: ItemStore | None = None) -> None:
        self.kube = kube
        # With an item store, a column run's items and results are rows there (item_store.py).
        self.store = store
        self._secrets: set[str] = set()  # runs whose worker Secret this process made or found

    def stage_items(
        self, run_body: dict[str, Any], items: Iterator[PlannedItem], status_of: Callable[[int], str]
    ) -> int:
        """Stream round 0's items into the item store (item_store.stage); returns how many it has.
        The rows go with the Run: the finalizer is on before the first row is written."""
        assert self.store is not None
        meta = run_body["metadata"]
        if item_store.FINALIZER not in (meta.get("finalizers") or []):
            self.kube.set_finalizer(
                "runs", str(meta["namespace"]), str(meta["name"]), item_store.FINALIZER, present=True
            )
        return item_store.stage(self.store, run_body, items, status_of)

    def apply(self, plan: Plan, run_body: dict[str, object], state: RunState) -> None:
        meta = run_body["metadata"]
        assert isinstance(meta, dict)
        ns, name = str(meta["namespace"]), str(meta["name"])
        if self.store is not None and any(
            item_store.eligible(s.body) or item_store.stored(s.body) for s in plan.shards
        ):
            # The rows go with the Run: the finalizer is on before the first row is written.
            if item_store.FINALIZER not in (meta.get("finalizers") or []):
                self.kube.set_finalizer("runs", ns, name, item_store.FINALIZER, present=True)
            plan.shards = item_store.to_store(self.store, dict(run_body), plan.shards)
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
                if shard.initial_status is not None and not (created.get("status") or {}).get("summary"):
                    created = self.kube.patch_status(
                        "runshards", ns, created["metadata"]["name"], shard.initial_status
                    )
            remember_shard(state, created)
        for shard_name, status in plan.shard_status:
            if self.store is not None:
                status = self._rows_of(ns, shard_name, status)
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
        if self.store is not None and any(_uses_store(m) for m in plan.create_jobs):
            self._worker_secret(dict(run_body))
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

    def _rows_of(self, ns: str, shard_name: str, status: dict[str, Any]) -> dict[str, Any]:
        """A stored shard's items go to its rows; what is patched is the summary-only status."""
        assert self.store is not None
        body = self.kube.get("runshards", ns, shard_name)
        return item_store.write_status(self.store, body, status) if item_store.stored(body) else status

    def _worker_secret(self, run_body: dict[str, Any]) -> None:
        """The run's worker credentials for the store, before its first Job (once per process)."""
        assert self.store is not None
        meta = run_body["metadata"]
        uid, ns = str(meta["uid"]), str(meta["namespace"])
        if uid in self._secrets:
            return
        from oxygen.execution.jobs import item_store_secret

        name = item_store_secret(str(meta["name"]))
        owners = self.kube.secret_owners(ns, name)
        if isinstance(owners, list) and uid not in owners:
            # A namesake's (a deleted Run of this name, its garbage collection pending): its role is
            # gone, so its DSN would fail every worker; wait for it rather than borrow it.
            conflict = OwnershipConflict("Secret", name, namesake=bool(owners))
            if conflict.namesake:
                raise conflict  # the next pass looks again
            raise RunFailure("WorkerIdentityConflict", f"{conflict}; rename the Run")
        if owners is False:
            secret = item_store.worker_secret(self.store, run_body, owner_reference(run_body))
            with refusal("Secret", secret["metadata"]["name"]):
                self.kube.apply_owned("Secret", ns, secret)
        self._secrets.add(uid)

    def _replace_shard(self, ns: str, found: dict[str, Any], planned: dict[str, Any]) -> dict[str, Any]:
        """A never-run shard of an unrecorded round, planned again differently: deleted, created anew."""
        name = str(found["metadata"]["name"])
        log.info("RunShard %s/%s of an unrecorded round is planned again differently: replaced", ns, name)
        self.kube.delete("runshards", ns, name, str(found["metadata"].get("uid") or ""))
        created = self.kube.create_or_get("runshards", ns, planned)
        if claim.stale(created, planned):  # still being deleted: the next pass tries again
            raise OwnershipConflict("RunShard", name, namesake=True)
        return created


def _uses_store(manifest: dict[str, Any]) -> bool:
    containers = manifest["spec"]["template"]["spec"]["containers"]
    return any(e.get("name") == ITEM_STORE_DSN_ENV for c in containers for e in c.get("env") or [])
