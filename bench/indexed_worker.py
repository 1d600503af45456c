"""The baseline's pod: the same echo work over its slice of rows, with no per-item status.

It reads the rows from the ConfigMap (as a Run's worker reads its RunShard) and runs the same
echo producer on each, then exits: what a user of a bare Indexed Job would write.
"""

from __future__ import annotations

import asyncio
import csv
import io
import os
import sys

from kubernetes import client, config

from oxygen.execution.producers import EchoProducer, ItemCall


def main() -> int:
    index = int(os.environ["JOB_COMPLETION_INDEX"])
    batch = int(os.environ["BATCH"])
    api = config.new_client_from_config()
    data = client.CoreV1Api(api).read_namespaced_config_map(
        os.environ["ROWS_CONFIGMAP"], os.environ["NAMESPACE"]
    )
    rows = list(csv.DictReader(io.StringIO(data.data["rows.csv"])))[index * batch : (index + 1) * batch]
    asyncio.run(echo_all(rows, index * batch))
    print(f"completion {index}: {len(rows)} rows")
    return 0


async def echo_all(rows: list[dict[str, str]], first: int) -> None:
    producer = EchoProducer()
    for i, row in enumerate(rows):
        await producer.call(
            ItemCall(
                run_name="baseline",
                run_uid="baseline",
                item_id=str(first + i),
                row_id=None,
                inputs=dict(row),
                attempt=1,
            )
        )


if __name__ == "__main__":
    sys.exit(main())
