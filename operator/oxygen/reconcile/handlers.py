"""The kopf handlers: thin glue from watch events to the reconcilers.

Only stateless handler kinds are used (indexes and a daemon per Run): kopf writes no diff-base or
progress annotations on Runs and none on their children. The indexes map a run's uid to compact
views of its RunShards and Jobs, so a pass reads memory, not the API server.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import os
from typing import Any

import kopf

from oxygen import metrics
from oxygen.api.common import GROUP, VERSION
from oxygen.api.labels import LABEL_RUN_UID
from oxygen.execution.jobs import WorkerDefaults
from oxygen.kube.client import Kube, load_api_client
from oxygen.reconcile.runs import IDLE_INTERVAL, RunReconciler, RunState, Settings, _rv
from oxygen.status.views import job_view, shard_view
from oxygen.web import start_web

log = logging.getLogger("oxygen.operator")

_reconciler: RunReconciler | None = None
# A Run's daemon sleeps between passes; a change to the Run wakes it at once.
_wakeups: dict[str, asyncio.Event] = {}
# Runs whose daemon has work pending (not idle): the operator's queue depth.
_busy: set[str] = set()
_web: Any = None


def reconciler() -> RunReconciler:
    global _reconciler
    if _reconciler is None:
        settings = Settings(
            web_base_url=os.environ.get("OXYGEN_WEB_BASE_URL", "http://localhost:8080"),
            worker=WorkerDefaults.from_env(),
        )
        api_client = metrics.instrument_api_client(load_api_client())
        _reconciler = RunReconciler(Kube(api_client), settings)
    return _reconciler


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    settings.posting.enabled = False  # we post our own Events, with reasons users can filter on
    settings.persistence.finalizer = f"{GROUP}/operator"
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix=GROUP)
    settings.watching.server_timeout = 270
    settings.watching.client_timeout = 300
    settings.watching.connect_timeout = 30
    settings.networking.request_timeout = 60
    settings.execution.max_workers = int(os.environ.get("OXYGEN_MAX_WORKERS", "16"))
    # A standby takes over once the active peer's heartbeat is this old (kopf's default is 60 s).
    settings.peering.lifetime = int(os.environ.get("OXYGEN_PEERING_LIFETIME", "10"))
    reconciler()


@kopf.on.startup()
async def serve_web(**_: Any) -> None:
    """/metrics, /healthz and the run pages (status.webUrl)."""
    global _web
    metrics.count_watch_restarts()
    port = os.environ.get("OXYGEN_METRICS_PORT", "8080")
    if port.lower() in ("", "0", "off", "none"):
        return
    host = os.environ.get("OXYGEN_WEB_HOST", "0.0.0.0")
    try:
        _web = await start_web(host, int(port), reconciler().kube.api_client)
    except OSError as err:  # a taken port must not stop the operator; the log says why
        log.error("web server not started on port %s: %s", port, err)


@kopf.on.cleanup()
async def stop_web(**_: Any) -> None:
    if _web is not None:
        await _web.cleanup()


@kopf.on.event(GROUP, VERSION, "runshards")
async def shard_event(event: kopf.RawEvent, body: kopf.Body, uid: str, **_: Any) -> None:
    if event["type"] == "DELETED":
        metrics.forget_shard(uid)
    else:
        metrics.observe_shard(dict(body))


@kopf.index(GROUP, VERSION, "runshards")
def shards_by_run(body: kopf.Body, **_: Any) -> dict[str, Any]:
    raw = dict(body)
    return {raw["spec"]["runUid"]: (_rv(raw), shard_view(raw))}


@kopf.index("batch", "v1", "jobs", labels={LABEL_RUN_UID: kopf.PRESENT})
def jobs_by_run(body: kopf.Body, labels: kopf.Labels, **_: Any) -> dict[str, Any]:
    return {labels[LABEL_RUN_UID]: job_view(dict(body))}


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


@kopf.daemon(GROUP, VERSION, "runs", cancellation_timeout=5.0)  # type: ignore[arg-type]
async def run_daemon(
    body: kopf.Body,
    uid: str,
    stopped: kopf.DaemonStopped,
    shards_by_run: kopf.Index[str, Any],
    jobs_by_run: kopf.Index[str, Any],
    logger: kopf.Logger,
    **_: Any,
) -> None:
    state = RunState.from_body(body)
    rec = reconciler()
    wake = _wakeups.setdefault(uid, asyncio.Event())
    try:
        await _loop(body, uid, stopped, shards_by_run, jobs_by_run, logger, state, rec, wake)
    finally:
        _wakeups.pop(uid, None)
        _busy.discard(uid)
        metrics.set_queue_depth(len(_busy))


async def _loop(
    body: kopf.Body,
    uid: str,
    stopped: kopf.DaemonStopped,
    shards_by_run: kopf.Index[str, Any],
    jobs_by_run: kopf.Index[str, Any],
    logger: kopf.Logger,
    state: RunState,
    rec: RunReconciler,
    wake: asyncio.Event,
) -> None:
    while not stopped:
        wake.clear()
        snapshot = copy.deepcopy(dict(body))
        if snapshot.get("metadata", {}).get("deletionTimestamp"):
            return
        shards = list(shards_by_run.get(uid, []))
        jobs = list(jobs_by_run.get(uid, []))
        try:
            with metrics.reconcile_timer():
                interval = await asyncio.to_thread(rec.reconcile, snapshot, shards, jobs, state)
        except Exception as err:  # one bad pass must not kill the run's daemon; retry shortly
            logger.exception("reconcile failed: %s", err)
            interval = 2.0
        if interval < IDLE_INTERVAL:
            _busy.add(uid)
        else:
            _busy.discard(uid)
        metrics.set_queue_depth(len(_busy))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wake.wait(), timeout=interval)
