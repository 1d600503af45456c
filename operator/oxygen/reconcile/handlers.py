"""The kopf handlers of the operator as a whole (settings, the web server) and of CreditAccounts.

The Run controller's glue is oxygen.controllers.run.handlers.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import os
from typing import Any

import kopf

from oxygen import metrics
from oxygen.api.common import GROUP, VERSION
from oxygen.controllers import runtime
from oxygen.credits.gate import account_of, share_of
from oxygen.reconcile.accounts import AccountReconciler, AccountState
from oxygen.web import start_web

log = logging.getLogger("oxygen.operator")

_web: Any = None


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
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
    runtime.settings(memo)
    runtime.kube(memo)


@kopf.on.startup()
async def serve_web(memo: kopf.Memo, **_: Any) -> None:
    """/metrics, /healthz and the run pages (status.webUrl)."""
    global _web
    port = os.environ.get("OXYGEN_METRICS_PORT", "8080")
    if port.lower() in ("", "0", "off", "none"):
        return
    host = os.environ.get("OXYGEN_WEB_HOST", "0.0.0.0")
    try:
        _web = await start_web(host, int(port), runtime.kube(memo).api_client)
    except OSError as err:  # a taken port must not stop the operator; the log says why
        log.error("web server not started on port %s: %s", port, err)


@kopf.on.cleanup()
async def stop_web(**_: Any) -> None:
    if _web is not None:
        await _web.cleanup()


@kopf.on.event(GROUP, VERSION, "creditaccounts")
async def account_event(
    event: kopf.RawEvent, body: kopf.Body, name: str, namespace: str | None, **_: Any
) -> None:
    if event["type"] == "DELETED":
        metrics.forget_credit_account(namespace or "", name)
    else:
        metrics.observe_credit_account(dict(body))


@kopf.index(GROUP, VERSION, "runs")
def runs_by_account(body: kopf.Body, namespace: str | None, **_: Any) -> dict[Any, Any]:
    raw = dict(body)
    return {(namespace, account_of(raw)): share_of(raw)}


@kopf.daemon(GROUP, VERSION, "creditaccounts", cancellation_timeout=5.0)  # type: ignore[arg-type]
async def account_daemon(
    body: kopf.Body,
    name: str,
    namespace: str,
    stopped: kopf.DaemonStopped,
    runs_by_account: kopf.Index[Any, Any],
    memo: kopf.Memo,
    logger: kopf.Logger,
    **_: Any,
) -> None:
    """About once a second, derive the account's status from its runs (written only on change)."""
    state = AccountState()
    rec = AccountReconciler(runtime.kube(memo))
    while not stopped:
        snapshot = copy.deepcopy(dict(body))
        shares = list(runs_by_account.get((namespace, name), []))
        try:
            await asyncio.to_thread(rec.reconcile, snapshot, shares, state)
        except Exception as err:  # keep the daemon alive; the next pass retries
            logger.exception("account reconcile failed: %s", err)
        await stopped.wait(1.0)
