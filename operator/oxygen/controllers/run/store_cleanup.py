"""With an item store: a deleted Run's rows go, in bounded batches, before the Run does.

`apply` puts ITEM_STORE_FINALIZER on a Run before it writes the run's first rows; this handler (loaded
by `oxygen operator` only with `--item-store`) sees the Run being deleted, waits for the account's
finalizer (a metered run is first stopped and settled, which reads its rows), deletes the rows
(`ItemStore.delete_run`: short transactions of DELETE_BATCH rows, so a 1M-item delete never holds a
long lock), drops the run's worker role, then removes the finalizer. Like any finalizer it needs the
operator: without it the Run stays Terminating and its rows stay.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Final

import kopf

from oxygen.api.common import GROUP, VERSION
from oxygen.controllers import runtime
from oxygen.controllers.run import handlers, item_store
from oxygen.credits.ledger import RETIRE_FINALIZER
from oxygen.itemstore.store import ItemStore, ItemStoreError

log = logging.getLogger("oxygen.controllers.run")

ITEM_STORE_FINALIZER: Final = item_store.FINALIZER
RETRY_SECONDS: Final = 5.0
PASS_WAIT_SECONDS: Final = 20.0
_busy: set[str] = set()


def should_clean(body: dict[str, Any]) -> bool:
    meta = body.get("metadata") or {}
    finalizers = meta.get("finalizers") or []
    return (
        bool(meta.get("deletionTimestamp"))
        and ITEM_STORE_FINALIZER in finalizers
        and RETIRE_FINALIZER not in finalizers
    )


@kopf.on.event(GROUP, VERSION, "runs")
async def delete_rows(event: kopf.RawEvent, memo: kopf.Memo, **_: Any) -> None:
    obj = event.get("object")
    body: dict[str, Any] = dict(obj) if isinstance(obj, dict) else {}
    if event["type"] == "DELETED" or not should_clean(body):
        return
    meta = body["metadata"]
    uid, ns, name = str(meta["uid"]), str(meta["namespace"]), str(meta["name"])
    if uid in _busy:
        return
    _busy.add(uid)
    try:
        # A pass that began before the deletion may be writing the run's first rows (round 0's COPY):
        # deleted before it commits, they would outlive the Run. Waited for a bounded time: the rows
        # of a deleted Run must go even if a pass hangs (it is logged).
        if not await handlers.pass_ended(uid, timeout=PASS_WAIT_SECONDS):
            log.warning(
                "run %s/%s deleted: its pass still runs after %.0f s; deleting its rows",
                ns,
                name,
                PASS_WAIT_SECONDS,
            )
        settings = runtime.settings(memo)
        assert settings.item_store is not None
        store = ItemStore(settings.item_store)
        while True:
            try:
                deleted = await asyncio.to_thread(_clean, store, uid)
                break
            except ItemStoreError as err:
                log.warning("run %s/%s: deleting its rows: %s (retrying)", ns, name, err)
                await asyncio.sleep(RETRY_SECONDS)
        log.info("run %s/%s deleted: %d item rows and its worker role removed", ns, name, deleted)
        kube = runtime.kube(memo)
        await asyncio.to_thread(kube.set_finalizer, "runs", ns, name, ITEM_STORE_FINALIZER, False)
    finally:
        _busy.discard(uid)


def _clean(store: ItemStore, uid: str) -> int:
    try:
        deleted = store.delete_run(uid)
        store.revoke_worker(uid)
        return deleted
    except Exception as err:
        if isinstance(err, ItemStoreError):
            raise
        raise ItemStoreError(str(err)) from err
    finally:
        store.close()
