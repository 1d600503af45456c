"""kopf glue of the Provider controller: indexes of the runs and shards using each Provider, and a
daemon per Provider that writes their observed use into its status every few seconds (on change)."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import kopf

from oxygen.api.common import GROUP, VERSION
from oxygen.api.labels import LABEL_PROVIDER
from oxygen.controllers import runtime
from oxygen.controllers.provider.apply import Applier
from oxygen.controllers.provider.decide import decide
from oxygen.controllers.provider.observe import ProviderState, Reader, RunUse, ShardUse, run_use, shard_use

INTERVAL = 5.0


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


@kopf.index(GROUP, VERSION, "runs")
def runs_by_provider(body: kopf.Body, namespace: str | None, **_: Any) -> dict[Any, Any]:
    found = run_use(dict(body))
    return {} if found is None else {(namespace, found[0]): found[1]}


@kopf.index(GROUP, VERSION, "runshards", labels={LABEL_PROVIDER: kopf.PRESENT})
def shards_by_provider(body: kopf.Body, namespace: str | None, **_: Any) -> dict[Any, Any]:
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
    key = (namespace, name)
    while not stopped:
        snapshot = copy.deepcopy(dict(body))
        runs = list(runs_by_provider.get(key, []))
        shards = list(shards_by_provider.get(key, []))
        try:
            await asyncio.to_thread(reconcile, reader, applier, snapshot, runs, shards, state)
        except Exception as err:  # keep the daemon alive; the next pass retries
            logger.exception("provider reconcile failed: %s", err)
        await stopped.wait(INTERVAL)
