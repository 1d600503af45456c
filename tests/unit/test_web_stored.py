"""The run page of a run whose items are in the item store: shard sizes from ranges, failed items and
the timeline from the store's sample, count and per-second finishes."""

from __future__ import annotations

from oxygen.web.page import StoredItems, render
from tests.unit.test_web_page import T0, run


def test_a_stored_run_shows_its_failed_items_and_timeline_from_the_store() -> None:
    shard = {
        "metadata": {"name": "r-r0-0000"},
        "spec": {"round": 0, "index": 0, "items": [], "range": {"start": 0, "end": 3000}},
        "status": {"phase": "Succeeded", "summary": {"succeeded": 2000, "failed": 1000}},
    }
    failed = [
        {"id": str(k), "rowId": f"row-{k}", "status": "failed", "attemptCount": 3, "error": "boom"}
        for k in range(2)
    ]
    stored = StoredItems(
        failed=failed, failed_total=1000, finishes=[(T0 + 1, "succeeded", 2000), (T0 + 9, "failed", 1000)]
    )
    html = render(run(), [shard], [], T0 + 20, stored)
    assert "<td>3000</td>" in html  # the shard's size is its range's
    assert "row-1" in html and "showing 2 of 1000 failed items" in html
    assert '<b id="timeline-succeeded">2000</b>' in html
    assert '<b id="timeline-failed">1000</b>' in html
