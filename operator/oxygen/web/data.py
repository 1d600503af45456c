"""What a run page shows, read from the API server with the operator's client (blocking calls)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from oxygen.api.common import GROUP, VERSION
from oxygen.api.labels import LABEL_RUN_UID
from oxygen.web.page import EventRow


@dataclass(frozen=True)
class RunPageData:
    run: dict[str, Any]
    shards: list[dict[str, Any]]
    events: list[EventRow]


def _stamp(value: Any) -> str:
    if value is None:
        return ""
    if hasattr(value, "strftime"):
        return str(value.strftime("%Y-%m-%dT%H:%M:%SZ"))
    return str(value)


def event_rows(events: list[Any]) -> list[EventRow]:
    rows = []
    for ev in events:
        when = ev.last_timestamp or ev.event_time or ev.first_timestamp or ev.metadata.creation_timestamp
        rows.append(
            EventRow(
                time=_stamp(when),
                type=ev.type or "",
                reason=ev.reason or "",
                message=ev.message or "",
                count=int(ev.count or 1),
            )
        )
    return rows


SHARDS_PER_REQUEST = 5
_ITEM_FIELDS = ("id", "rowId", "status", "attemptCount", "error", "errorClass", "finishedAt", "supersededBy")


def slim(shard: dict[str, Any]) -> dict[str, Any]:
    """A shard without its items' inputs and outputs (the page never shows them)."""
    spec = shard.get("spec") or {}
    status = shard.get("status") or {}
    return {
        "metadata": {"name": shard["metadata"]["name"]},
        "spec": {
            "round": spec.get("round"),
            "index": spec.get("index"),
            "items": [{}] * len(spec.get("items") or []),
        },
        "status": {
            **{k: v for k, v in status.items() if k != "items"},
            "items": [{k: i[k] for k in _ITEM_FIELDS if k in i} for i in status.get("items") or []],
        },
    }


def load_run_page(api_client: Any, namespace: str, name: str) -> RunPageData | None:
    """The Run, its shards and its Events; None when the Run does not exist."""
    custom = client.CustomObjectsApi(api_client)
    try:
        run: dict[str, Any] = custom.get_namespaced_custom_object(GROUP, VERSION, namespace, "runs", name)
    except ApiException as err:
        if err.status == 404:
            return None
        raise
    uid = run["metadata"]["uid"]
    shards: list[dict[str, Any]] = []
    token: str | None = None
    # Page through the shards and keep only what the page shows: never every input and output.
    while True:
        page = custom.list_namespaced_custom_object(
            GROUP,
            VERSION,
            namespace,
            "runshards",
            label_selector=f"{LABEL_RUN_UID}={uid}",
            limit=SHARDS_PER_REQUEST,
            _continue=token,
        )
        shards += [slim(shard) for shard in page.get("items", [])]
        token = (page.get("metadata") or {}).get("continue")
        if not token:
            break
    events = client.CoreV1Api(api_client).list_namespaced_event(
        namespace, field_selector=f"involvedObject.uid={uid}"
    )
    return RunPageData(run=run, shards=shards, events=event_rows(list(events.items or [])))
