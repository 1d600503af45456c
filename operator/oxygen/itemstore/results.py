"""Writing results back: one UPDATE … FROM unnest(arrays) per batch of rows, never a statement per row.

Used by the worker (its scoped role may update only the result columns of its run's rows) and by the
operator (which may also point rows at the round that took them over).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Final

import psycopg

from oxygen.itemstore.rows import Result

# Rows per statement: a few hundred KiB of parameters at most for typical outputs.
WRITE_BATCH: Final = 1000


def write_results(
    conn: psycopg.Connection[Any],
    run_uid: str,
    round_: int,
    results: Sequence[Result],
    *,
    with_superseded: bool = False,
    batch: int = WRITE_BATCH,
) -> int:
    """Write `results` (rows of one round) in statements of `batch` rows; returns the rows updated."""
    updated = 0
    superseded = ", superseded_by = v.superseded_by" if with_superseded else ""
    query = f"""
        update oxygen.items i set
            status = v.status, attempt_count = v.attempt_count, outputs = v.outputs::jsonb,
            error = v.error, error_class = v.error_class, credits_used = v.credits_used,
            started_at = v.started_at::timestamptz, finished_at = v.finished_at::timestamptz,
            latency_seconds = v.latency_seconds{superseded}
        from unnest(%(ordinal)s::bigint[], %(status)s::text[], %(attempt_count)s::int[],
                    %(outputs)s::text[], %(error)s::text[], %(error_class)s::text[],
                    %(credits_used)s::numeric[], %(started_at)s::text[], %(finished_at)s::text[],
                    %(latency_seconds)s::float8[], %(superseded_by)s::text[])
            as v(ordinal, status, attempt_count, outputs, error, error_class, credits_used, started_at,
                 finished_at, latency_seconds, superseded_by)
        where i.run_uid = %(uid)s and i.round = %(round)s and i.ordinal = v.ordinal
    """
    for start in range(0, len(results), batch):
        chunk = results[start : start + batch]
        params: dict[str, Any] = {
            "uid": run_uid,
            "round": round_,
            "ordinal": [r.ordinal for r in chunk],
            "status": [r.status for r in chunk],
            "attempt_count": [r.attempt_count for r in chunk],
            "outputs": [None if r.outputs is None else json.dumps(r.outputs) for r in chunk],
            "error": [r.error for r in chunk],
            "error_class": [r.error_class for r in chunk],
            "credits_used": [r.credits_used for r in chunk],
            "started_at": [r.started_at for r in chunk],
            "finished_at": [r.finished_at for r in chunk],
            "latency_seconds": [r.latency_seconds for r in chunk],
            "superseded_by": [r.superseded_by for r in chunk],
        }
        cur = conn.execute(query, params)
        updated += cur.rowcount
    return updated
