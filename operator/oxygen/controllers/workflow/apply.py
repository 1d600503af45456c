"""Carrying out a Workflow Plan: the only code of this controller that calls the API server.

Order: cancels; the intents of the runs to create written into status.managedRuns, then the
creates; the history deletes (uid preconditions); one status write (the record's edits, the count,
the rest of the status); the event sources' marks; the Events, only after the status write.

Every write of status.managedRuns or status.runsCreated is optimistic (the read resourceVersion is
a precondition, retried on conflict): the webhook, the CLI and the daemon never lose each other's
entries or counts.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from oxygen.api.common import GROUP, VERSION
from oxygen.controllers.workflow.clock import Clock, SystemClock, format_time
from oxygen.controllers.workflow.decide import latest_schedule, status_changed
from oxygen.controllers.workflow.events import fired_annotation, fired_indexes
from oxygen.controllers.workflow.managed import edited
from oxygen.controllers.workflow.observe import WorkflowMemory
from oxygen.controllers.workflow.plan import Notice, Plan, SourceMark
from oxygen.controllers.workflow.views import run_view
from oxygen.kube.client import ApiException, Kube

log = logging.getLogger("oxygen.workflow")

StatusEdit = Callable[[Mapping[str, Any]], dict[str, Any]]


class WorkflowApplier:
    def __init__(self, kube: Kube, wall: Clock | None = None) -> None:
        self.kube = kube
        self.wall = wall or SystemClock()

    def apply(self, body: Mapping[str, Any], plan: Plan, memory: WorkflowMemory) -> None:
        meta = body["metadata"]
        ns, name = meta["namespace"], meta["name"]
        since = format_time(self.wall.now())
        for run_name in plan.cancel:
            self._cancel(ns, run_name)
        created: dict[str, str] = {}
        refused: list[str] = []
        if plan.create:
            entries = self.intend(ns, name, [m["metadata"]["name"] for m in plan.create])
            memory.wrote(entries, [])
            ours = {e["name"] for e in entries if e.get("uid")}
            for manifest in plan.create:
                run = self.create_run(ns, manifest, memory)
                if run is not None:
                    created[run["metadata"]["name"]] = run["metadata"]["uid"]
                elif manifest["metadata"]["name"] not in ours:
                    refused.append(manifest["metadata"]["name"])
            memory.fired.update(plan.event_fires)
        for run_name, uid in plan.delete:
            self._delete(ns, run_name, uid)
        if "lastScheduleTime" in plan.status:
            memory.last_schedule = latest_schedule(plan.status["lastScheduleTime"], memory.last_schedule)
        notices = list(plan.notices)
        drop = {*plan.forget, *((n, "") for n in refused)}
        if created or refused or plan.adopt or plan.forget:
            record = {**plan.adopt, **created}

            def edit(cur: Mapping[str, Any]) -> dict[str, Any]:
                entries = edited(cur.get("managedRuns") or [], since, record=record, drop=drop)
                count = int(cur.get("runsCreated") or 0) + len(created)
                return {**plan.status, "managedRuns": entries, "runsCreated": count}

            entries = self.write_status(ns, name, edit)
            memory.wrote([e for e in entries if e["name"] in record], sorted(drop))
            memory.last_status = plan.status
        elif status_changed(body.get("status") or {}, plan.status) and plan.status != memory.last_status:
            try:
                self.kube.patch_status("workflows", ns, name, plan.status)
                memory.last_status = plan.status
            except ApiException as err:
                if err.status != 404:
                    raise
        for run_name in refused:
            notices.append(
                Notice(
                    "RunNameTaken", f"run {run_name} exists and was not created by this workflow", "Warning"
                )
            )
        for mark in plan.marks:
            if self._mark_fired(ns, mark, name):
                memory.marked.update((mark.run_uid, index) for index in mark.indexes)
        for notice in notices:
            self._notice(body, notice)

    def write_status(
        self, namespace: str, name: str, edit: StatusEdit, attempts: int = 8
    ) -> list[dict[str, Any]]:
        """Read the Workflow, patch its status with `edit(current status)` under the read
        resourceVersion, retried on conflict. Returns the managedRuns written ([] if none)."""
        for _ in range(attempts):
            try:
                workflow = self.kube.get("workflows", namespace, name)
                patch = edit(workflow.get("status") or {})
                self.kube.custom.patch_namespaced_custom_object_status(
                    GROUP,
                    VERSION,
                    namespace,
                    "workflows",
                    name,
                    {
                        "metadata": {"resourceVersion": workflow["metadata"]["resourceVersion"]},
                        "status": patch,
                    },
                )
                return list(patch.get("managedRuns") or [])
            except ApiException as err:
                if err.status == 404:
                    return []
                if err.status != 409:
                    raise
        log.warning("workflow %s/%s: status not written after %d conflicts", namespace, name, attempts)
        return []

    def record_created(self, namespace: str, name: str, runs: Mapping[str, str]) -> None:
        """Count `runs` ({name: uid}) as created by the workflow and record them as managed."""
        since = format_time(self.wall.now())

        def edit(cur: Mapping[str, Any]) -> dict[str, Any]:
            return {
                "managedRuns": edited(cur.get("managedRuns") or [], since, record=runs),
                "runsCreated": int(cur.get("runsCreated") or 0) + len(runs),
            }

        self.write_status(namespace, name, edit)

    def intend(self, namespace: str, name: str, run_names: Iterable[str]) -> list[dict[str, Any]]:
        """Record the names of runs about to be created (see managed.py: crash safety)."""
        since, names = format_time(self.wall.now()), list(run_names)
        return self.write_status(
            namespace,
            name,
            lambda cur: {"managedRuns": edited(cur.get("managedRuns") or [], since, intend=names)},
        )

    def create_run(
        self, namespace: str, manifest: dict[str, Any], memory: WorkflowMemory | None
    ) -> dict[str, Any] | None:
        """Create a Run; None when one of that name exists already."""
        try:
            created: dict[str, Any] = self.kube.custom.create_namespaced_custom_object(
                GROUP, VERSION, namespace, "runs", manifest
            )
        except ApiException as err:
            if err.status == 409:
                return None
            raise
        log.info(
            "workflow %s/%s: created run %s (trigger %s)",
            namespace,
            manifest["spec"]["workflowRef"]["name"],
            created["metadata"]["name"],
            manifest["spec"]["trigger"],
        )
        if memory is not None:
            memory.fresh[created["metadata"]["name"]] = (time.monotonic(), run_view(created))
        return created

    def _cancel(self, namespace: str, run_name: str) -> None:
        try:
            self.kube.patch_spec("runs", namespace, run_name, {"cancel": True})
        except ApiException as err:
            if err.status != 404:
                raise

    def _delete(self, namespace: str, run_name: str, uid: str) -> None:
        body: dict[str, Any] = {"propagationPolicy": "Background"}
        if uid:
            body["preconditions"] = {"uid": uid}
        try:
            self.kube.custom.delete_namespaced_custom_object(
                GROUP, VERSION, namespace, "runs", run_name, body=body
            )
        except ApiException as err:
            if err.status not in (404, 409):
                raise

    def _mark_fired(self, namespace: str, mark: SourceMark, workflow_name: str) -> bool:
        """Record on the source run which of this workflow's triggers it fired (a merge patch of one key)."""
        try:
            run = self.kube.get("runs", namespace, mark.run_name)
            if run["metadata"].get("uid") != mark.run_uid:
                return True  # the source was replaced by a namesake: nothing left to mark
            key = fired_annotation(workflow_name)
            merged = fired_indexes(run["metadata"].get("annotations") or {}, workflow_name) | mark.indexes
            self.kube.custom.patch_namespaced_custom_object(
                GROUP,
                VERSION,
                namespace,
                "runs",
                mark.run_name,
                {
                    "metadata": {
                        "resourceVersion": run["metadata"]["resourceVersion"],
                        "annotations": {key: ",".join(str(i) for i in sorted(merged))},
                    }
                },
            )
            return True
        except ApiException as err:
            if err.status == 404:
                return True  # the source is gone
            if err.status == 409:
                return False  # it changed under us: the next pass marks it again
            raise

    def _notice(self, body: Mapping[str, Any], notice: Notice) -> None:
        try:
            self.kube.event({"kind": "Workflow", **body}, notice.reason, notice.message, notice.type)
        except ApiException as err:  # an Event is best effort; the pass itself succeeded
            log.warning("could not post event %s: %s", notice.reason, err.reason)


def record_created(kube: Kube, namespace: str, name: str, runs: Mapping[str, str]) -> None:
    """For runs created outside the daemon (`oxygen workflows run`): count and record them."""
    WorkflowApplier(kube).record_created(namespace, name, runs)
