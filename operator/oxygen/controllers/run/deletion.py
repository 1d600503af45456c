"""A metered Run deleted mid-flight: stopped like a cancel before its account folds it in.

Its Jobs would otherwise outlive the Run's last status write (they go by garbage collection, in
the background) and keep calling providers: calls the provider charges but no status captures. So a
Run being deleted under the account's finalizer (ledger.RETIRE_FINALIZER) whose figures are not final
(ledger.settled) is canceled: its Jobs deleted and confirmed gone with the API server, its unfinished
items skipped, its credits accounted as for any finished run. Then the `Settled` condition says its
status holds its final credits, and the account folds it in (creditaccount/retire.py).

kopf stops a Run's daemon once the Run is being deleted, so handlers.py drives these passes from the
Run's event handler. The finalizer needs the operator: with the operator gone, the Run waits for it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from oxygen.api.run import TERMINAL_PHASES, RunStatus
from oxygen.controllers.run.guard import DaemonMemory
from oxygen.controllers.run.observe import now
from oxygen.controllers.run.types import Event, Plan
from oxygen.credits import ledger
from oxygen.status.run import set_condition
from oxygen.status.views import JobView, ShardView

if TYPE_CHECKING:
    from oxygen.controllers.run.reconcile import RunController

SETTLED_MESSAGE = "the run was deleted: its Jobs were stopped and its credits are final"


def must_stop(body: dict[str, Any]) -> bool:
    """Being deleted, held for its account, and its Jobs may still spend credits."""
    meta = body.get("metadata") or {}
    if not meta.get("deletionTimestamp") or ledger.RETIRE_FINALIZER not in (meta.get("finalizers") or []):
        return False
    status = body.get("status")
    return not ledger.settled(status if isinstance(status, dict) else {})


def marked(status: RunStatus) -> bool:
    return any(c.type == ledger.SETTLED_CONDITION and c.status == "True" for c in status.conditions)


def settled(status: RunStatus, when: str, generation: int) -> Plan:
    """The Settled condition on a stopped run, with one Event."""
    out = status.model_copy(deep=True)
    out.conditions = set_condition(
        out.conditions, ledger.SETTLED_CONDITION, True, "RunDeleted", SETTLED_MESSAGE, when, generation
    )
    return Plan(status=out, events=[Event("Settled", SETTLED_MESSAGE)])


def stop(
    controller: RunController,
    body: dict[str, Any],
    indexed_shards: list[tuple[int, ShardView]],
    indexed_jobs: list[JobView],
    memory: DaemonMemory,
) -> float | None:
    """One pass stopping a deleted run; how long until the next, or None once it is settled."""
    state = memory.state
    if state is not None and state.status.phase in TERMINAL_PHASES:
        if not marked(state.status):
            generation = int((body.get("metadata") or {}).get("generation") or 0)
            controller.applier.apply(settled(state.status, now(), generation), body, state)
        return None
    canceled = {**body, "spec": {**(body.get("spec") or {}), "cancel": True}}
    return controller.guarded(canceled, indexed_shards, indexed_jobs, memory)
