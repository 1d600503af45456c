"""Without an item store (the shared operator): a run over the etcd ceiling is refused at planning with a
condition and an Event naming the limit and the fix; nothing of it is created."""

from __future__ import annotations

import pytest

from oxygen.controllers.run.plan import ETCD_ITEM_CEILING
from oxygen.devcluster.wait import wait_for
from tests.support.runs import Runs

pytestmark = pytest.mark.cluster


def test_a_run_over_the_ceiling_is_refused_naming_the_limit_and_the_fix(runs: Runs) -> None:
    rows = "a\n" + "1\n" * (ETCD_ITEM_CEILING + 1)  # CSV: ~200 KB, within a ConfigMap
    runs.core.create_namespaced_config_map(runs.ns, {"metadata": {"name": "big"}, "data": {"rows.csv": rows}})
    runs.create(
        "big",
        {
            "itemsFrom": {"configMapKeyRef": {"name": "big", "key": "rows.csv"}},
            "producer": {"provider": "echo", "builtin": "echo"},
        },
    )
    status = runs.wait_phase("big", "failed", timeout=120)
    failed = {c["type"]: c for c in status["conditions"]}["Failed"]
    assert failed["reason"] == "ItemStoreRequired"
    assert str(ETCD_ITEM_CEILING) in failed["message"] and "--item-store" in failed["message"]
    # The Event follows the status write that the test saw first.
    events = wait_for(
        lambda: [e for e in runs.events("big") if e.reason == "ItemStoreRequired"],
        timeout=30,
        what="the ItemStoreRequired Event",
    )
    assert len(events) == 1 and events[0].type == "Warning" and "--item-store" in events[0].message
    assert runs.shards("big") == []
    assert runs.jobs("big") == []
