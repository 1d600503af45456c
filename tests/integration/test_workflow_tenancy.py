"""Findings 8 and 10 (webhook) of the tenancy issue, as attacks on the Workflow controller.

Finding 8: forged ownership of Runs does not make them a Workflow's.

User `mallory` may create, get, list and patch Runs in the namespace, but not delete them. She labels
two of her Runs `oxygen.dev/workflow: wf` and gives them a controller ownerReference to Workflow `wf`:
a finished one (the history limit, 0, would delete it: a delete she may not do herself) and a paused
one (an unfinished run would make a `Forbid` schedule skip its fires). The Workflow manages only the
Runs its status records as created by it: it deletes neither as history, and its schedule fires.

Finding 10: the webhook rate-limits each workflow (429 with Retry-After), callers without the token
cannot spend that budget, and a rotated token takes effect within the cache's TTL.

Ordering without sleeps: the Workflow also has an event trigger; mallory creates a probe run after the
forgeries, and the Workflow's event run for the probe shows its operator has seen the forgeries (one
watch of Runs, in order). That event run, the Workflow's own, is pruned by the same limit: pruning
still works for what the Workflow did create.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from oxygen.api.common import GROUP, VERSION
from oxygen.controllers.workflow.runs import LABEL_WORKFLOW, event_run_name, schedule_run_name
from oxygen.devcluster.wait import wait_for
from tests.support.workflow_env import (
    BASE,
    ECHO_STEP,
    TOKEN,
    WEBHOOK_BURST,
    Env,
    create_workflow,
    get_run,
    get_workflow,
    operator_log_on_failure,
    post,
    post_reply,
    runs_of,
    triggers,
    wait_phase,
    workflow_events,
)

pytestmark = pytest.mark.cluster
__all__ = ["operator_log_on_failure", "triggers"]  # fixtures used by name

USER = "mallory"


@pytest.fixture
def mallory(api: client.ApiClient, namespace: str) -> Iterator[client.CustomObjectsApi]:
    """A client acting as `mallory` (impersonation), with a Role that may patch but not delete Runs."""
    rbac = client.RbacAuthorizationV1Api(api)
    rbac.create_namespaced_role(
        namespace,
        {
            "metadata": {"name": "run-patcher"},
            "rules": [
                {
                    "apiGroups": [GROUP],
                    "resources": ["runs"],
                    "verbs": ["create", "get", "list", "watch", "patch", "update"],
                }
            ],
        },
    )
    rbac.create_namespaced_role_binding(
        namespace,
        {
            "metadata": {"name": "run-patcher-mallory"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "run-patcher"},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": USER}],
        },
    )
    as_mallory = client.ApiClient(api.configuration)
    as_mallory.set_default_header("Impersonate-User", USER)
    try:
        yield client.CustomObjectsApi(as_mallory)
    finally:
        as_mallory.close()


def own_run(custom: client.CustomObjectsApi, ns: str, name: str, paused: bool = False, **labels: str) -> None:
    custom.create_namespaced_custom_object(
        GROUP,
        VERSION,
        ns,
        "runs",
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "Run",
            "metadata": {"name": name, "labels": labels},
            "spec": {
                "items": [{"inputs": {"a": 1}}],
                "producer": {"provider": "echo", "builtin": "echo"},
                "paused": paused,
            },
        },
    )


def forge(custom: client.CustomObjectsApi, ns: str, name: str, workflow: dict[str, Any]) -> None:
    """Claim `workflow` as the run's controller: its label and a controller ownerReference."""
    owner = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Workflow",
        "name": workflow["metadata"]["name"],
        "uid": workflow["metadata"]["uid"],
        "controller": True,
    }
    patch = {"metadata": {"labels": {LABEL_WORKFLOW: "wf"}, "ownerReferences": [owner]}}
    custom.patch_namespaced_custom_object(GROUP, VERSION, ns, "runs", name, patch)


def test_forged_ownership_neither_gets_a_run_pruned_nor_blocks_a_forbid_schedule(
    triggers: Env, namespace: str, mallory: client.CustomObjectsApi
) -> None:
    env, ns = triggers, namespace
    # Before the Workflow's creation (in real time): no fire is due until the clock moves to BASE.
    env.set_clock(dt.datetime(2020, 1, 1, tzinfo=dt.UTC))
    own_run(mallory, ns, "mallory-done")
    own_run(mallory, ns, "mallory-paused", paused=True)
    wait_phase(env, ns, "mallory-done", "succeeded")
    with pytest.raises(ApiException) as refused:
        mallory.delete_namespaced_custom_object(GROUP, VERSION, ns, "runs", "mallory-done")
    assert refused.value.status == 403  # the premise: she may not delete runs herself

    wf = create_workflow(
        env,
        ns,
        "wf",
        [ECHO_STEP],
        triggers={
            "schedule": {"cron": "* * * * *", "concurrencyPolicy": "Forbid"},
            "events": [{"selector": {"matchLabels": {"probe": "forgery"}}, "phase": "succeeded"}],
        },
        successfulRunsHistoryLimit=0,
        failedRunsHistoryLimit=0,
    )
    forge(mallory, ns, "mallory-done", wf)
    forge(mallory, ns, "mallory-paused", wf)
    own_run(mallory, ns, "probe", probe="forgery")
    wait_phase(env, ns, "probe", "succeeded")

    # The Workflow's own event run: created once the operator saw the probe (so the forgeries too),
    # then finished and pruned by the limit of 0.
    probe_run = event_run_name("wf", get_run(env, ns, "probe")["metadata"]["uid"], 0)
    wait_for(lambda: probe_run in recorded(env, ns), timeout=60, what=f"event run {probe_run} recorded")
    wait_for(
        lambda: (
            probe_run not in [r["metadata"]["name"] for r in runs_of(env, ns, "wf")]
            and probe_run not in recorded(env, ns)
        ),
        timeout=90,
        what=f"the workflow's own run {probe_run} pruned and forgotten",
    )

    # A fire with the forged paused run unfinished: Forbid does not count it, the run is created.
    env.set_clock(BASE)
    fired = schedule_run_name("wf", BASE.replace(second=0))
    wait_for(lambda: fired in recorded(env, ns), timeout=60, what=f"scheduled run {fired}")
    assert "SkippedConcurrent" not in workflow_events(env, ns, "wf")

    # Her runs stay, with her forgeries; the Workflow never listed them as its own.
    for name in ("mallory-done", "mallory-paused"):
        run = get_run(env, ns, name)
        assert run["metadata"]["ownerReferences"][0]["uid"] == wf["metadata"]["uid"]
        assert "deletionTimestamp" not in run["metadata"], name
        assert name not in recorded(env, ns)
    status = get_workflow(env, ns, "wf")["status"]
    assert "mallory-paused" not in status["active"]
    messages = [e.message for e in env.core.list_namespaced_event(ns).items if e.reason == "PrunedRun"]
    assert not [m for m in messages if "mallory" in m], messages
    assert [m for m in messages if probe_run in m], messages


def recorded(env: Env, ns: str) -> list[str]:
    """The names in the Workflow's record of the runs it created."""
    status = get_workflow(env, ns, "wf").get("status") or {}
    return [entry["name"] for entry in status.get("managedRuns") or []]


def test_a_run_created_before_a_crash_is_adopted_and_a_squatter_on_a_fire_name_is_not(
    triggers: Env, namespace: str, mallory: client.CustomObjectsApi
) -> None:
    env, ns = triggers, namespace
    env.set_clock(dt.datetime(2020, 1, 1, tzinfo=dt.UTC))
    wf = create_workflow(env, ns, "wf", [ECHO_STEP], triggers={"schedule": {"cron": "* * * * *"}})
    first = schedule_run_name("wf", BASE.replace(second=0))
    second = schedule_run_name("wf", BASE.replace(second=0) + dt.timedelta(minutes=1))

    # What a crash leaves behind: the intent recorded, the run created, its uid never written.
    since = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    env.custom.patch_namespaced_custom_object_status(
        GROUP, VERSION, ns, "workflows", "wf", {"status": {"managedRuns": [{"name": first, "since": since}]}}
    )
    own_run(env.custom, ns, first)
    forge(env.custom, ns, first, wf)
    # Mallory takes the next fire's name, with the forged label and ownerReference.
    own_run(mallory, ns, second)
    forge(mallory, ns, second, wf)

    uid = get_run(env, ns, first)["metadata"]["uid"]
    wait_for(lambda: (first, uid) in records(env, ns), timeout=60, what=f"{first} adopted")
    env.set_clock(BASE)
    wait_for(
        lambda: get_workflow(env, ns, "wf")["status"].get("lastScheduleTime") == "2030-01-01T00:00:00Z",
        timeout=60,
        what="the first fire handled",
    )
    env.set_clock(BASE + dt.timedelta(minutes=1))
    wait_for(
        lambda: "RunNameTaken" in workflow_events(env, ns, "wf"), timeout=60, what="the squatter noticed"
    )
    status = get_workflow(env, ns, "wf")["status"]
    assert status["lastScheduleTime"] == "2030-01-01T00:01:00Z"  # the fire counts as handled
    assert [name for name, _ in records(env, ns)] == [first]
    assert second not in status["active"]
    assert get_run(env, ns, second)["metadata"].get("deletionTimestamp") is None
    assert sorted(r["metadata"]["name"] for r in runs_of(env, ns, "wf")) == sorted([first, second])


def records(env: Env, ns: str) -> list[tuple[str, str]]:
    status = get_workflow(env, ns, "wf").get("status") or {}
    return [(entry["name"], entry.get("uid") or "") for entry in status.get("managedRuns") or []]


# -- finding 10: the webhook -----------------------------------------------------------------------


def hooked_workflow(env: Env, ns: str, name: str, token: str = TOKEN) -> None:
    env.core.create_namespaced_secret(
        ns, {"metadata": {"name": f"{name}-token"}, "stringData": {"token": token}}
    )
    create_workflow(env, ns, name, triggers={"webhook": {"tokenSecretRef": {"name": f"{name}-token"}}})


def test_webhook_rate_limit_is_per_workflow_and_spent_only_by_authenticated_calls(
    triggers: Env, namespace: str
) -> None:
    env, ns = triggers, namespace
    hooked_workflow(env, ns, "burst")
    hooked_workflow(env, ns, "calm")
    good = {"Authorization": f"Bearer {TOKEN}"}

    # Callers without the token get 401 however often they call, and spend nothing.
    for _ in range(2 * WEBHOOK_BURST):
        assert post(env, f"/hooks/{ns}/burst", b"{}", {"Authorization": "Bearer guess"})[0] == 401
    answers = [post(env, f"/hooks/{ns}/burst", b"{}", good)[0] for _ in range(WEBHOOK_BURST)]
    assert answers == [201] * WEBHOOK_BURST

    status, reply, headers = post_reply(env, f"/hooks/{ns}/burst", b"{}", good)
    assert status == 429, reply
    assert "rate limit" in reply["error"]
    assert int(headers["Retry-After"]) >= 1
    assert post(env, f"/hooks/{ns}/burst", b"{}", {"Authorization": "Bearer guess"})[0] == 401  # auth first
    assert len(runs_of(env, ns, "burst")) == WEBHOOK_BURST  # the refused call created nothing
    assert post(env, f"/hooks/{ns}/calm", b"{}", good)[0] == 201  # another workflow, its own budget


def test_a_rotated_webhook_token_takes_effect_within_the_cache_ttl(triggers: Env, namespace: str) -> None:
    env, ns = triggers, namespace
    hooked_workflow(env, ns, "rotating", token="old-token")
    path = f"/hooks/{ns}/rotating"
    assert post(env, path, b"{}", {"Authorization": "Bearer old-token"})[0] == 201
    env.core.replace_namespaced_secret(
        "rotating-token", ns, {"metadata": {"name": "rotating-token"}, "stringData": {"token": "new-token"}}
    )
    wait_for(
        lambda: post(env, path, b"{}", {"Authorization": "Bearer new-token"})[0] == 201,
        timeout=30,
        what="the new token accepted (within the cache TTL)",
    )
    status, reply = post(env, path, b"{}", {"Authorization": "Bearer old-token"})
    assert status == 401, reply
    assert "old-token" not in env.proc.log.read_text(errors="replace")
    assert "new-token" not in env.proc.log.read_text(errors="replace")
