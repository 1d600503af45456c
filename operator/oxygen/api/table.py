"""The Table resource: a real PostgreSQL table whose columns column runs fill, cell by cell.

The rows live in the user's database (the DSN in a Secret key); the operator reads them, writes each
cell's value into the table's column (jsonb) and its status, error, run and item into its own side
table (`oxygen.cells` in the same database, see oxygen/tables/). Status is observed, for humans.
"""

from __future__ import annotations

from pydantic import Field

from oxygen.api.common import Condition, Model, ObjectMeta

# `public.leads` or `leads`: plain identifiers only, so a name is never SQL.
TABLE_NAME_PATTERN = r"^([A-Za-z_][A-Za-z0-9_$]{0,62}\.)?[A-Za-z_][A-Za-z0-9_$]{0,62}$"
COLUMN_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_$]{0,62}$"


class SecretKeyRef(Model):
    name: str = Field(min_length=1, max_length=253)
    key: str = Field(min_length=1, max_length=253)


class TablePostgres(Model):
    secret_ref: SecretKeyRef
    table: str = Field(pattern=TABLE_NAME_PATTERN, max_length=127)
    row_id_column: str = Field(default="id", pattern=COLUMN_NAME_PATTERN)


class TableSpec(Model):
    postgres: TablePostgres


class TableColumn(Model):
    name: str
    type: str
    # The run that last wrote a cell of this column.
    filled_by: str | None = None
    filled: int = 0
    failed: int = 0
    empty: int = 0


class TableStatus(Model):
    rows: int | None = None
    columns: list[TableColumn] = Field(default_factory=list)
    observed_generation: int = 0
    conditions: list[Condition] = Field(default_factory=list)


class Table(Model):
    api_version: str = "oxygen.dev/v1alpha1"
    kind: str = "Table"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: TableSpec
    status: TableStatus = Field(default_factory=TableStatus)
