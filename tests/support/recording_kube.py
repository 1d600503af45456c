"""A recording stand-in for the few calls of oxygen.kube.client.Kube that the Run controller's apply
step makes: it records their order and echoes bodies back. It is not an API server (no validation,
no watches, no defaults); what the API server does is tested against the real one in tests/integration."""

from __future__ import annotations

import copy
import json
from typing import Any

from kubernetes.client.exceptions import ApiException

from oxygen.kube.client import OwnershipConflict


class RecordingKube:
    def __init__(self, fail: str = "", conflict: OwnershipConflict | None = None, refuse: str = "") -> None:
        self.calls: list[tuple[str, str]] = []
        self.fail = fail
        self.refuse = refuse  # the call answered 422, as the API server answers an invalid object
        self.conflict = conflict
        self.shards: dict[str, dict[str, Any]] = {}
        self.messages: list[str] = []  # the Events' messages
        self.jobs: dict[str, dict[str, Any]] = {}  # Jobs that exist already (create answers 409)
        self.runs: dict[str, dict[str, Any]] = {}  # Runs a `get` finds (owners of foreign children)

    def get(self, plural: str, namespace: str, name: str) -> dict[str, Any]:
        self._call(f"get:{plural}", name)
        found = (self.shards if plural == "runshards" else self.runs).get(name)
        if found is None:
            raise ApiException(status=404, reason="Not Found")
        return copy.deepcopy(found)

    def read_job(self, namespace: str, name: str) -> dict[str, Any] | None:
        self._call("read-job", name)
        return copy.deepcopy(self.jobs.get(name))

    def _call(self, what: str, name: str) -> None:
        self.calls.append((what, name))
        if what == self.fail:
            raise RuntimeError(f"{what} refused")
        if what == self.refuse:
            err = ApiException(status=422, reason="Unprocessable Entity")
            err.body = json.dumps({"kind": "Status", "message": f"{name} is invalid: metadata.labels"})
            raise err

    def apply_owned(self, kind: str, namespace: str, body: dict[str, Any]) -> None:
        self._call("identity", kind)
        if self.conflict is not None:
            raise self.conflict

    def create_or_get(self, plural: str, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        name = body["metadata"]["name"]
        self._call("create", name)
        stored = self.shards.setdefault(name, {**copy.deepcopy(body), "status": {}})
        stored["metadata"].setdefault("uid", f"uid-{name}")
        stored["metadata"].setdefault("resourceVersion", "1")
        return copy.deepcopy(stored)

    def patch_status(self, plural: str, namespace: str, name: str, status: dict[str, Any]) -> dict[str, Any]:
        self._call(f"status:{plural}", name)
        if plural != "runshards":
            return {}
        stored = self.shards.setdefault(name, {"metadata": {"name": name}, "spec": {}, "status": {}})
        stored["status"] = copy.deepcopy(status)
        stored["metadata"]["resourceVersion"] = str(int(stored["metadata"].get("resourceVersion") or 0) + 1)
        return copy.deepcopy(stored)

    def set_finalizer(self, plural: str, namespace: str, name: str, finalizer: str, present: bool) -> bool:
        self._call(f"{'add' if present else 'remove'}-finalizer:{plural}", name)
        return True

    def delete(self, plural: str, namespace: str, name: str, uid: str) -> None:
        self._call(f"delete:{plural}", name)
        if self.shards.get(name, {}).get("metadata", {}).get("uid") == uid:
            del self.shards[name]

    def delete_job(self, namespace: str, name: str) -> None:
        self._call("delete", name)

    def set_job_suspended(self, namespace: str, name: str, suspend: bool) -> None:
        self._call("suspend" if suspend else "resume", name)

    def create_job(self, namespace: str, body: dict[str, Any]) -> bool:
        self._call("job", body["metadata"]["name"])
        return body["metadata"]["name"] not in self.jobs

    def event(self, obj: dict[str, Any], reason: str, message: str, type_: str = "Normal") -> None:
        self._call("event", reason)
        self.messages.append(message)
