"""kopf glue of the Provider controller: indexes of the runs and shards using each Provider, and a
daemon per Provider that writes their observed use into its status every few seconds (on change)."""

from __future__ import annotations

import asyncio
import copy
import time
from typing import Any

import kopf

from oxygen.api.common import GROUP, VERSION
from oxygen.api.labels import LABEL_PROVIDER
from oxygen.api.provider import ProviderSpec
from oxygen.controllers import runtime
from oxygen.controllers.provider.apply import Applier
from oxygen.controllers.provider.decide import decide
from oxygen.controllers.provider.observe import ProviderState, Reader, RunUse, ShardUse, run_use, shard_use
from oxygen.controllers.provider.shares import AllocatorState, ShareWriter, allocate

INTERVAL = 5.0
# While a shard of the Provider is not finished, its shares are re-balanced this often.
SHARE_INTERVAL = 1.0


def reconcile(
    reader: Reader,
    applier: Applier,
    body: dict[str, Any],
    runs: list[RunUse],
    shards: list[ShardUse],
    state: ProviderState,
) -> None:
    """One pass: observe → decide → apply."""
    obs = reader.observe(body, runs, shards, state)
    applier.apply(decide(obs, state), body, state, obs.clock)


def of_runs(runs: list[RunUse], shards: list[ShardUse]) -> list[ShardUse]:
    """The shards of runs that name the Provider: a shard labelled for it by anyone else gets no share."""
    uids = {run.uid for run in runs}
    return [shard for shard in shards if shard.run_uid in uids]


def share_out(
    writer: ShareWriter, body: dict[str, Any], shards: list[ShardUse], allocator: AllocatorState
) -> None:
    """One allocation pass: the shares of the Provider's limits its active shards get (shares.py)."""
    spec = ProviderSpec.model_validate(body.get("spec") or {})
    writer.write(body["metadata"]["namespace"], allocate(spec, shards, allocator, time.monotonic()))


@kopf.index(GROUP, VERSION, "runs")
async def runs_by_provider(body: kopf.Body, namespace: str | None, **_: Any) -> dict[Any, Any]:
    found = run_use(dict(body))
    return {} if found is None else {(namespace, found[0]): found[1]}


@kopf.index(GROUP, VERSION, "runshards", labels={LABEL_PROVIDER: kopf.PRESENT})
async def shards_by_provider(body: kopf.Body, namespace: str | None, **_: Any) -> dict[Any, Any]:
    found = shard_use(dict(body))
    return {} if found is None else {(namespace, found[0]): found[1]}


@kopf.daemon(GROUP, VERSION, "providers", cancellation_timeout=5.0)  # type: ignore[arg-type]
async def provider_daemon(
    body: kopf.Body,
    name: str,
    namespace: str,
    stopped: kopf.DaemonStopped,
    runs_by_provider: kopf.Index[Any, Any],
    shards_by_provider: kopf.Index[Any, Any],
    memo: kopf.Memo,
    logger: kopf.Logger,
    **_: Any,
) -> None:
    kube = runtime.kube(memo)
    reader, applier = Reader(kube), Applier(kube)
    state = ProviderState.from_body(body)
    writer, allocator = ShareWriter(kube), AllocatorState.resumed(state.written, time.monotonic())
    key = (namespace, name)
    reported = -INTERVAL
    while not stopped:
        snapshot = copy.deepcopy(dict(body))
        runs = list(runs_by_provider.get(key, []))
        shards = of_runs(runs, list(shards_by_provider.get(key, [])))
        try:
            await asyncio.to_thread(share_out, writer, snapshot, shards, allocator)
            state.effective = allocator.effective
        except Exception as err:  # keep the daemon alive; the next pass retries
            logger.exception("provider shares failed: %s", err)
        if time.monotonic() - reported >= INTERVAL - SHARE_INTERVAL / 2:
            reported = time.monotonic()
            try:
                await asyncio.to_thread(reconcile, reader, applier, snapshot, runs, shards, state)
            except Exception as err:  # keep the daemon alive; the next pass retries
                logger.exception("provider reconcile failed: %s", err)
        busy = any(not s.done for s in shards)
        await stopped.wait(SHARE_INTERVAL if busy else INTERVAL)
