"""Seeded fuzzing against the real API server with the operator running (issue 19.2).

Of 1,100 hostile manifests the API server accepted 373; 2 of those never got a status and the
operator logged 411 tracebacks. Now: a few hundred seeded hostile manifests (tests/support/hostile.py)
are applied in batches; every one the API server accepts gets a phase, or a Failed/Stalled condition
with a message, and the operator logs no traceback and keeps running."""

from __future__ import annotations

import collections
import statistics
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from kubernetes.client.exceptions import ApiException

from oxygen.devcluster.wait import wait_for
from tests.integration.test_hostile_input import condition, deep_json, log_since
from tests.support import hostile
from tests.support.operator_process import OperatorProcess
from tests.support.runs import Runs

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

MANIFESTS = 300
BATCH = 50


def draw_manifests() -> list[dict[str, Any]]:
    drawn: list[dict[str, Any]] = []

    @settings(
        max_examples=MANIFESTS,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(hostile.runs)
    def collect(body: dict[str, Any]) -> None:
        drawn.append(body)

    collect()
    # Names repeat among drawn examples ("0"): a repeated one gets a distinct start, same length.
    seen: set[str] = set()
    for i, body in enumerate(drawn):
        name = body["metadata"]["name"]
        if name in seen:
            name = (f"u{i}-" + name)[: max(len(name), len(f"u{i}-") + 1)]
            body["metadata"] = {**body["metadata"], "name": name}
        seen.add(name)
    return drawn


def outcome(status: dict[str, Any]) -> str | None:
    """What the operator said about a run so far: None while it said nothing."""
    for type_ in ("Failed", "Stalled"):
        cond = condition(status, type_)
        if cond is not None and cond["status"] == "True":
            return f"{type_}:{cond['reason']}" if cond.get("message") else None
    return f"phase:{status['phase']}" if status.get("phase") else None


def await_outcomes(runs: Runs, applied: dict[str, float], seconds: list[float]) -> dict[str, str]:
    """Poll until the operator said something about each applied run; note how long each took."""
    said: dict[str, str] = {}

    def all_said() -> bool:
        for name, at in applied.items():
            if name not in said and (found := outcome(runs.status(name))) is not None:
                said[name] = found
                seconds.append(time.monotonic() - at)
        return len(said) == len(applied)

    wait_for(
        all_said,
        timeout=180,
        what="every accepted run to get a phase or a Failed/Stalled condition",
        describe=lambda: str(sorted(set(applied) - set(said))[:5]),
    )
    return said


def test_every_accepted_hostile_run_gets_a_phase_or_a_failed_condition(
    runs: Runs, operator: OperatorProcess
) -> None:
    offset = operator.log.stat().st_size
    manifests = draw_manifests()
    refused: collections.Counter[int] = collections.Counter()
    outcomes: collections.Counter[str] = collections.Counter()
    seconds: list[float] = []
    with deep_json():
        for start in range(0, len(manifests), BATCH):
            applied: dict[str, float] = {}
            for body in manifests[start : start + BATCH]:
                try:
                    created = runs.custom.create_namespaced_custom_object(
                        "oxygen.dev", "v1alpha1", runs.ns, "runs", body
                    )
                except ApiException as err:
                    refused[err.status] += 1
                    continue
                applied[created["metadata"]["name"]] = time.monotonic()
            said = await_outcomes(runs, applied, seconds)
            outcomes.update(said.values())
            runs.custom.delete_collection_namespaced_custom_object("oxygen.dev", "v1alpha1", runs.ns, "runs")
    accepted = sum(outcomes.values())
    print(
        f"\n{len(manifests)} manifests: {accepted} accepted, refused by status {dict(refused)}; "
        f"seconds to a phase or condition: median {statistics.median(seconds):.1f}, "
        f"max {max(seconds):.1f}; outcomes {dict(outcomes)}"
    )
    assert accepted >= len(manifests) // 5, "the strategies should get many manifests past the schema"
    assert not [o for o in outcomes if o.startswith("Stalled")], "an input error took the retry path"
    assert operator.alive()
    assert "Traceback" not in log_since(operator, offset)
