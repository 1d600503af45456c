"""kopf glue of the Table controller: a daemon per Table, one observe → decide → apply pass every
`OXYGEN_TABLE_INTERVAL` seconds (default 5), sooner after its spec changed."""

from __future__ import annotations

import asyncio
import copy
import os
from typing import Any

import kopf

from oxygen.api.common import GROUP, VERSION
from oxygen.controllers import runtime
from oxygen.controllers.table.apply import Applier
from oxygen.controllers.table.decide import decide
from oxygen.controllers.table.observe import Reader, TableState


def interval() -> float:
    return float(os.environ.get("OXYGEN_TABLE_INTERVAL", "5"))


def reconcile(reader: Reader, applier: Applier, body: dict[str, Any], state: TableState) -> None:
    """One pass: observe → decide → apply."""
    obs = reader.observe(body)
    applier.apply(decide(obs, state), body, state)


@kopf.daemon(GROUP, VERSION, "tables", cancellation_timeout=5.0)
async def table_daemon(
    body: kopf.Body, stopped: kopf.DaemonStopped, memo: kopf.Memo, logger: kopf.Logger, **_: Any
) -> None:
    kube = runtime.kube(memo)
    reader, applier = Reader(kube), Applier(kube)
    state = TableState.from_body(dict(body))
    seen = -1
    while not stopped:
        snapshot = copy.deepcopy(dict(body))
        try:
            await asyncio.to_thread(reconcile, reader, applier, snapshot, state)
        except Exception as err:  # keep the daemon alive; the next pass retries
            logger.exception("table reconcile failed: %s", err)
        seen = int(snapshot["metadata"].get("generation") or 0)
        waited = 0.0
        while not stopped and waited < interval():
            await stopped.wait(0.5)
            waited += 0.5
            if int(body["metadata"].get("generation") or 0) != seen:
                break
