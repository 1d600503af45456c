"""Workflow triggers, pure parts: run manifests, schedule decisions, status, history, event matching."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest

from oxygen.api.run import Run
from oxygen.controllers.workflow.decide import decide as reconcile
from oxygen.controllers.workflow.decide import status_changed
from oxygen.controllers.workflow.events import due_event_fires, fired_annotation
from oxygen.controllers.workflow.history import prune
from oxygen.controllers.workflow.runs import (
    ANNOTATION_SCHEDULED_AT,
    LABEL_TRIGGER,
    LABEL_WORKFLOW,
    event_run_name,
    run_manifest,
    schedule_run,
    schedule_run_name,
)
from oxygen.controllers.workflow.webhook import parse_inputs, tokens_match
from tests.support.workflow_builders import finished_run

WF_UID = "wf-uid-1"
CREATED = "2030-01-01T00:00:10Z"
DNS_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,61}[a-z0-9])?$")


def t(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def workflow(name: str = "nightly", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "oxygen.dev/v1alpha1",
        "kind": "Workflow",
        "metadata": {
            "name": name,
            "namespace": "ns",
            "uid": WF_UID,
            "generation": 2,
            "creationTimestamp": CREATED,
        },
        "spec": {
            "steps": [{"name": "one", "producer": {"provider": "p", "builtin": "echo"}}],
            "inputs": {"table": "leads", "limit": 10},
            "runTemplate": {"mode": "dry_run", "creditAccount": "team", "retry": {"maxAttempts": 5}},
            **spec,
        },
        "status": {},
    }


def every_minute(policy: str = "Allow", **extra: Any) -> dict[str, Any]:
    return {"schedule": {"cron": "* * * * *", "concurrencyPolicy": policy, **extra}}


def run(
    name: str,
    phase: str | None = None,
    created: str = "2030-01-01T00:00:00Z",
    owner: str = WF_UID,
    labels: dict[str, str] | None = None,
    **meta: Any,
) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "namespace": "ns",
            "uid": f"uid-{name}",
            "creationTimestamp": created,
            "labels": labels if labels is not None else {LABEL_WORKFLOW: "nightly"},
            "ownerReferences": [{"kind": "Workflow", "name": "nightly", "uid": owner, "controller": True}],
            **meta,
        },
        "spec": {},
        "status": {"phase": phase} if phase else {},
    }


def recorded(body: dict[str, Any], *runs: dict[str, Any], intent: bool = False) -> dict[str, Any]:
    """The workflow's status records these runs as created by it (or, `intent`, about to be)."""
    body["status"]["managedRuns"] = [
        {"name": r["metadata"]["name"], "uid": "" if intent else r["metadata"]["uid"], "since": CREATED}
        for r in runs
    ]
    return body


# -- manifests -------------------------------------------------------------------------------------


def test_schedule_run_manifest() -> None:
    body = schedule_run(workflow(), t("2030-01-01T00:01:00Z"))
    minutes = int(t("2030-01-01T00:01:00Z").timestamp()) // 60
    assert body["metadata"]["name"] == f"nightly-{minutes}"
    assert body["metadata"]["labels"][LABEL_WORKFLOW] == "nightly"
    assert body["metadata"]["labels"][LABEL_TRIGGER] == "schedule"
    assert body["metadata"]["annotations"][ANNOTATION_SCHEDULED_AT] == "2030-01-01T00:01:00Z"
    (owner,) = body["metadata"]["ownerReferences"]
    assert owner == {
        "apiVersion": "oxygen.dev/v1alpha1",
        "kind": "Workflow",
        "name": "nightly",
        "uid": WF_UID,
        "controller": True,
        "blockOwnerDeletion": True,
    }
    assert body["spec"] == {
        "kind": "workflow",
        "workflowRef": {"name": "nightly"},
        "inputs": {"table": "leads", "limit": 10},
        "trigger": "schedule",
        "mode": "dry_run",
        "creditAccount": "team",
        "retry": {"maxAttempts": 5, "backoffSeconds": 1.0},
    }
    Run.model_validate(body)  # a valid Run


def test_fire_inputs_overlay_the_workflow_defaults_and_user_runs_use_generate_name() -> None:
    body = run_manifest(workflow(), "webhook", {"limit": 3, "extra": {"a": 1}})
    assert body["spec"]["inputs"] == {"table": "leads", "limit": 3, "extra": {"a": 1}}
    assert body["metadata"]["generateName"] == "nightly-" and "name" not in body["metadata"]
    assert body["metadata"]["labels"][LABEL_TRIGGER] == "webhook"


def test_names_are_deterministic_and_at_most_63_characters() -> None:
    long_name = "a" * 70 + ".b" * 60
    fire = t("2030-01-01T00:01:00Z")
    for name in (schedule_run_name(long_name, fire), event_run_name(long_name, "uid", 0)):
        assert len(name) <= 63 and DNS_NAME.match(name), name
    assert schedule_run_name(long_name, fire) == schedule_run_name(long_name, fire)
    assert schedule_run_name(long_name, fire) != schedule_run_name(long_name + "x", fire)
    assert event_run_name("wf", "uid-a", 0) == event_run_name("wf", "uid-a", 0)
    assert (
        len(
            {event_run_name("wf", "uid-a", 0), event_run_name("wf", "uid-a", 1), event_run_name("wf", "b", 0)}
        )
        == 3
    )
    body = run_manifest(workflow(long_name), "user")
    assert len(body["metadata"]["generateName"]) <= 58
    assert len(body["metadata"]["labels"][LABEL_WORKFLOW]) <= 63


# -- schedule decisions ----------------------------------------------------------------------------


def test_first_fire_after_creation_then_nothing_until_the_next_minute() -> None:
    body = workflow(triggers=every_minute())
    plan = reconcile(body, [], t("2030-01-01T00:00:59Z"))
    assert plan.create == [] and "lastScheduleTime" not in plan.status
    plan = reconcile(body, [], t("2030-01-01T00:01:05Z"))
    assert [m["metadata"]["name"] for m in plan.create] == [
        schedule_run_name("nightly", t("2030-01-01T00:01:00Z"))
    ]
    assert plan.status["lastScheduleTime"] == "2030-01-01T00:01:00Z"
    assert plan.status["active"] == [plan.create[0]["metadata"]["name"]]
    assert {c["type"]: c["reason"] for c in plan.status["conditions"]} == {
        "Scheduled": "Fired",
        "Ready": "Reconciled",
    }
    body["status"] = plan.status
    fired = run(plan.create[0]["metadata"]["name"])
    recorded(body, fired)  # what apply writes with the create
    again = reconcile(body, [fired], t("2030-01-01T00:01:30Z"))
    assert again.create == [] and not status_changed(body["status"], again.status)


def test_a_fire_whose_run_exists_is_not_repeated_even_when_the_status_lags() -> None:
    body = workflow(triggers=every_minute("Forbid"))
    name = schedule_run_name("nightly", t("2030-01-01T00:01:00Z"))
    # The run was created after its intent was recorded, and the uid's write was lost (a crash).
    recorded(body, run(name), intent=True)
    plan = reconcile(body, [run(name)], t("2030-01-01T00:01:30Z"))
    assert plan.adopt == {name: f"uid-{name}"}
    assert plan.create == [] and plan.cancel == []
    assert plan.status["lastScheduleTime"] == "2030-01-01T00:01:00Z"
    assert plan.notices == []


def test_catch_up_after_an_outage_is_a_single_fire() -> None:
    body = workflow(triggers=every_minute())
    body["status"] = {"lastScheduleTime": "2030-01-01T00:01:00Z"}
    plan = reconcile(body, [], t("2030-01-01T00:04:10Z"))
    assert len(plan.create) == 1
    assert plan.create[0]["metadata"]["annotations"][ANNOTATION_SCHEDULED_AT] == "2030-01-01T00:04:00Z"


def test_a_fire_beyond_the_deadline_is_missed_and_reported_once() -> None:
    body = workflow(triggers={"schedule": {"cron": "0 * * * *", "startingDeadlineSeconds": 60}})
    plan = reconcile(body, [], t("2030-01-01T01:05:00Z"))
    assert plan.create == []
    assert [n.reason for n in plan.notices] == ["MissedSchedule"]
    scheduled = next(c for c in plan.status["conditions"] if c["type"] == "Scheduled")
    assert scheduled["status"] == "False" and scheduled["reason"] == "MissedSchedule"
    body["status"] = plan.status
    assert reconcile(body, [], t("2030-01-01T01:06:00Z")).notices == []


@pytest.mark.parametrize("policy", ["Allow", "Forbid", "Replace"])
def test_concurrency_policy_with_an_unfinished_run(policy: str) -> None:
    body = workflow(triggers=every_minute(policy))
    body["status"] = {"lastScheduleTime": "2030-01-01T00:01:00Z"}
    runs = [run("nightly-old-done", "succeeded"), run("nightly-busy", "running"), run("nightly-new")]
    recorded(body, *runs)
    plan = reconcile(body, runs, t("2030-01-01T00:02:01Z"))
    fired = schedule_run_name("nightly", t("2030-01-01T00:02:00Z"))
    if policy == "Allow":
        assert [m["metadata"]["name"] for m in plan.create] == [fired] and plan.cancel == []
        assert plan.status["active"] == sorted(["nightly-busy", "nightly-new", fired])
    elif policy == "Forbid":
        assert plan.create == [] and plan.cancel == []
        assert [n.reason for n in plan.notices] == ["SkippedConcurrent"]
        # The skipped fire counts as handled: it is not started late when the run finishes.
        assert plan.status["lastScheduleTime"] == "2030-01-01T00:02:00Z"
        body["status"] = {**plan.status, "managedRuns": body["status"]["managedRuns"]}
        later = reconcile(body, [run("nightly-busy", "succeeded")], t("2030-01-01T00:02:30Z"))
        assert later.create == []
        next_minute = reconcile(body, [run("nightly-busy", "succeeded")], t("2030-01-01T00:03:00Z"))
        assert len(next_minute.create) == 1
    else:
        assert [m["metadata"]["name"] for m in plan.create] == [fired]
        assert plan.cancel == ["nightly-busy", "nightly-new"]
        assert [n.reason for n in plan.notices] == ["Replaced"]


def test_replace_does_not_cancel_twice() -> None:
    body = workflow(triggers=every_minute("Replace"))
    body["status"] = {"lastScheduleTime": "2030-01-01T00:01:00Z"}
    canceling = run("nightly-a", "running")
    canceling["spec"] = {"cancel": True}
    recorded(body, canceling)
    plan = reconcile(body, [canceling], t("2030-01-01T00:02:00Z"))
    assert plan.cancel == [] and len(plan.create) == 1


def test_only_runs_the_workflow_controls_count() -> None:
    body = workflow(triggers=every_minute("Forbid"), successfulRunsHistoryLimit=0)
    body["status"] = {"lastScheduleTime": "2030-01-01T00:01:00Z"}
    strangers = [
        run("someone-elses", "running", owner="other-uid"),
        run("done", "succeeded", owner="other-uid"),
    ]
    plan = reconcile(body, strangers, t("2030-01-01T00:02:00Z"))
    assert len(plan.create) == 1 and plan.delete == []


def test_invalid_schedule_sets_ready_false_and_fires_nothing() -> None:
    body = workflow(triggers={"schedule": {"cron": "61 * * * *"}})
    plan = reconcile(body, [], t("2030-01-01T00:05:00Z"))
    ready = next(c for c in plan.status["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "False" and ready["reason"] == "InvalidSchedule"
    assert "minute: 61" in ready["message"] and plan.create == []
    zone = workflow(triggers={"schedule": {"cron": "* * * * *", "timeZone": "Nowhere/Land"}})
    assert "unknown time zone" in next(
        c["message"]
        for c in reconcile(zone, [], t("2030-01-01T00:05:00Z")).status["conditions"]
        if c["type"] == "Ready"
    )


def test_a_workflow_without_schedule_still_gets_status() -> None:
    queued = run("nightly-x", "queued")
    plan = reconcile(recorded(workflow(), queued), [queued], t("2030-01-01T00:05:00Z"))
    assert plan.create == [] and plan.status["active"] == ["nightly-x"]
    assert [c["type"] for c in plan.status["conditions"]] == ["Ready"]


# -- history ---------------------------------------------------------------------------------------


def test_history_keeps_the_newest_finished_runs_and_deletes_oldest_first() -> None:
    runs = [
        run("s3", "succeeded", "2030-01-01T00:03:00Z"),
        run("s1", "succeeded", "2030-01-01T00:01:00Z"),
        run("f1", "failed", "2030-01-01T00:01:30Z"),
        run("s2", "succeeded", "2030-01-01T00:02:00Z"),
        run("c1", "canceled", "2030-01-01T00:02:30Z"),
        run("k1", "completed", "2030-01-01T00:03:30Z"),
        run("r1", "running", "2030-01-01T00:00:00Z"),
        run("q1", None, "2030-01-01T00:00:00Z"),
    ]
    assert [r["metadata"]["name"] for r in prune(runs, 1, 1)] == ["s1", "f1", "s2", "c1"]
    assert [r["metadata"]["name"] for r in prune(runs, 3, 3)] == []
    assert [r["metadata"]["name"] for r in prune(runs, 0, 0)] == ["s1", "f1", "s2", "c1", "s3", "k1"]
    # Same creation second: the name breaks the tie (schedule names sort by fire time).
    same = [run("wf-29000002", "succeeded"), run("wf-29000001", "succeeded")]
    assert [r["metadata"]["name"] for r in prune(same, 1, 1)] == ["wf-29000001"]


def test_pass_plans_deletes_with_uid_preconditions() -> None:
    body = workflow(successfulRunsHistoryLimit=1, failedRunsHistoryLimit=0)
    runs = [run("a", "succeeded", "2030-01-01T00:01:00Z"), run("b", "succeeded", "2030-01-01T00:02:00Z")]
    runs.append(run("c", "failed", "2030-01-01T00:03:00Z"))
    runs.append(run("d", "succeeded", "2030-01-01T00:00:00Z", deletionTimestamp="2030-01-01T00:04:00Z"))
    recorded(body, *runs)
    plan = reconcile(body, runs, t("2030-01-01T00:05:00Z"))
    assert plan.delete == [("a", "uid-a"), ("c", "uid-c")]
    assert [n.reason for n in plan.notices] == ["PrunedRun", "PrunedRun"]


# -- event triggers --------------------------------------------------------------------------------


EVENTS = {
    "events": [
        {
            "selector": {"matchLabels": {"stage": "enrich"}},
            "phase": "succeeded",
            "inputs": {"mode": "cleanup"},
        },
        {"selector": {"matchLabels": {"stage": "enrich"}}, "phase": "failed"},
    ]
}


def test_event_fires_match_selector_phase_and_namespace() -> None:
    body = workflow("cleanup", triggers=EVENTS)
    runs = [
        finished_run("ok"),
        finished_run("bad", "failed"),
        finished_run("canceled", "canceled"),
        finished_run("other-stage", labels={"stage": "score"}),
        finished_run("elsewhere", namespace="other"),
        finished_run("too-old", finished="2030-01-01T00:00:00Z"),
    ]
    fires = due_event_fires(body, runs)
    assert [(f.source_name, f.trigger_index) for f in fires] == [("ok", 0), ("bad", 1)]
    manifest = fires[0].manifest
    assert manifest["metadata"]["name"] == event_run_name("cleanup", "uid-ok", 0)
    assert manifest["metadata"]["labels"][LABEL_TRIGGER] == "event"
    assert manifest["spec"]["inputs"] == {"table": "leads", "limit": 10, "mode": "cleanup"}
    assert manifest["metadata"]["annotations"]["oxygen.dev/source-run"] == "ok"


def test_event_fires_skip_marked_sources_and_own_event_runs() -> None:
    body = workflow("cleanup", triggers={"events": [{"selector": {"matchLabels": {}}, "phase": "succeeded"}]})
    marked = finished_run("marked", annotations={fired_annotation("cleanup"): "0"})
    own = finished_run("cleanup-ev-1", labels={LABEL_WORKFLOW: "cleanup", LABEL_TRIGGER: "event"})
    sibling = finished_run("nightly-ev-1", labels={LABEL_WORKFLOW: "nightly", LABEL_TRIGGER: "event"})
    scheduled = finished_run("cleanup-123", labels={LABEL_WORKFLOW: "cleanup", LABEL_TRIGGER: "schedule"})
    fires = due_event_fires(body, [marked, own, sibling, scheduled])
    assert [f.source_name for f in fires] == ["nightly-ev-1", "cleanup-123"]


# -- webhook bodies and tokens ---------------------------------------------------------------------


def test_webhook_body_parsing() -> None:
    assert parse_inputs(b'{"a": 1}') == ({"a": 1}, "")
    assert parse_inputs(b"  ") == ({}, "")
    assert parse_inputs(b"{nope")[0] is None and "not valid JSON" in parse_inputs(b"{nope")[1]
    assert "must be a JSON object" in parse_inputs(b"[1, 2]")[1]
    assert "not UTF-8" in parse_inputs(b"\xff\xfe")[1]


def test_token_comparison() -> None:
    assert tokens_match("s3cret", "s3cret")
    assert not tokens_match("s3cret", "s3cret2")
    assert not tokens_match(None, "s3cret")
    assert not tokens_match("", "")
    assert not tokens_match("x", None)
