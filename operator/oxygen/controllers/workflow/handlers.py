"""kopf glue for Workflows; importing this module registers the handlers (see cli/operator.py).

- an index of the Runs labelled with each workflow (`oxygen.dev/workflow`; only those its status
  records count, see managed.py) and an index of finished Runs per namespace (for event triggers):
  passes read memory, not the API server;
- a daemon per Workflow: about once a second, observe → decide → apply (schedule, event triggers,
  history, status in one pass);
- the webhook server, started with the operator (`OXYGEN_WEBHOOK_PORT`, default 8082; `0` turns it
  off; `OXYGEN_WEBHOOK_HOST`, default 0.0.0.0).

The schedule reads time from `clock.clock_from_env()`: `OXYGEN_FAKE_CLOCK_FILE` is for tests only.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import os
from typing import Any

import kopf
from aiohttp import web

from oxygen.api.common import GROUP, VERSION
from oxygen.api.run import TERMINAL_PHASES
from oxygen.controllers import runtime
from oxygen.controllers.workflow.apply import WorkflowApplier
from oxygen.controllers.workflow.clock import Clock, clock_from_env
from oxygen.controllers.workflow.decide import decide
from oxygen.controllers.workflow.observe import WorkflowMemory, observe
from oxygen.controllers.workflow.runs import LABEL_WORKFLOW, workflow_label
from oxygen.controllers.workflow.views import run_view
from oxygen.controllers.workflow.webhook import start_webhook_server

log = logging.getLogger("oxygen.workflow")

WEBHOOK_PORT_ENV = "OXYGEN_WEBHOOK_PORT"
WEBHOOK_HOST_ENV = "OXYGEN_WEBHOOK_HOST"
DEFAULT_WEBHOOK_PORT = 8082
PASS_INTERVAL = 1.0

_clock: Clock | None = None
_webhook: web.AppRunner | None = None


def schedule_clock() -> Clock:
    global _clock
    if _clock is None:
        _clock = clock_from_env()
    return _clock


def one_pass(
    body: dict[str, Any],
    runs: list[Any],
    finished: list[Any],
    memory: WorkflowMemory,
    applier: WorkflowApplier,
) -> None:
    """observe → decide → apply for one Workflow (blocking: call it from a thread)."""
    seen = observe(body, runs, finished, memory, schedule_clock())
    plan = decide(
        seen.body,
        seen.runs,
        seen.now,
        memory.last_schedule,
        wall_now=seen.wall_now,
        finished_runs=seen.finished_runs,
        fired=memory.fired,
        marked=memory.marked,
    )
    applier.apply(seen.body, plan, memory)


@kopf.on.startup()
async def start_webhook(memo: kopf.Memo, **_: Any) -> None:
    global _webhook
    port = int(os.environ.get(WEBHOOK_PORT_ENV, str(DEFAULT_WEBHOOK_PORT)))
    if port == 0:
        log.info("webhook server disabled (%s=0)", WEBHOOK_PORT_ENV)
        return
    host = os.environ.get(WEBHOOK_HOST_ENV, "0.0.0.0")
    try:
        _webhook = await start_webhook_server(host, port, runtime.kube(memo))
    except OSError as err:  # e.g. the port is taken: the rest of the operator still works
        log.error("webhook server not started on %s:%d: %s", host, port, err)


@kopf.on.cleanup()
async def stop_webhook(**_: Any) -> None:
    global _webhook
    if _webhook is not None:
        await _webhook.cleanup()
        _webhook = None


@kopf.index(GROUP, VERSION, "runs", labels={LABEL_WORKFLOW: kopf.PRESENT})
async def runs_by_workflow(
    body: kopf.Body, namespace: str | None, labels: kopf.Labels, **_: Any
) -> dict[Any, Any]:
    return {(namespace, labels[LABEL_WORKFLOW]): run_view(dict(body))}


def _finished(body: kopf.Body, **_: Any) -> bool:
    return (body.get("status") or {}).get("phase") in TERMINAL_PHASES


@kopf.index(GROUP, VERSION, "runs", when=_finished)
async def finished_runs(body: kopf.Body, namespace: str | None, **_: Any) -> dict[Any, Any]:
    return {namespace: run_view(dict(body))}


@kopf.daemon(GROUP, VERSION, "workflows", cancellation_timeout=5.0)  # type: ignore[arg-type]
async def workflow_daemon(
    body: kopf.Body,
    name: str,
    namespace: str,
    stopped: kopf.DaemonStopped,
    runs_by_workflow: kopf.Index[Any, Any],
    finished_runs: kopf.Index[Any, Any],
    memo: kopf.Memo,
    logger: kopf.Logger,
    **_: Any,
) -> None:
    """About once a second: schedule, event triggers, history and status, in one pass."""
    memory = WorkflowMemory()
    applier = WorkflowApplier(runtime.kube(memo))
    key = (namespace, workflow_label(name))
    while not stopped:
        snapshot = copy.deepcopy(dict(body))
        if snapshot.get("metadata", {}).get("deletionTimestamp"):
            return
        runs = list(runs_by_workflow.get(key, []))
        events = snapshot.get("spec", {}).get("triggers", {}).get("events")
        done = list(finished_runs.get(namespace, [])) if events else []
        try:
            await asyncio.to_thread(one_pass, snapshot, runs, done, memory, applier)
        except Exception as err:  # one bad pass must not kill the daemon; the next one retries
            logger.exception("workflow pass failed: %s", err)
        await stopped.wait(PASS_INTERVAL)
