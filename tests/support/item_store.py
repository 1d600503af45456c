"""Runs whose operator keeps items in the PostgreSQL item store: their items are read from its rows."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import psycopg
from kubernetes import client

from oxygen.itemstore.store import ItemStore
from tests.support.runs import Runs


class StoreRuns(Runs):
    """`Runs` whose `items()` come from the store (the RunShards hold a summary only)."""

    def __init__(self, api: client.ApiClient, namespace: str, dsn: str) -> None:
        super().__init__(api, namespace)
        self.dsn = dsn
        self.store = ItemStore(dsn)

    def uid(self, name: str) -> str:
        return str(self.get(name)["metadata"]["uid"])

    def items(self, name: str) -> dict[str, dict[str, Any]]:
        """Every item's latest row by id, shaped like a RunShard's status item (camelCase)."""
        latest: dict[str, dict[str, Any]] = {}
        for row in self.store.iterate(self.uid(name)):
            item: dict[str, Any] = {
                "id": row.item_id,
                "rowId": row.row_id,
                "status": row.status,
                "attemptCount": row.attempt_count,
                "outputs": row.outputs,
                "error": row.error,
                "errorClass": row.error_class,
                "creditsUsed": _credits(row.credits_used),
                "startedAt": row.started_at,
                "finishedAt": row.finished_at,
                "latencySeconds": row.latency_seconds,
            }
            latest[row.item_id] = {k: v for k, v in item.items() if v is not None}
        return latest

    def row_count(self, uid: str) -> int:
        with psycopg.connect(self.dsn) as conn:
            row = conn.execute("select count(*) from oxygen.items where run_uid = %s", (uid,)).fetchone()
        return int(row[0]) if row else 0


def _credits(value: Decimal) -> str:
    text = format(value.normalize(), "f")
    return text if text != "-0" else "0"
