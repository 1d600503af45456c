"""Carrying out an AccountPlan: the only code of this controller that calls the API server.

The status is written first, over the version of the account it was derived from (a pass on a
stale copy must not write back an older `retired`: that would undo a deleted run's charges). Then
the finalizers of deleted runs the written status holds are released; Events come last.
"""

from __future__ import annotations

import logging
from typing import Any

from oxygen.controllers.creditaccount.decide import AccountPlan
from oxygen.controllers.creditaccount.observe import AccountMemory
from oxygen.credits.ledger import RETIRE_FINALIZER
from oxygen.kube.client import ApiException, Kube

log = logging.getLogger("oxygen.creditaccount")


def apply(kube: Kube, body: dict[str, Any], plan: AccountPlan, memory: AccountMemory) -> None:
    meta = body["metadata"]
    if plan.status is not None:
        try:
            kube.patch_status(
                "creditaccounts", meta["namespace"], meta["name"], plan.status, meta.get("resourceVersion")
            )
        except ApiException as err:
            if err.status == 409:  # our copy is behind (the watch catches up): the next pass redoes it
                return
            raise
        memory.last = plan.comparable
    for run in plan.release:
        kube.set_finalizer("runs", meta["namespace"], run, RETIRE_FINALIZER, present=False)
    for notice in plan.notices:
        try:
            kube.event({"kind": "CreditAccount", **body}, notice.reason, notice.message, notice.type)
        except ApiException as err:  # an Event is best effort; the status write succeeded
            log.warning("could not post event %s: %s", notice.reason, err.reason)
