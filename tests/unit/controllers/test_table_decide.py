"""The Table controller's decision: status from what the database holds, Ready and its Events."""

from __future__ import annotations

from typing import Any

from oxygen.api.table import Table, TableColumn, TableStatus
from oxygen.cli.tables import table_shape
from oxygen.controllers.table.decide import decide
from oxygen.controllers.table.observe import Observed, TableState
from oxygen.tables.describe import ColumnFacts, TableFacts
from oxygen.tables.errors import TableError

NOW, LATER = "2026-01-01T00:00:00Z", "2026-01-01T00:01:00Z"


def body(generation: int = 1) -> dict[str, Any]:
    return {
        "apiVersion": "oxygen.dev/v1alpha1",
        "kind": "Table",
        "metadata": {"name": "leads", "namespace": "team-a", "uid": "u1", "generation": generation},
        "spec": {"postgres": {"secretRef": {"name": "crm-db", "key": "dsn"}, "table": "public.leads"}},
    }


FACTS = TableFacts(
    rows=10,
    columns=[
        ColumnFacts("id", "text", filled=10),
        ColumnFacts("domain", "jsonb", filled=7, failed=2, empty=1, filled_by="run-2"),
    ],
)


def observed(facts: TableFacts | None, problem: TableError | None = None, now: str = NOW) -> Observed:
    return Observed(Table.model_validate(body()), facts, problem, now)


def test_facts_become_the_status_and_ready() -> None:
    decision = decide(observed(FACTS), TableState(TableStatus()))
    assert decision.status is not None and decision.events == []
    assert decision.status.rows == 10
    assert decision.status.columns[1] == TableColumn(
        name="domain", type="jsonb", filled_by="run-2", filled=7, failed=2, empty=1
    )
    (ready,) = decision.status.conditions
    assert (ready.type, ready.status, ready.reason, ready.message) == (
        "Ready",
        "True",
        "Ready",
        "public.leads: 10 rows",
    )
    assert Table.model_validate(body()).spec.postgres.row_id_column == "id"


def test_nothing_changed_is_no_write() -> None:
    state = TableState(TableStatus())
    first = decide(observed(FACTS), state)
    assert first.status is not None
    state.written = first.status
    assert decide(observed(FACTS, now=LATER), state).status is None


def test_an_unreachable_database_is_a_condition_and_one_event_keeping_the_last_figures() -> None:
    state = TableState(TableStatus())
    state.written = decide(observed(FACTS), state).status  # type: ignore[assignment]
    problem = TableError("DatabaseUnreachable", 'connection to server at "127.0.0.1", port 1 failed')
    down = decide(observed(None, problem, LATER), state)
    assert down.status is not None
    assert (down.status.rows, len(down.status.columns)) == (10, 2)
    (ready,) = down.status.conditions
    assert (ready.status, ready.reason, ready.last_transition_time) == ("False", "DatabaseUnreachable", LATER)
    assert [(e.reason, e.type) for e in down.events] == [("DatabaseUnreachable", "Warning")]
    state.written = down.status
    assert decide(observed(None, problem, LATER), state).status is None, "still down: no write, no Event"
    other = decide(observed(None, TableError("TableNotFound", "gone"), LATER), state)
    assert [e.reason for e in other.events] == ["TableNotFound"], "a new reason is a new Event"
    back = decide(observed(FACTS, now="2026-01-01T00:02:00Z"), state)
    assert back.status is not None and back.events == []
    assert back.status.conditions[0].status == "True"


def test_cli_shape_names_the_secret_never_its_value() -> None:
    full = {**body(), "status": decide(observed(FACTS), TableState(TableStatus())).status.wire()}  # type: ignore[union-attr]
    shape = table_shape(full)
    assert shape["secret"] == {"name": "crm-db", "key": "dsn"}
    assert (shape["rows"], shape["ready"], shape["row_id_column"]) == (10, True, "id")
    assert shape["columns"][1] == {
        "name": "domain", "type": "jsonb", "filled_by": "run-2", "filled": 7, "failed": 2, "empty": 1,
    }  # fmt: skip
