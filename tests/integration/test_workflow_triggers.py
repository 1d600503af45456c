"""Workflow triggers against the real control plane, with the operator as a subprocess.

The operator here runs with the test-only fake clock (`OXYGEN_FAKE_CLOCK_FILE`): schedules are driven
by rewriting a file, not by waiting minutes. Its webhook server listens on a free loopback port
(`OXYGEN_WEBHOOK_PORT`). The session's own operator is stopped meanwhile (two operators would both
act on the same Workflows) and restarted afterwards.

These tests assert on what the triggers do: Run creation, names, labels, inputs, owners, the
Workflow's status, pruning. Phases come from the real operator, never from status patches: the
schedule tests' workflow step calls a provider that answers after 10 minutes, so its runs stay
unfinished until the test sets `spec.cancel: true` (then the operator marks them canceled); the
succeeded runs of the history test and the sources of event triggers are column runs (echo).
"""

from __future__ import annotations

import datetime as dt
import json
import time
from typing import Any

import pytest

from oxygen.api.common import GROUP, VERSION
from oxygen.controllers.workflow.events import fired_annotation
from oxygen.controllers.workflow.runs import LABEL_TRIGGER, LABEL_WORKFLOW, event_run_name, schedule_run_name
from oxygen.devcluster.wait import wait_for
from tests.support.provider import Provider
from tests.support.workflow_env import (
    BASE,
    TOKEN,
    Env,
    cancel,
    column_run,
    create_workflow,
    get_run,
    get_workflow,
    names,
    operator_log_on_failure,
    post,
    record_runs,
    runs_of,
    slow_provider,
    slow_step,
    triggers,
    wait_phase,
    workflow_events,
)

pytestmark = pytest.mark.cluster
__all__ = ["operator_log_on_failure", "slow_provider", "triggers"]  # fixtures used by name


# -- (a) schedule ----------------------------------------------------------------------------------


def test_schedule_fires_on_the_fake_clock_and_forbid_skips_while_a_run_is_active(
    triggers: Env, namespace: str, slow_provider: Provider
) -> None:
    env, ns = triggers, namespace
    env.set_clock(BASE)
    schedule = {"cron": "* * * * *", "concurrencyPolicy": "Forbid"}
    wf = create_workflow(
        env,
        ns,
        "tick",
        [slow_step(slow_provider)],
        inputs={"table": "leads"},
        triggers={"schedule": schedule},
    )

    # Created years "before" the fake now: one catch-up fire (the latest minute), not a storm.
    first = schedule_run_name("tick", BASE.replace(second=0))
    wait_for(lambda: names(runs_of(env, ns, "tick")) == [first], timeout=30, what=f"run {first}")
    run = get_run(env, ns, first)
    assert run["metadata"]["labels"][LABEL_WORKFLOW] == "tick"
    assert run["metadata"]["labels"][LABEL_TRIGGER] == "schedule"
    assert run["metadata"]["ownerReferences"][0]["uid"] == wf["metadata"]["uid"]
    assert run["metadata"]["ownerReferences"][0]["controller"] is True
    assert run["spec"]["kind"] == "workflow"
    assert run["spec"]["trigger"] == "schedule"
    assert run["spec"]["workflowRef"] == {"name": "tick"}
    assert run["spec"]["inputs"] == {"table": "leads"}
    status = wait_for(
        lambda: (s := get_workflow(env, ns, "tick").get("status") or {}).get("runsCreated") == 1 and s,
        timeout=30,
        what="workflow status",
    )
    assert status["lastScheduleTime"] == "2030-01-01T00:00:00Z"
    assert status["active"] == [first]

    # A minute later the first run is still unfinished: Forbid skips the fire.
    env.set_clock(BASE + dt.timedelta(minutes=1))
    wait_for(
        lambda: "SkippedConcurrent" in workflow_events(env, ns, "tick"), timeout=30, what="a skipped fire"
    )
    assert names(runs_of(env, ns, "tick")) == [first]

    # Once it is finished, the next minute fires again; the skipped one is not started late.
    cancel(env, ns, first)
    wait_for(
        lambda: get_workflow(env, ns, "tick")["status"]["active"] == [], timeout=30, what="no active run"
    )
    time.sleep(2)
    assert names(runs_of(env, ns, "tick")) == [first]
    env.set_clock(BASE + dt.timedelta(minutes=2))
    second = schedule_run_name("tick", BASE.replace(second=0) + dt.timedelta(minutes=2))
    wait_for(
        lambda: names(runs_of(env, ns, "tick")) == sorted([first, second]), timeout=30, what=f"run {second}"
    )
    # The count and the fire's lastScheduleTime are one status write.
    status = wait_for(
        lambda: (s := get_workflow(env, ns, "tick")["status"]).get("runsCreated") == 2 and s,
        timeout=30,
        what="runsCreated 2",
    )
    assert status["lastScheduleTime"] == "2030-01-01T00:02:00Z"
    assert status["active"] == [second]


def test_history_limit_prunes_the_oldest_finished_runs(
    triggers: Env, namespace: str, slow_provider: Provider
) -> None:
    env, ns = triggers, namespace
    env.set_clock(BASE)
    wf = create_workflow(
        env,
        ns,
        "hist",
        [slow_step(slow_provider)],
        triggers={"schedule": {"cron": "* * * * *"}},
        successfulRunsHistoryLimit=1,
        failedRunsHistoryLimit=1,
    )
    fired: list[str] = []
    for minute in range(3):
        env.set_clock(BASE + dt.timedelta(minutes=minute))
        name = schedule_run_name("hist", BASE.replace(second=0) + dt.timedelta(minutes=minute))
        wait_for(lambda: name in names(runs_of(env, ns, "hist")), timeout=30, what=f"run {name}")  # noqa: B023
        fired.append(name)
        if minute < 2:
            cancel(env, ns, name)  # finished: canceled counts against failedRunsHistoryLimit
    # Two canceled runs, limit 1: the older goes; the unfinished newest is never pruned.
    wait_for(
        lambda: names(runs_of(env, ns, "hist")) == fired[1:],
        timeout=30,
        what="the oldest canceled run pruned",
    )
    # The Event is posted after the delete: it may reach the API server after the test saw the Run go.
    wait_for(lambda: "PrunedRun" in workflow_events(env, ns, "hist"), timeout=30, what="a PrunedRun Event")

    # Succeeded runs of the workflow (column runs it owns stand in for them, recorded in its status as
    # `oxygen workflows run` records the runs it creates), limit 1: the newest stays.
    for name in ("hist-s1", "hist-s2", "hist-s3"):
        column_run(env, ns, name, {LABEL_WORKFLOW: "hist", LABEL_TRIGGER: "user"}, owner=wf)
        record_runs(env, ns, "hist", [name])
        wait_phase(env, ns, name, "succeeded")
    wait_for(
        lambda: names(runs_of(env, ns, "hist")) == sorted([*fired[1:], "hist-s3"]),
        timeout=30,
        what="the older succeeded runs pruned",
        describe=lambda: str(names(runs_of(env, ns, "hist"))),
    )


# -- (b) webhook -----------------------------------------------------------------------------------


def test_webhook_token_size_and_body_checks(triggers: Env, namespace: str) -> None:
    env, ns = triggers, namespace
    env.core.create_namespaced_secret(
        ns,
        {
            "metadata": {"name": "hook"},
            "stringData": {"token": TOKEN + "\n"},
        },  # a trailing newline is ignored
    )
    create_workflow(
        env,
        ns,
        "hooked",
        inputs={"source": "default", "limit": 5},
        triggers={"webhook": {"tokenSecretRef": {"name": "hook"}, "maxBodyBytes": 256}},
    )
    create_workflow(env, ns, "no-hook")
    path = f"/hooks/{ns}/hooked"
    good = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}

    status, reply1 = post(env, path, json.dumps({"lead": "ada", "limit": 7}).encode(), good)
    assert status == 201, reply1
    run = get_run(env, ns, reply1["name"])
    assert run["metadata"]["uid"] == reply1["uid"]
    assert reply1["name"].startswith("hooked-")
    assert run["spec"]["trigger"] == "webhook"
    assert run["metadata"]["labels"][LABEL_TRIGGER] == "webhook"
    assert run["spec"]["inputs"] == {"source": "default", "limit": 7, "lead": "ada"}
    status, reply2 = post(env, path, b'{"lead": "grace"}', {"X-Oxygen-Token": TOKEN})
    assert status == 201, reply2

    refused = {
        "wrong token": (401, post(env, path, b"{}", {"Authorization": "Bearer nope"})),
        "missing token": (401, post(env, path, b"{}")),
        "token of another scheme": (401, post(env, path, b"{}", {"Authorization": f"Basic {TOKEN}"})),
        "oversized": (413, post(env, path, json.dumps({"x": "y" * 300}).encode(), good)),
        "oversized, chunked": (
            413,
            post(env, path, json.dumps({"x": "y" * 300}).encode(), good, chunked=True),
        ),
        "not JSON": (400, post(env, path, b"{not json", good)),
        "not an object": (400, post(env, path, b"[1, 2]", good)),
        # Authentication comes first: a workflow that does not exist, or has no webhook, answers as a
        # wrong token does (no oracle of which workflows exist).
        "unknown workflow": (401, post(env, f"/hooks/{ns}/nope", b"{}", good)),
        "no webhook trigger": (401, post(env, f"/hooks/{ns}/no-hook", b"{}", good)),
        "unknown namespace": (401, post(env, f"/hooks/{ns}-nope/hooked", b"{}", good)),
    }
    for case, (expected, (status, reply)) in refused.items():
        assert status == expected, (case, status, reply)
        assert reply.get("error"), case
    assert "not valid JSON" in refused["not JSON"][1][1]["error"]
    assert "JSON object" in refused["not an object"][1][1]["error"]
    assert "maxBodyBytes (256 bytes)" in refused["oversized"][1][1]["error"]
    unauthenticated = {case: reply for case, (code, (_, reply)) in refused.items() if code == 401}
    assert len({json.dumps(reply, sort_keys=True) for reply in unauthenticated.values()}) == 1, (
        unauthenticated
    )

    assert names(runs_of(env, ns, "hooked")) == sorted([reply1["name"], reply2["name"]])
    assert runs_of(env, ns, "no-hook") == []
    wait_for(
        lambda: get_workflow(env, ns, "hooked").get("status", {}).get("runsCreated") == 2,
        timeout=30,
        what="runsCreated 2",
    )
    assert TOKEN not in env.proc.log.read_text(errors="replace")


# -- (c) event triggers ----------------------------------------------------------------------------


def test_event_trigger_fires_once_per_finished_run_also_across_a_restart(
    triggers: Env, namespace: str
) -> None:
    env, ns = triggers, namespace
    trigger = {
        "selector": {"matchLabels": {"stage": "enrich"}},
        "phase": "succeeded",
        "inputs": {"mode": "clean"},
    }
    create_workflow(env, ns, "cleanup", inputs={"mode": "full", "keep": 3}, triggers={"events": [trigger]})

    def fired_for(source: str) -> list[dict[str, Any]]:
        uid = get_run(env, ns, source)["metadata"]["uid"]
        wanted = event_run_name("cleanup", uid, 0)
        return [r for r in runs_of(env, ns, "cleanup") if r["metadata"]["name"] == wanted]

    column_run(env, ns, "enrich-1", {"stage": "enrich"})
    column_run(env, ns, "score-1", {"stage": "score"})  # does not match the selector
    wait_phase(env, ns, "enrich-1", "succeeded")
    wait_phase(env, ns, "score-1", "succeeded")
    wait_for(lambda: fired_for("enrich-1"), timeout=30, what="the event run for enrich-1")
    (run,) = runs_of(env, ns, "cleanup")
    assert run["spec"]["trigger"] == "event"
    assert run["metadata"]["labels"][LABEL_TRIGGER] == "event"
    assert run["spec"]["inputs"] == {"mode": "clean", "keep": 3}
    assert run["metadata"]["annotations"]["oxygen.dev/source-run"] == "enrich-1"
    mark = fired_annotation("cleanup")
    wait_for(
        lambda: get_run(env, ns, "enrich-1")["metadata"].get("annotations", {}).get(mark) == "0",
        timeout=30,
        what="enrich-1 marked as fired",
    )

    # SIGKILL and restart: the finished run is seen again, and fires nothing new.
    env.restart()
    column_run(env, ns, "enrich-2", {"stage": "enrich"})
    wait_phase(env, ns, "enrich-2", "succeeded")
    wait_for(lambda: fired_for("enrich-2"), timeout=60, what="the event run for enrich-2 after the restart")
    assert len(fired_for("enrich-1")) == 1
    assert len(runs_of(env, ns, "cleanup")) == 2

    # A crash between creating the run and marking the source: the deterministic name makes the
    # repeated create a no-op, and the source is marked again.
    env.custom.patch_namespaced_custom_object(
        GROUP, VERSION, ns, "runs", "enrich-1", {"metadata": {"annotations": {mark: None}}}
    )
    wait_for(
        lambda: get_run(env, ns, "enrich-1")["metadata"].get("annotations", {}).get(mark) == "0",
        timeout=30,
        what="enrich-1 marked again",
    )
    assert len(fired_for("enrich-1")) == 1
    assert len(runs_of(env, ns, "cleanup")) == 2
    assert "RunNameTaken" not in workflow_events(env, ns, "cleanup")  # its own run, not a squatter

    # The event run deleted (as the history limit would): the marked source does not fire again.
    (gone,) = fired_for("enrich-1")
    env.custom.delete_namespaced_custom_object(GROUP, VERSION, ns, "runs", gone["metadata"]["name"])
    env.restart()
    column_run(env, ns, "enrich-3", {"stage": "enrich"})
    wait_phase(env, ns, "enrich-3", "succeeded")
    wait_for(lambda: fired_for("enrich-3"), timeout=60, what="the event run for enrich-3")
    time.sleep(2)
    assert fired_for("enrich-1") == []
    assert len(runs_of(env, ns, "cleanup")) == 2  # enrich-2's and enrich-3's
    assert all(
        r["metadata"]["annotations"]["oxygen.dev/source-run"] != "score-1"
        for r in runs_of(env, ns, "cleanup")
    )
