"""The Workflow resource: a named, reusable definition of steps, with triggers that create Runs."""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field, model_validator

from oxygen.api.common import Condition, Inputs, Model, ObjectMeta
from oxygen.api.run import Producer, Retry, RunMode

STEP_NAME = r"^[a-z0-9]([a-z0-9_-]{0,61}[a-z0-9])?$"


class WorkflowStep(Model):
    # A waterfall is a column run's producer: a step names one provider (its summary is per step).
    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {"rule": "!has(self.producer.waterfall)", "message": "a workflow step cannot be a waterfall"}
            ]
        }
    )

    name: str = Field(pattern=STEP_NAME)
    producer: Producer

    @model_validator(mode="after")
    def _no_waterfall(self) -> WorkflowStep:
        if self.producer.waterfall is not None:
            raise ValueError("a workflow step cannot be a waterfall")
        return self

    # Templated inputs: "${inputs.<key>}" and "${steps.<name>.outputs.<key>}" (whole value or in text).
    inputs: Inputs = Field(default_factory=dict)


class RunTemplate(Model):
    mode: RunMode = "live"
    credit_account: str = "default"
    retry: Retry = Field(default_factory=Retry, json_schema_extra={"default": {}})


class ScheduleTrigger(Model):
    cron: str = Field(min_length=9)
    time_zone: str = "UTC"
    concurrency_policy: Literal["Allow", "Forbid", "Replace"] = "Allow"
    # Missed fires older than this are not caught up (like a CronJob's startingDeadlineSeconds).
    starting_deadline_seconds: int = Field(default=300, ge=1)


class SecretKeyRef(Model):
    name: str = Field(min_length=1)
    key: str = "token"


class WebhookTrigger(Model):
    token_secret_ref: SecretKeyRef
    max_body_bytes: int = Field(default=64 * 1024, ge=1, le=1024 * 1024)


class LabelSelector(Model):
    match_labels: dict[str, str] = Field(default_factory=dict)


class EventTrigger(Model):
    """Fire when a Run matching `selector` (in this namespace) finishes with `phase`."""

    selector: LabelSelector
    phase: Literal["succeeded", "completed", "failed", "canceled"] = "succeeded"
    inputs: Inputs = Field(default_factory=dict)


class Triggers(Model):
    schedule: ScheduleTrigger | None = None
    webhook: WebhookTrigger | None = None
    events: list[EventTrigger] = Field(default_factory=list)


class WorkflowSpec(Model):
    # A list-map keyed by name: the API server itself refuses two steps of the same name.
    steps: list[WorkflowStep] = Field(
        min_length=1,
        max_length=100,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )
    inputs: Inputs = Field(default_factory=dict)
    run_template: RunTemplate = Field(default_factory=RunTemplate, json_schema_extra={"default": {}})
    triggers: Triggers = Field(default_factory=Triggers, json_schema_extra={"default": {}})
    successful_runs_history_limit: int = Field(default=3, ge=0)
    failed_runs_history_limit: int = Field(default=1, ge=0)


class ManagedRun(Model):
    """A Run this Workflow created: only these are counted by its concurrency policy and pruned.

    An empty uid is an intent, recorded before the create (a fire's run name is deterministic):
    a crash between the create and the uid's write leaves the run findable by name.
    """

    name: str = Field(min_length=1, max_length=253)
    uid: str = ""
    # When the entry was written (RFC 3339): an entry whose run is not seen is kept this long.
    since: str = ""


class WorkflowStatus(Model):
    last_schedule_time: str | None = None
    active: list[str] = Field(default_factory=list)
    # Bounded by the workflow itself: active runs plus those within the history limits.
    managed_runs: list[ManagedRun] = Field(default_factory=list)
    runs_created: int = 0
    observed_generation: int = 0
    conditions: list[Condition] = Field(default_factory=list)


class Workflow(Model):
    api_version: str = "oxygen.dev/v1alpha1"
    kind: str = "Workflow"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: WorkflowSpec
    status: WorkflowStatus = Field(default_factory=WorkflowStatus)
