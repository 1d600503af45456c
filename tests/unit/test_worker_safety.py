"""The worker survives what it cannot record (deep replies, a failure after a call) and reads its rate
share cheaply."""

from __future__ import annotations

import json
from typing import Any, cast

import pytest
from kubernetes.client import ApiClient

from oxygen.api.labels import ANNOTATION_RATE_SHARE
from oxygen.api.nesting import MAX_INPUT_DEPTH
from oxygen.execution.item_calls import ItemCall, PermanentError, ProducerResult, parse_json_output
from oxygen.execution.pod import ShardClient
from oxygen.kube.client import METADATA_ONLY, Kube
from tests.unit.test_worker import FakeClock, Flushes, Scripted, executor, make_shard


def nested(levels: int) -> Any:
    """`levels` lists inside each other, built without recursion."""
    value: Any = []
    for _ in range(levels - 1):
        value = [value]
    return value


@pytest.mark.parametrize("levels", [MAX_INPUT_DEPTH + 1, 300, 100_000])
def test_a_reply_nested_deeper_than_inputs_may_be_is_malformed(levels: int) -> None:
    body = ("[" * levels + "]" * levels).encode()
    with pytest.raises(PermanentError) as raised:
        parse_json_output(body, "reply body")
    assert raised.value.error_class == "malformed_response"
    assert raised.value.message == f"reply body nests deeper than {MAX_INPUT_DEPTH} levels"


def test_a_reply_at_the_nesting_limit_parses() -> None:
    body = json.dumps({"a": nested(MAX_INPUT_DEPTH - 1)}).encode()
    assert parse_json_output(body, "reply body") == {"a": nested(MAX_INPUT_DEPTH - 1)}


@pytest.mark.parametrize("levels", [300, 5_000])
def test_outputs_that_cannot_be_recorded_fail_the_item_not_the_worker(levels: int) -> None:
    def answer(call: ItemCall) -> ProducerResult:
        # A producer that hands over outputs without parse_json_output's bound.
        return ProducerResult(outputs=nested(levels) if call.item_id == "i1" else {"ok": True})

    flushes = Flushes()
    outcome = executor(make_shard(3), Scripted(answer), FakeClock(), flushes, concurrency=1).run()
    items = {item.id: item for item in outcome.status.items}
    assert (items["i1"].status, items["i1"].error_class) == ("failed", "producer_error")
    assert (items["i1"].error or "").startswith("recording the reply failed: ")
    assert [items[i].status for i in ("i0", "i2")] == ["succeeded", "succeeded"]
    assert flushes[-1] == outcome.status


def test_a_worker_that_fails_still_writes_the_calls_it_made() -> None:
    flushes = Flushes()
    answer = Scripted(lambda call: ProducerResult(outputs={}))
    run = executor(make_shard(3), answer, FakeClock(), flushes, flush_interval=10.0)
    answered = run._pace.answered
    seen: list[int] = []

    def answered_then_fail() -> None:
        seen.append(1)
        if len(seen) == 3:
            raise RuntimeError("a bug after the third call")
        answered()

    run._pace.answered = answered_then_fail  # type: ignore[method-assign]
    with pytest.raises(RuntimeError, match="a bug after the third call"):
        run.run()
    # The interval never came due: without the final write, the next pod would call all three again.
    assert flushes, "the status was never written"
    final = flushes[-1]
    assert final.message == "worker failed: RuntimeError"
    assert final.summary.calls == 3
    assert [item.status for item in final.items].count("succeeded") == 2


class MetadataOnly:
    """A Kube stand-in that serves a shard's metadata and refuses whole-object reads."""

    def __init__(self, metadata: dict[str, Any]) -> None:
        self.metadata = metadata
        self.reads: list[tuple[str, str, str]] = []

    def get_metadata(self, plural: str, namespace: str, name: str) -> dict[str, Any]:
        self.reads.append((plural, namespace, name))
        return self.metadata

    def get(self, plural: str, namespace: str, name: str) -> dict[str, Any]:
        raise AssertionError("the rate share is read without the whole shard")


SHARE = '{"rps": 2, "burst": 2, "epoch": 3}'


def test_the_rate_share_is_read_from_the_shards_metadata_alone() -> None:
    kube = MetadataOnly({"uid": "u-1", "annotations": {ANNOTATION_RATE_SHARE: SHARE}})
    client = ShardClient(cast(Kube, kube), "ns", "s", uid="u-1")
    assert client.rate_share() == SHARE
    assert kube.reads == [("runshards", "ns", "s")]


def test_a_namesake_shards_rate_share_is_ignored() -> None:
    kube = MetadataOnly({"uid": "u-2", "annotations": {ANNOTATION_RATE_SHARE: SHARE}})
    assert ShardClient(cast(Kube, kube), "ns", "s", uid="u-1").rate_share() is None


class Response:
    status = 200
    reason = "OK"

    def read(self) -> bytes:
        return b'{"kind": "PartialObjectMetadata", "metadata": {"uid": "u-1", "annotations": {"a": "b"}}}'


def test_kube_reads_a_custom_objects_metadata_as_partial_object_metadata() -> None:
    # The real request building; the response is canned and the request recorded.
    api = ApiClient()
    requests: list[tuple[str, str, dict[str, str]]] = []

    def call_api(method: str, url: str, header_params: Any = None, **kw: Any) -> Response:
        requests.append((method, url, dict(header_params or {})))
        return Response()

    api.call_api = call_api
    meta = Kube(api).get_metadata("runshards", "ns", "s")
    assert meta == {"uid": "u-1", "annotations": {"a": "b"}}
    ((method, url, headers),) = requests
    assert method == "GET"
    assert url.endswith("/apis/oxygen.dev/v1alpha1/namespaces/ns/runshards/s")
    assert headers["Accept"] == METADATA_ONLY
