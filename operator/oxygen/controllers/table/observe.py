"""Observe: the Table, its Secret's DSN (read by the operator, never written anywhere) and its facts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from oxygen.api.table import Table, TableStatus
from oxygen.kube.client import ApiException, Kube
from oxygen.tables.describe import TableFacts, describe
from oxygen.tables.errors import TableError
from oxygen.timefmt import rfc3339


@dataclass(frozen=True)
class Observed:
    table: Table
    facts: TableFacts | None
    problem: TableError | None  # why there are no facts
    now: str


@dataclass
class TableState:
    written: TableStatus

    @classmethod
    def from_body(cls, body: dict[str, Any]) -> TableState:
        return cls(written=TableStatus.model_validate(body.get("status") or {}))


def dsn_of(kube: Kube, table: Table) -> str:
    """The DSN in the Table's Secret key; TableError when it cannot be read."""
    ref = table.spec.postgres.secret_ref
    where = f"(spec.postgres.secretRef of Table {table.metadata.name})"
    try:
        value = kube.read_secret_key(table.metadata.namespace, ref.name, ref.key)
    except ApiException as err:
        raise TableError("SecretUnreadable", f'secrets "{ref.name}": {err.reason} {where}') from None
    if value is None:
        raise TableError("SecretNotFound", f'secrets "{ref.name}" has no key "{ref.key}" {where}')
    return value


class Reader:
    def __init__(self, kube: Kube) -> None:
        self.kube = kube

    def observe(self, body: dict[str, Any]) -> Observed:
        table = Table.model_validate(body)
        try:
            dsn = dsn_of(self.kube, table)
            facts = describe(dsn, table.spec.postgres, table.metadata.namespace, table.metadata.name)
        except TableError as err:
            return Observed(table, None, err, rfc3339())
        return Observed(table, facts, None, rfc3339())
