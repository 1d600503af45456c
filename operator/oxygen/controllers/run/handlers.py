"""kopf glue of the Run controller: the indexes of a run's children, a daemon per Run, wakeups.

Only stateless handler kinds are used (indexes and a daemon per Run): kopf writes no diff-base or
progress annotations on Runs and none on their children. The indexes map (namespace, run uid) to
compact views of a run's RunShards and Jobs, so a pass reads memory, not the API server. A shard is
indexed only under the Run that controls it (observe.shard_run); a Job under the run its label
names, and counted only when one of that run's shards controls it (observe.owned_jobs).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import kopf

from oxygen import metrics
from oxygen.api.common import GROUP, VERSION
from oxygen.api.labels import LABEL_RUN_UID
from oxygen.controllers import runtime
from oxygen.controllers.run import deletion
from oxygen.controllers.run.guard import DaemonMemory, backoff
from oxygen.controllers.run.observe import job_run, resource_version, shard_run
from oxygen.controllers.run.reconcile import IDLE_INTERVAL, RunController
from oxygen.settings import SettingsError
from oxygen.status.views import job_view, shard_view

# A Run's daemon sleeps between passes; a change to the Run wakes it at once.
_wakeups: dict[str, asyncio.Event] = {}
# Runs whose daemon has work pending (not idle): the operator's queue depth.
_busy: set[str] = set()


@kopf.on.startup()
def start_run_controller(memo: kopf.Memo, **_: Any) -> None:
    try:
        settings = runtime.settings(memo)
    except SettingsError as err:  # a bad chart value: stop, saying which, rather than retry forever
        raise kopf.PermanentError(str(err)) from None
    memo.run_controller = RunController(runtime.kube(memo), settings)


@kopf.on.event(GROUP, VERSION, "runshards")
async def shard_event(event: kopf.RawEvent, body: kopf.Body, uid: str, **_: Any) -> None:
    if event["type"] == "DELETED":
        metrics.forget_shard(uid)
    else:
        metrics.observe_shard(dict(body))


@kopf.index(GROUP, VERSION, "runshards")
def shards_by_run(body: kopf.Body, namespace: str | None, **_: Any) -> dict[Any, Any]:
    raw = dict(body)
    run_uid = shard_run(raw)
    if run_uid is None:
        # No Run controls it (or its spec names another run): no run counts it. An empty mapping,
        # not None, so an entry from before an edit is dropped too.
        return {}
    return {(namespace, run_uid): (resource_version(raw), shard_view(raw))}


@kopf.index("batch", "v1", "jobs", labels={LABEL_RUN_UID: kopf.PRESENT})
def jobs_by_run(body: kopf.Body, namespace: str | None, **_: Any) -> dict[Any, Any]:
    raw = dict(body)
    run_uid = job_run(raw)
    return {} if run_uid is None else {(namespace, run_uid): job_view(raw)}


@kopf.index(GROUP, VERSION, "providers")
def providers_by_namespace(name: str, namespace: str | None, **_: Any) -> dict[Any, Any]:
    """The Providers that exist, by namespace: a run whose Provider is deleted fails (provider_gone.py)."""
    return {namespace: name}


@kopf.on.event(GROUP, VERSION, "runs")
async def run_changed(
    event: kopf.RawEvent, body: kopf.Body, uid: str, name: str, namespace: str | None, **_: Any
) -> None:
    if event["type"] == "DELETED":
        metrics.forget_run(namespace or "", name, uid)
    else:
        metrics.observe_run(dict(body))
    wake = _wakeups.get(uid)
    if wake is not None:
        wake.set()


@kopf.on.event(GROUP, VERSION, "runs")  # type: ignore[arg-type]
async def run_deleting(
    event: kopf.RawEvent,
    body: kopf.Body,
    uid: str,
    namespace: str,
    shards_by_run: kopf.Index[Any, Any],
    jobs_by_run: kopf.Index[Any, Any],
    memo: kopf.Memo,
    **_: Any,
) -> None:
    """A metered Run deleted mid-flight: stopped like a cancel, then marked Settled (deletion.py).

    kopf stops the Run's daemon on deletion, so the passes run here; this Run's later events wait
    (they are batched), and its account sees the Settled status once this returns."""
    raw = dict(body)
    if event["type"] == "DELETED" or not deletion.must_stop(raw):
        return
    controller: RunController = memo.run_controller
    # The daemon returns at its next pass (it sees the deletion); two passes must not overlap.
    wake = _wakeups.get(uid)
    if wake is not None:
        wake.set()
    while uid in _wakeups:
        await asyncio.sleep(0.1)
    memory = DaemonMemory()
    key = (namespace, uid)
    while True:
        shards = list(shards_by_run.get(key, []))
        jobs = list(jobs_by_run.get(key, []))
        try:
            interval = await asyncio.to_thread(deletion.stop, controller, raw, shards, jobs, memory)
        except Exception as err:  # keep stopping: the Run cannot go before its credits are final
            interval = backoff(memory, err, f"run {namespace}/{uid}")
        if interval is None:
            return
        await asyncio.sleep(interval)


@kopf.daemon(GROUP, VERSION, "runs", cancellation_timeout=5.0)  # type: ignore[arg-type]
async def run_daemon(
    body: kopf.Body,
    uid: str,
    namespace: str,
    stopped: kopf.DaemonStopped,
    shards_by_run: kopf.Index[Any, Any],
    jobs_by_run: kopf.Index[Any, Any],
    providers_by_namespace: kopf.Index[Any, Any],
    memo: kopf.Memo,
    **_: Any,
) -> None:
    controller: RunController = memo.run_controller
    # Errors never leave a pass (guard.py): a Run's content fails that Run alone, with a condition.
    memory = DaemonMemory()
    wake = _wakeups.setdefault(uid, asyncio.Event())
    key = (namespace, uid)
    try:
        while not stopped:
            wake.clear()
            raw = dict(body)
            if (raw.get("metadata") or {}).get("deletionTimestamp"):
                return
            shards = list(shards_by_run.get(key, []))
            jobs = list(jobs_by_run.get(key, []))
            providers = frozenset(providers_by_namespace.get(namespace, []))
            try:
                with metrics.reconcile_timer():
                    interval = await asyncio.to_thread(
                        controller.guarded, raw, shards, jobs, memory, providers
                    )
            except Exception as err:  # guarded() catches all; the daemon must outlive even a bug there
                interval = backoff(memory, err, f"run {namespace}/{uid}")
            if interval < IDLE_INTERVAL:
                _busy.add(uid)
            else:
                _busy.discard(uid)
            metrics.set_queue_depth(len(_busy))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), timeout=interval)
    finally:
        _wakeups.pop(uid, None)
        _busy.discard(uid)
        metrics.set_queue_depth(len(_busy))
