"""cancel.py: delete the Jobs, confirm none is left, then settle the unfinished shards."""

from __future__ import annotations

import pytest

from oxygen.controllers.run import cancel
from oxygen.status.views import JobView
from tests.support import builders as b


@pytest.mark.parametrize(
    ("job_views", "delete", "confirm"),
    [
        (b.jobs(b.job_view("a", active=1), b.job_view("b", deleting=True)), ["a"], False),
        (b.jobs(b.job_view("b", deleting=True)), [], False),
        ({}, [], True),
    ],
    ids=["delete-each-once", "wait-for-deletion", "none-in-the-index"],
)
def test_cancel(job_views: dict[str, JobView], delete: list[str], confirm: bool) -> None:
    decision = cancel.cancel(job_views)
    assert decision.delete_jobs == delete
    assert decision.confirm is confirm


def test_jobs_the_api_server_still_has_are_deleted_and_no_shard_is_settled() -> None:
    views = b.shards(b.shard_view(0, running=1))
    assert cancel.confirmed(["leads-r0-0000"], views) == (["leads-r0-0000"], [])


def test_once_no_job_is_left_unfinished_shards_are_settled() -> None:
    views = b.shards(
        b.shard_view(0, phase="Running", running=1),
        b.shard_view(1, phase="Succeeded", succeeded=1),
        b.shard_view(2, phase="Pending", pending=1),
        b.shard_view(3, phase="Failed", failed=1),
    )
    assert cancel.confirmed([], views) == ([], ["leads-r0-0000", "leads-r0-0002"])
