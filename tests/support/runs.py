"""Helpers for tests that create Runs and watch them finish, against the real API server."""

from __future__ import annotations

import json
from typing import Any

from kubernetes import client

from oxygen.api.common import GROUP, VERSION
from oxygen.api.labels import LABEL_RUN, label_value
from oxygen.devcluster.wait import wait_for

TERMINAL = ("succeeded", "completed", "failed", "canceled")


class Runs:
    def __init__(self, api: client.ApiClient, namespace: str) -> None:
        self.api = api
        self.ns = namespace
        self.custom = client.CustomObjectsApi(api)
        self.batch = client.BatchV1Api(api)
        self.core = client.CoreV1Api(api)

    def create(self, name: str, spec: dict[str, Any], labels: dict[str, str] | None = None) -> dict[str, Any]:
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "Run",
            "metadata": {"name": name, "labels": labels or {}},
            "spec": spec,
        }
        result: dict[str, Any] = self.custom.create_namespaced_custom_object(
            GROUP, VERSION, self.ns, "runs", body
        )
        return result

    def create_from_rows(self, name: str, rows: int, **spec: Any) -> dict[str, Any]:
        """A run of `rows` echo items read from a ConfigMap (JSONL) of the same name."""
        text = "\n".join(json.dumps({"rowId": f"row-{i}", "inputs": {"i": i}}) for i in range(rows))
        self.core.create_namespaced_config_map(
            self.ns, {"metadata": {"name": name}, "data": {"rows.jsonl": text}}
        )
        items_from = {"configMapKeyRef": {"name": name, "key": "rows.jsonl"}}
        producer = {"provider": "echo", "builtin": "echo"}
        return self.create(name, {"itemsFrom": items_from, "producer": producer, **spec})

    def get(self, name: str) -> dict[str, Any]:
        result: dict[str, Any] = self.custom.get_namespaced_custom_object(
            GROUP, VERSION, self.ns, "runs", name
        )
        return result

    def status(self, name: str) -> dict[str, Any]:
        status: dict[str, Any] = self.get(name).get("status") or {}
        return status

    def patch(self, name: str, spec: dict[str, Any]) -> None:
        self.custom.patch_namespaced_custom_object(GROUP, VERSION, self.ns, "runs", name, {"spec": spec})

    def shards(self, name: str) -> list[dict[str, Any]]:
        items = self.custom.list_namespaced_custom_object(
            GROUP, VERSION, self.ns, "runshards", label_selector=f"{LABEL_RUN}={label_value(name)}"
        )["items"]
        return sorted(items, key=lambda s: (s["spec"]["round"], s["spec"]["index"]))

    def items(self, name: str) -> dict[str, dict[str, Any]]:
        """Every item's latest result, by id (superseded results are replaced by later rounds)."""
        latest: dict[str, dict[str, Any]] = {}
        for shard in self.shards(name):
            for item in (shard.get("status") or {}).get("items", []):
                if not item.get("supersededBy"):
                    latest[item["id"]] = item
        return latest

    def jobs(self, name: str) -> list[Any]:
        selector = f"{LABEL_RUN}={label_value(name)}"
        return list(self.batch.list_namespaced_job(self.ns, label_selector=selector).items)

    def pods(self, name: str) -> list[Any]:
        selector = f"{LABEL_RUN}={label_value(name)}"
        return list(self.core.list_namespaced_pod(self.ns, label_selector=selector).items)

    def events(self, name: str) -> list[Any]:
        return [e for e in self.core.list_namespaced_event(self.ns).items if e.involved_object.name == name]

    def wait_phase(
        self, name: str, *phases: str, timeout: float = 120, describe: Any = None
    ) -> dict[str, Any]:
        wanted = phases or TERMINAL
        return wait_for(
            lambda: (s := self.status(name)).get("phase") in wanted and s,
            timeout=timeout,
            what=f"run {name} to reach {'/'.join(wanted)}",
            describe=describe or (lambda: _brief(self.status(name))),
        )


def _brief(status: dict[str, Any]) -> str:
    keys = (
        "phase",
        "message",
        "itemsTotal",
        "itemsSucceeded",
        "itemsFailed",
        "itemsPending",
        "itemsRunning",
        "itemsRetrying",
        "itemsSkipped",
        "shards",
    )
    return "last status: " + ", ".join(f"{k}={status.get(k)}" for k in keys)
