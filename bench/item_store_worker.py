"""The item-store benchmark's baseline pod: a key range of the items table, echoed, results COPYed back.

What a user of a bare Indexed Job would write against the same table: completion `i` reads rows
`i*BATCH <= id < (i+1)*BATCH` (one query), runs the same echo producer on each, and writes every
result back with one COPY into the results table. No per-item status anywhere else.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import sys

import psycopg

from oxygen.execution.producers import EchoProducer, ItemCall


def main() -> int:
    index = int(os.environ["JOB_COMPLETION_INDEX"])
    batch = int(os.environ["BATCH"])
    lo, hi = index * batch, (index + 1) * batch
    with psycopg.connect(os.environ["DSN"]) as conn:
        rows = conn.execute(
            f"select id, i from {os.environ['TABLE']} where id >= %s and id < %s order by id", (lo, hi)
        ).fetchall()
        outputs = asyncio.run(echo_all(rows))
        now = dt.datetime.now(dt.UTC)
        with conn.cursor().copy(
            f"copy {os.environ['RESULTS']} (id, status, attempt_count, outputs, finished_at) from stdin"
        ) as copy:
            for (row_id, _), out in zip(rows, outputs, strict=True):
                copy.write_row((row_id, "succeeded", 1, json.dumps(out), now))
    print(f"completion {index}: {len(rows)} rows")
    return 0


async def echo_all(rows: list[tuple[int, int]]) -> list[object]:
    producer = EchoProducer()
    out = []
    for row_id, i in rows:
        result = await producer.call(
            ItemCall(
                run_name="baseline",
                run_uid="baseline",
                item_id=str(row_id),
                row_id=str(row_id),
                inputs={"i": i},
                attempt=1,
            )
        )
        out.append(result.outputs)
    return out


if __name__ == "__main__":
    sys.exit(main())
