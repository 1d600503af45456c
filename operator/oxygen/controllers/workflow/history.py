"""The history policy: finished runs beyond the limits are deleted, oldest first. Pure.

`successfulRunsHistoryLimit` keeps the newest succeeded runs, `failedRunsHistoryLimit` the newest
failed, completed and canceled ones. Only runs the workflow manages are ever passed in here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from oxygen.controllers.workflow.views import history_key, phase_of

SUCCEEDED_PHASES = frozenset({"succeeded"})
FAILED_PHASES = frozenset({"failed", "completed", "canceled"})


def prune(
    runs: Sequence[Mapping[str, Any]], successful_limit: int, failed_limit: int
) -> list[Mapping[str, Any]]:
    """The finished runs beyond the history limits, oldest first."""
    doomed: list[Mapping[str, Any]] = []
    for phases, limit in ((SUCCEEDED_PHASES, successful_limit), (FAILED_PHASES, failed_limit)):
        done = sorted((r for r in runs if phase_of(r) in phases), key=history_key)
        doomed.extend(done[: max(len(done) - limit, 0)])
    return sorted(doomed, key=history_key)
