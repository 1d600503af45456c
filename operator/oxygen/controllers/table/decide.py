"""Decide: a Table's status from what its database holds. Pure.

`Ready` is True when the database answers and the table and its row id column exist; otherwise False
with the reason (SecretNotFound, DatabaseUnreachable, TableNotFound, RowIdColumnNotFound, …) and the
database's own message, and one Warning Event when it turns False. Rows and columns keep their last
observed values while the database is away.
"""

from __future__ import annotations

from dataclasses import dataclass

from oxygen.api.common import Condition
from oxygen.api.table import TableColumn, TableStatus
from oxygen.controllers.run.types import Event
from oxygen.controllers.table.observe import Observed, TableState


@dataclass(frozen=True)
class Decision:
    status: TableStatus | None  # None: nothing changed, no write
    events: list[Event]


def decide(obs: Observed, state: TableState) -> Decision:
    written = state.written
    if obs.facts is not None:
        rows: int | None = obs.facts.rows
        columns = [
            TableColumn(
                name=c.name,
                type=c.type,
                filled_by=c.filled_by,
                filled=c.filled,
                failed=c.failed,
                empty=c.empty,
            )
            for c in obs.facts.columns
        ]
    else:
        rows, columns = written.rows, written.columns
    ready = condition(obs, written.conditions)
    status = TableStatus(
        rows=rows,
        columns=columns,
        observed_generation=obs.table.metadata.generation,
        conditions=[ready],
    )
    before = next((c for c in written.conditions if c.type == "Ready"), None)
    events = []
    if ready.status == "False" and (
        before is None or before.status != "False" or before.reason != ready.reason
    ):
        events.append(Event(ready.reason, ready.message, "Warning"))
    if status == written:
        return Decision(None, [])
    return Decision(status, events)


def condition(obs: Observed, previous: list[Condition]) -> Condition:
    if obs.problem is None:
        status, reason = "True", "Ready"
        message = f"{obs.table.spec.postgres.table}: {obs.facts.rows if obs.facts else 0} rows"
    else:
        status, reason, message = "False", obs.problem.reason, obs.problem.message
    old = next((c for c in previous if c.type == "Ready"), None)
    since = old.last_transition_time if old is not None and old.status == status else obs.now
    return Condition(
        type="Ready",
        status=status,
        reason=reason,
        message=message,
        last_transition_time=since,
        observed_generation=obs.table.metadata.generation,
    )
