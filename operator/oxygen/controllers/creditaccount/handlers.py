"""kopf glue for CreditAccounts; importing this module registers the handlers (see cli/operator.py).

- an index of the runs' credit shares by (namespace, account), so a pass reads memory;
- a daemon per account: observe → decide → apply (a write only on change) when the account or one
  of its runs' shares changed (at most once a second), else every RESYNC_INTERVAL: an account's
  finished runs cost nothing between passes;
- the account metrics, from the watch events;
- deleted Runs whose account is gone (or going): nothing to fold them into, their finalizer goes.
"""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import kopf

from oxygen import metrics
from oxygen.api.common import GROUP, VERSION
from oxygen.controllers import runtime
from oxygen.controllers.creditaccount.apply import apply
from oxygen.controllers.creditaccount.decide import decide
from oxygen.controllers.creditaccount.observe import AccountMemory, observe
from oxygen.credits.gate import account_of, share_of
from oxygen.credits.ledger import RETIRE_FINALIZER
from oxygen.kube.client import Kube

PASS_INTERVAL = 1.0
RESYNC_INTERVAL = 30.0

# Each account daemon's wake-up, by (namespace, name); each run's last share, by uid.
_wakeups: dict[tuple[str, str], asyncio.Event] = {}
_shares: dict[str, tuple[tuple[str, str], Any]] = {}


def _wake(key: tuple[str, str]) -> None:
    wake = _wakeups.get(key)
    if wake is not None:
        wake.set()


@kopf.on.event(GROUP, VERSION, "creditaccounts")
async def account_event(
    event: kopf.RawEvent, body: kopf.Body, name: str, namespace: str | None, **_: Any
) -> None:
    if event["type"] == "DELETED":
        metrics.forget_credit_account(namespace or "", name)
    else:
        metrics.observe_credit_account(dict(body))
    _wake((namespace or "", name))


@kopf.on.event(GROUP, VERSION, "runs")
async def run_share_changed(
    event: kopf.RawEvent, body: kopf.Body, uid: str, namespace: str | None, **_: Any
) -> None:
    """A run's share of its account changed (or the run went): that account's daemon passes."""
    seen = _shares.pop(uid, None)
    if event["type"] == "DELETED":
        if seen is not None:
            _wake(seen[0])
        return
    raw = dict(body)
    now = ((namespace or "", account_of(raw)), share_of(raw))
    _shares[uid] = now
    if seen != now:
        _wake(now[0])
        if seen is not None and seen[0] != now[0]:
            _wake(seen[0])


@kopf.index(GROUP, VERSION, "runs")
async def runs_by_account(body: kopf.Body, namespace: str | None, **_: Any) -> dict[Any, Any]:
    raw = dict(body)
    return {(namespace, account_of(raw)): share_of(raw)}


@kopf.index(GROUP, VERSION, "creditaccounts")
async def accounts_by_name(body: kopf.Body, name: str, namespace: str | None, **_: Any) -> dict[Any, Any]:
    """(namespace, name) → whether the account is being deleted."""
    return {(namespace, name): bool(body.get("metadata", {}).get("deletionTimestamp"))}


def _release(kube: Kube, namespace: str, runs: list[str]) -> None:
    for run in runs:
        kube.set_finalizer("runs", namespace, run, RETIRE_FINALIZER, present=False)


@kopf.on.event(GROUP, VERSION, "runs")  # type: ignore[arg-type]
async def run_without_account(
    event: kopf.RawEvent,
    body: kopf.Body,
    name: str,
    namespace: str | None,
    accounts_by_name: kopf.Index[Any, Any],
    memo: kopf.Memo,
    **_: Any,
) -> None:
    """A Run being deleted under the account's finalizer, with no account (left) to fold it into."""
    meta = body.get("metadata", {})
    if event["type"] == "DELETED" or not meta.get("deletionTimestamp") or namespace is None:
        return
    if RETIRE_FINALIZER not in (meta.get("finalizers") or []):
        return
    going = list(accounts_by_name.get((namespace, account_of(dict(body))), []))
    if going and not any(going):
        return  # the account's daemon folds it in
    await asyncio.to_thread(_release, runtime.kube(memo), namespace, [name])


def _pass(body: dict[str, Any], shares: list[Any], memory: AccountMemory, kube: Kube) -> None:
    plan = decide(observe(body, shares), memory.last)
    apply(kube, body, plan, memory)


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
    """Derive the account's status from its runs (written only on change) when something changed."""
    memory = AccountMemory()
    kube = runtime.kube(memo)
    wake = _wakeups.setdefault((namespace, name), asyncio.Event())
    try:
        while not stopped:
            wake.clear()
            snapshot = copy.deepcopy(dict(body))
            shares = list(runs_by_account.get((namespace, name), []))
            failed = False
            try:
                await asyncio.to_thread(_pass, snapshot, shares, memory, kube)
            except Exception as err:  # keep the daemon alive; the next pass retries
                logger.exception("account reconcile failed: %s", err)
                failed = True
            # At most a pass a second; then only a change (or the resync, or a retry) brings the next.
            waited = 0.0
            while not stopped and (waited < PASS_INTERVAL or not (wake.is_set() or failed)):
                await stopped.wait(PASS_INTERVAL)
                waited += PASS_INTERVAL
                if waited >= RESYNC_INTERVAL:
                    break
    finally:
        if _wakeups.get((namespace, name)) is wake:
            del _wakeups[(namespace, name)]
    if body.get("metadata", {}).get("deletionTimestamp"):
        # The account goes away: runs waiting for it to fold them in are let go.
        waiting = [
            s.name for s in runs_by_account.get((namespace, name), []) if s.deleted_at and s.held_for_account
        ]
        await asyncio.to_thread(_release, kube, namespace, waiting)
