"""What a pass observes while the watch lags this process's own writes."""

from __future__ import annotations

import datetime as dt

from oxygen.controllers.workflow.observe import WorkflowMemory, observe
from tests.support.workflow_builders import t, workflow, workflow_run


class Fixed:
    def __init__(self, at: dt.datetime) -> None:
        self.at = at

    def now(self) -> dt.datetime:
        return self.at


CLOCK = Fixed(t("2030-01-01T00:00:00Z"))


def test_the_record_as_this_process_left_it_is_laid_over_a_lagging_body() -> None:
    memory = WorkflowMemory()
    memory.wrote([{"name": "a", "uid": "uid-a", "since": "s"}], [])
    memory.wrote([], [("gone", "uid-gone")])
    body = workflow(
        status={
            "managedRuns": [
                {"name": "a", "uid": "", "since": "s"},  # the intent, before the uid's write shows
                {"name": "gone", "uid": "uid-gone", "since": "s"},  # dropped, the watch not there yet
                {"name": "cli", "uid": "uid-cli", "since": "s"},  # written by someone else
            ]
        }
    )
    seen = observe(body, [], [], memory, CLOCK, CLOCK)
    assert [(e["name"], e["uid"]) for e in seen.body["status"]["managedRuns"]] == [
        ("a", "uid-a"),
        ("cli", "uid-cli"),
    ]
    assert seen.now == CLOCK.at and seen.wall_now == CLOCK.at


def test_runs_this_process_created_count_until_the_index_shows_them() -> None:
    memory = WorkflowMemory()
    memory.fresh["new"] = (1e18, workflow_run("new"))  # far in the future of the monotonic clock
    assert [r["metadata"]["name"] for r in memory.runs([workflow_run("old")])] == ["old", "new"]
    assert [r["metadata"]["name"] for r in memory.runs([workflow_run("new")])] == ["new"]
    assert memory.fresh == {}
