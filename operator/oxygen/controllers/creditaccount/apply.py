"""Carrying out an AccountPlan: the only code of this controller that calls the API server.

The status is written first; Events are posted only after that write succeeded.
"""

from __future__ import annotations

import logging
from typing import Any

from oxygen.controllers.creditaccount.decide import AccountPlan
from oxygen.controllers.creditaccount.observe import AccountMemory
from oxygen.kube.client import ApiException, Kube

log = logging.getLogger("oxygen.creditaccount")


def apply(kube: Kube, body: dict[str, Any], plan: AccountPlan, memory: AccountMemory) -> None:
    if plan.status is None:
        return
    meta = body["metadata"]
    kube.patch_status("creditaccounts", meta["namespace"], meta["name"], plan.status)
    memory.last = plan.comparable
    for notice in plan.notices:
        try:
            kube.event({"kind": "CreditAccount", **body}, notice.reason, notice.message, notice.type)
        except ApiException as err:  # an Event is best effort; the status write succeeded
            log.warning("could not post event %s: %s", notice.reason, err.reason)
