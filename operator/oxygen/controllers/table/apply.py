"""Apply: the Table controller's only writes, its status and then its Events."""

from __future__ import annotations

from typing import Any

from oxygen.controllers.table.decide import Decision
from oxygen.controllers.table.observe import TableState
from oxygen.kube.client import Kube


class Applier:
    def __init__(self, kube: Kube) -> None:
        self.kube = kube

    def apply(self, decision: Decision, body: dict[str, Any], state: TableState) -> None:
        if decision.status is None:
            return
        meta = body["metadata"]
        self.kube.patch_status("tables", meta["namespace"], meta["name"], decision.status.wire())
        state.written = decision.status
        for event in decision.events:
            self.kube.event(body, event.reason, event.message, type_=event.type)
