"""The baseline of bench/throughput.py: what a user would write instead of a Run.

One aiohttp client with `--in-flight` requests open at once against the provider, the same request
as a worker sends (JSON body, Idempotency-Key), the reply parsed as JSON; no status anywhere. Prints
one JSON line: {"items", "succeeded", "seconds"}.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time

import aiohttp


async def run(url: str, items: int, in_flight: int) -> dict[str, float]:
    todo = iter(range(items))
    succeeded = 0

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal succeeded
        for i in todo:
            body = {
                "run": "baseline",
                "item": {"id": str(i), "rowId": str(i), "inputs": {"i": str(i)}},
                "attempt": 1,
            }
            headers = {"Content-Type": "application/json", "Idempotency-Key": f"baseline/{i}"}
            async with session.post(url, data=json.dumps(body), headers=headers) as reply:
                json.loads(await reply.read())
                succeeded += reply.status == 200

    connector = aiohttp.TCPConnector(limit=in_flight, limit_per_host=in_flight)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60)) as session:
        t0 = time.monotonic()
        await asyncio.gather(*(worker(session) for _ in range(in_flight)))
        seconds = time.monotonic() - t0
    return {"items": items, "succeeded": succeeded, "seconds": seconds}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--items", type=int, required=True)
    parser.add_argument("--in-flight", type=int, required=True)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args.url, args.items, args.in_flight))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
