"""Driving async producers from synchronous tests."""

from __future__ import annotations

import asyncio

from oxygen.execution.producers import ItemCall, ItemProducer, ProducerResult


def call_once(producer: ItemProducer, call: ItemCall) -> ProducerResult:
    """One call on a fresh event loop; the producer's pool is closed again before the loop ends."""

    async def go() -> ProducerResult:
        try:
            return await producer.call(call)
        finally:
            await producer.close()

    return asyncio.run(go())
