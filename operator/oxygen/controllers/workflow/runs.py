"""The Run a workflow fire creates: its name, labels, owner and spec. Pure.

Names are deterministic where a fire must create its run exactly once, so a repeated create is a
409 rather than a second run: a schedule fire is `<workflow>-<unix minutes of the fire>` (as a
CronJob names its Jobs), an event fire `<workflow>-ev-<hash of (source run uid, trigger index)>`.
User and webhook calls use `generateName: <workflow>-`. Names and label values stay within 63
characters (long workflow names are cut and suffixed with a hash of the whole name).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Mapping
from typing import Any

from oxygen.api.common import API_VERSION, GROUP, JsonObject
from oxygen.api.labels import MANAGED_BY, owner_reference
from oxygen.api.run import Trigger
from oxygen.api.workflow import Workflow
from oxygen.timefmt import rfc3339

LABEL_WORKFLOW = f"{GROUP}/workflow"
LABEL_TRIGGER = f"{GROUP}/trigger"
# On schedule runs: the fire time (RFC 3339). On event runs: the run that fired it.
ANNOTATION_SCHEDULED_AT = f"{GROUP}/scheduled-at"
ANNOTATION_SOURCE_RUN = f"{GROUP}/source-run"
ANNOTATION_SOURCE_RUN_UID = f"{GROUP}/source-run-uid"
MAX_NAME = 63
# generateName gets 5 random characters appended by the API server.
GENERATED_SUFFIX = 5


def short_hash(*parts: str, length: int = 10) -> str:
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:length]


def fit(base: str, room: int = MAX_NAME) -> str:
    """`base` if it fits in `room` characters, else a prefix of it plus a hash of all of it."""
    if len(base) <= room:
        return base
    digest = short_hash(base, length=8)
    prefix = base[: max(room - len(digest) - 1, 1)].rstrip("-.")
    return f"{prefix}-{digest}" if prefix else digest[:room]


def workflow_label(workflow_name: str) -> str:
    """The value of the `oxygen.dev/workflow` label (a label value is at most 63 characters)."""
    return fit(workflow_name)


def unix_minutes(fire: dt.datetime) -> int:
    return int(fire.timestamp()) // 60


def schedule_run_name(workflow_name: str, fire: dt.datetime) -> str:
    suffix = f"-{unix_minutes(fire)}"
    return fit(workflow_name, MAX_NAME - len(suffix)) + suffix


def event_run_name(workflow_name: str, source_uid: str, trigger_index: int) -> str:
    suffix = f"-ev-{short_hash(source_uid, str(trigger_index))}"
    return fit(workflow_name, MAX_NAME - len(suffix)) + suffix


def generate_name(workflow_name: str) -> str:
    return fit(workflow_name, MAX_NAME - GENERATED_SUFFIX - 1) + "-"


def merged_inputs(workflow: Workflow, inputs: Mapping[str, Any] | None) -> JsonObject:
    """The workflow's declared inputs (defaults) overlaid key by key with the fire's inputs."""
    return {**workflow.spec.inputs, **(inputs or {})}


def run_manifest(
    workflow_body: Mapping[str, Any],
    trigger: Trigger,
    inputs: Mapping[str, Any] | None = None,
    *,
    name: str | None = None,
    annotations: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The Run a fire creates; `name=None` means `generateName: <workflow>-`."""
    workflow = Workflow.model_validate(workflow_body)
    wf_name = workflow.metadata.name
    template = workflow.spec.run_template
    metadata: dict[str, Any] = {
        "namespace": workflow.metadata.namespace,
        "labels": {**MANAGED_BY, LABEL_WORKFLOW: workflow_label(wf_name), LABEL_TRIGGER: trigger},
        "ownerReferences": [owner_reference({"kind": "Workflow", **dict(workflow_body)}, controller=True)],
    }
    if annotations:
        metadata["annotations"] = dict(annotations)
    if name is None:
        metadata["generateName"] = generate_name(wf_name)
    else:
        metadata["name"] = name
    return {
        "apiVersion": API_VERSION,
        "kind": "Run",
        "metadata": metadata,
        "spec": {
            "kind": "workflow",
            "workflowRef": {"name": wf_name},
            "inputs": merged_inputs(workflow, inputs),
            "trigger": trigger,
            "mode": template.mode,
            "creditAccount": template.credit_account,
            "retry": template.retry.wire(),
        },
    }


def schedule_run(workflow_body: Mapping[str, Any], fire: dt.datetime) -> dict[str, Any]:
    name = schedule_run_name(workflow_body["metadata"]["name"], fire)
    stamp = rfc3339(fire)
    return run_manifest(workflow_body, "schedule", name=name, annotations={ANNOTATION_SCHEDULED_AT: stamp})


def event_run(
    workflow_body: Mapping[str, Any], source: Mapping[str, Any], trigger_index: int, inputs: Mapping[str, Any]
) -> dict[str, Any]:
    """`source` is the finished run's metadata (name, uid)."""
    name = event_run_name(workflow_body["metadata"]["name"], source["uid"], trigger_index)
    annotations = {ANNOTATION_SOURCE_RUN: source["name"], ANNOTATION_SOURCE_RUN_UID: source["uid"]}
    return run_manifest(workflow_body, "event", inputs, name=name, annotations=annotations)
