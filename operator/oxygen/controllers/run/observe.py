"""Observe: what one pass of the Run controller knows, and the reads a pass may ask for.

The indexes (handlers.py) hold compact views of a run's shards and Jobs; they lag behind what this
daemon just wrote, so the views are merged with the children it remembers creating or changing. The
few reads a decision needs (the items' source, a credit snapshot, shard bodies) go through `Reader`.

A child belongs to a Run only through its controller ownerReference, in the Run's namespace: a
shard's spec.runUid or a Job's labels alone never tie them to a Run (a worker could write them).
"""

from __future__ import annotations

import base64
import binascii
import functools
import time
from collections.abc import Iterator, Mapping
from typing import Any

from oxygen.api.common import GROUP
from oxygen.api.creditaccount import CreditAccount
from oxygen.api.labels import LABEL_RUN_UID
from oxygen.api.provider import Provider
from oxygen.api.run import FailedItem, Run
from oxygen.api.runshard import RunShard
from oxygen.api.workflow import Workflow
from oxygen.controllers.run import item_store, preflight, tables
from oxygen.controllers.run.plan import ETCD_ITEM_CEILING, Sources, Stream
from oxygen.controllers.run.types import Observed, RunFailure, RunState
from oxygen.credits.gate import CreditSnapshot, account_of, share_of
from oxygen.itemstore.store import ItemStore
from oxygen.kube.client import ApiException, Kube
from oxygen.planning.items import PlannedItem
from oxygen.sources.open import open_items
from oxygen.status.run import FAILED_ITEMS_SAMPLE
from oxygen.status.views import JobView, ShardView, job_view, shard_view
from oxygen.timefmt import rfc3339

# A metadata-only read: the API server answers with name, uid and labels, never a Secret's data.

# Shards read per request when a new round is planned (each can hold ~1 MiB of results).
SHARDS_PER_REQUEST = 5


def resource_version(body: Mapping[str, Any]) -> int:
    try:
        return int(body["metadata"].get("resourceVersion") or 0)
    except ValueError:
        return 0


def controller_of(body: Mapping[str, Any], kind: str) -> str | None:
    """The uid of the object's controller, if that controller is an oxygen.dev `kind`."""
    for ref in (body.get("metadata") or {}).get("ownerReferences") or []:
        if (
            ref.get("controller")
            and ref.get("kind") == kind
            and str(ref.get("apiVersion", "")).startswith(f"{GROUP}/")
        ):
            return str(ref.get("uid") or "") or None
    return None


def shard_run(body: Mapping[str, Any]) -> str | None:
    """The uid of the Run that controls this shard; None when its spec.runUid disagrees (or no Run does)."""
    owner = controller_of(body, "Run")
    if owner is None or (body.get("spec") or {}).get("runUid") != owner:
        return None
    return owner


def job_run(body: Mapping[str, Any]) -> str | None:
    """The run uid a Job claims (its label), if a RunShard controls it; None for any other Job.

    Anyone who may create Jobs can write that label: the index files a Job under the run it claims,
    and `owned_jobs` keeps only those whose controller is one of that run's shards."""
    meta = body.get("metadata") or {}
    refs = meta.get("ownerReferences") or []
    if not any(r.get("controller") and r.get("kind") == "RunShard" for r in refs):
        return None
    uid = (meta.get("labels") or {}).get(LABEL_RUN_UID)
    return str(uid) if uid else None


def merge_shards(indexed: list[tuple[int, ShardView]], state: RunState) -> dict[str, ShardView]:
    merged = {view.name: (rv, view) for rv, view in indexed}
    for name, (rv, view) in list(state.fresh_shards.items()):
        seen = merged.get(name)
        if seen is not None and seen[0] >= rv:
            del state.fresh_shards[name]  # the index caught up
        else:
            merged[name] = (rv, view)
    return {name: view for name, (_, view) in merged.items()}


def merge_jobs(indexed: list[JobView], state: RunState) -> dict[str, JobView]:
    merged = {job.name: job for job in indexed}
    for name, job in list(state.fresh_jobs.items()):
        if name in merged:
            del state.fresh_jobs[name]
        else:
            merged[name] = job
    return merged


def owned(job: JobView, shards: Mapping[str, ShardView]) -> bool:
    """Whether the Job's controller is one of these shards, the one its `oxygen.dev/shard` label names."""
    by_uid = {view.uid: view.name for view in shards.values() if view.uid}
    return bool(job.owner_uid) and by_uid.get(job.owner_uid) == job.shard


def owned_jobs(jobs: Mapping[str, JobView], shards: Mapping[str, ShardView]) -> dict[str, JobView]:
    """The Jobs that belong to the run whose shards these are (a forged Job is not counted)."""
    return {name: job for name, job in jobs.items() if owned(job, shards)}


def remember_shard(state: RunState, body: dict[str, Any]) -> None:
    state.fresh_shards[body["metadata"]["name"]] = (resource_version(body), shard_view(body))


def now() -> str:
    return rfc3339()


def observe(
    body: dict[str, Any],
    indexed_shards: list[tuple[int, ShardView]],
    indexed_jobs: list[JobView],
    state: RunState,
    failed_sample: tuple[FailedItem, ...] = (),
) -> Observed:
    shards = merge_shards(indexed_shards, state)
    return Observed(
        body=body,
        run=Run.model_validate(body),
        shards=shards,
        jobs=owned_jobs(merge_jobs(indexed_jobs, state), shards),
        written=state.status,
        now=now(),
        clock=time.monotonic(),
        last_write=state.last_write,
        failed_sample=failed_sample,
    )


class ShardNotOwned(Exception):
    """A shard read by name is not controlled by the run being reconciled: it is left alone."""


class Reader:
    """The reads a pass asks for beyond the indexes."""

    def __init__(self, kube: Kube, store: ItemStore | None = None) -> None:
        self.kube = kube
        # With an item store, a stored shard is read with its rows as its items (item_store.hydrate).
        self.store = store
        # How many items a streamed source may yield (None: they go to the item store).
        self.ceiling = None if store is not None else ETCD_ITEM_CEILING
        self._failed: dict[str, tuple[int, tuple[FailedItem, ...]]] = {}

    def failed_sample(self, run_uid: str, shards: list[tuple[int, ShardView]]) -> tuple[FailedItem, ...]:
        """With an item store, the run's first failed items (its status index), read again only when
        the number of failed items changes."""
        failed = sum(view.summary.failed for _, view in shards)
        if self.store is None or not failed:
            return ()
        cached = self._failed.get(run_uid)
        if cached is None or cached[0] != failed:
            rows = self.store.first_failed(run_uid, FAILED_ITEMS_SAMPLE)
            sample = tuple(
                FailedItem(
                    id=r.item_id, row_id=r.row_id, error=(r.error or "")[:300], attempt_count=r.attempt_count
                )
                for r in rows
            )
            self._failed[run_uid] = cached = (failed, sample)
        return cached[1]

    def _hydrated(self, body: dict[str, Any]) -> dict[str, Any]:
        return item_store.hydrate(self.store, body) if self.store is not None else body

    def sources(self, run: Run) -> Sources:
        """What the run's items come from, the Providers it names and whether their Secrets exist."""
        ns, spec = run.metadata.namespace, run.spec
        workflow: Workflow | None = None
        config_map: dict[str, str] | None = None
        stream: Stream | None = None
        if spec.kind == "workflow" and spec.workflow_ref is not None:
            found = self._get("workflows", ns, spec.workflow_ref.name)
            workflow = Workflow.model_validate(found) if found is not None else None
        elif spec.items is None and spec.items_from is not None and spec.items_from.streamed:
            stream = self._stream(run)
        elif spec.items is None and spec.items_from is not None:
            assert spec.items_from.config_map_key_ref is not None
            try:
                config_map = self.kube.read_config_map(ns, spec.items_from.config_map_key_ref.name)
            except ApiException as err:
                if err.status != 404:
                    raise
        declared = preflight.uses(run, workflow)
        providers: dict[str, Provider | None] = {}
        for name in preflight.provider_names(declared):
            body = self._get("providers", ns, name)
            providers[name] = Provider.model_validate(body) if body is not None else None
        refs = preflight.secret_refs(declared, providers)
        secrets = {name: self.secret_exists(ns, name) for name, _ in refs}
        table_items: list[PlannedItem] | None = None
        cached: dict[str, Any] = {}
        followers: dict[str, str] = {}
        if spec.rows_table is not None:
            table_items = tables.planned_items(self.kube, run)
            ttl = tables.cache_ttl(run, providers)
            if ttl is not None and spec.mode == "live":
                cached, followers = tables.never_pay_twice(self.kube, run, table_items, ttl)
        return Sources(
            workflow=workflow,
            config_map=config_map,
            providers=providers,
            secrets=secrets,
            stream=stream,
            ceiling=self.ceiling,
            table_items=table_items,
            cached=cached,
            followers=followers,
        )

    def _stream(self, run: Run) -> Stream:
        """Opens the run's streamed items source; a postgres source's connection string is read from
        its Secret (the one Secret whose value the Run controller reads: admission lets a run name it
        only if its writer may `get` it)."""
        items_from = run.spec.items_from
        assert items_from is not None
        dsn: str | None = None
        if items_from.postgres is not None:
            ref = items_from.postgres.secret_ref
            dsn = self.secret_value(
                run.metadata.namespace, ref.name, ref.key, "spec.itemsFrom.postgres.secretRef"
            )
        return functools.partial(open_items, items_from, dsn)

    def secret_value(self, namespace: str, name: str, key: str, where: str) -> str:
        """One key of a Secret, decoded; a missing Secret or key, or no permission, fails the run."""
        try:
            secret = self.kube.core.read_namespaced_secret(name, namespace)
        except ApiException as err:
            if err.status == 404:
                raise RunFailure("SecretNotFound", f'secrets "{name}" not found ({where})') from None
            if err.status == 403:
                raise RunFailure(
                    "SecretForbidden",
                    f'the operator may not get secrets "{name}" ({where}): grant it `get` on that Secret',
                ) from None
            raise
        data = secret.data or {}
        if key not in data:
            raise RunFailure("SecretKeyNotFound", f'secrets "{name}" has no key "{key}" ({where})')
        try:
            return base64.b64decode(data[key]).decode("utf-8").strip()
        except (binascii.Error, UnicodeDecodeError):
            raise RunFailure(
                "SecretKeyNotFound", f'secrets "{name}" key "{key}" is not UTF-8 text ({where})'
            ) from None

    def secret_exists(self, namespace: str, name: str) -> bool | None:
        """Whether the Secret exists (its values never reach the operator; see Kube.secret_exists)."""
        return self.kube.secret_exists(namespace, name)

    def credits(self, run: Run) -> CreditSnapshot:
        """The account and its runs' shares: read under the account's lock, right before deciding."""
        ns, name = run.metadata.namespace, run.spec.credit_account
        found = self._get("creditaccounts", ns, name)
        if found is None:
            return CreditSnapshot(ns, name, None, any_account=bool(self.kube.list("creditaccounts", ns)))
        shares = [share_of(body) for body in self.kube.list("runs", ns) if account_of(body) == name]
        return CreditSnapshot(ns, name, CreditAccount.model_validate(found), any_account=True, shares=shares)

    def shards(self, run: Run) -> Iterator[RunShard]:
        """The run's shards, a few per request: a round never holds every shard's body at once."""
        selector = f"{LABEL_RUN_UID}={run.metadata.uid}"
        for body in self.kube.pages("runshards", run.metadata.namespace, selector, limit=SHARDS_PER_REQUEST):
            if shard_run(body) == run.metadata.uid:
                yield RunShard.model_validate(self._hydrated(body))

    def shard(self, run: Run, name: str, rows: bool = True) -> tuple[RunShard, dict[str, Any]]:
        """A shard of the run; with an item store, its rows as its items unless `rows` is False
        (starting its Job needs no item)."""
        body = self.kube.get("runshards", run.metadata.namespace, name)
        if shard_run(body) != run.metadata.uid:
            raise ShardNotOwned(f"RunShard {name!r} is not controlled by Run {run.metadata.name!r}")
        if rows:
            body = self._hydrated(body)
        return RunShard.model_validate(body), body

    def jobs_left(self, run: Run, shards: Mapping[str, ShardView]) -> list[str]:
        """The run's Jobs (controlled by its `shards`) as the API server has them now (the index may
        lag behind a deletion)."""
        found = self.kube.list_jobs(run.metadata.namespace, f"{LABEL_RUN_UID}={run.metadata.uid}")
        return [job["metadata"]["name"] for job in found if owned(job_view(job), shards)]

    def _get(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return self.kube.get(plural, namespace, name)
        except ApiException as err:
            if err.status == 404:
                return None
            raise
