"""The history policy, table-driven: which finished runs go, oldest first."""

from __future__ import annotations

import pytest

from oxygen.controllers.workflow.history import prune
from tests.support.workflow_builders import workflow_run

RUNS = [
    workflow_run("s1", "succeeded", "2030-01-01T00:01:00Z"),
    workflow_run("f1", "failed", "2030-01-01T00:01:30Z"),
    workflow_run("s2", "succeeded", "2030-01-01T00:02:00Z"),
    workflow_run("c1", "canceled", "2030-01-01T00:02:30Z"),
    workflow_run("k1", "completed", "2030-01-01T00:03:30Z"),
    workflow_run("r1", "running", "2030-01-01T00:00:00Z"),
    workflow_run("p1", "paused", "2030-01-01T00:00:00Z"),
    workflow_run("q1", None, "2030-01-01T00:00:00Z"),
]


@pytest.mark.parametrize(
    ("successful", "failed", "doomed"),
    [
        (3, 3, []),
        (1, 3, ["s1"]),
        (3, 1, ["f1", "c1"]),
        (1, 1, ["s1", "f1", "c1"]),
        (0, 0, ["s1", "f1", "s2", "c1", "k1"]),
    ],
)
def test_prune(successful: int, failed: int, doomed: list[str]) -> None:
    assert [r["metadata"]["name"] for r in prune(RUNS, successful, failed)] == doomed
