"""Metrics derived from observed objects: deltas, baselines, retention, bounded labels."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from oxygen.metrics import OxygenMetrics
from oxygen.metrics.latency import per_bucket
from oxygen.status.shard import latency_buckets

START = 1_700_000_000.0  # the fake process start (epoch seconds)


def stamp(epoch: float) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Clock:
    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def metrics(retention: float = 300.0) -> tuple[OxygenMetrics, Clock]:
    clock = Clock()
    return OxygenMetrics(clock=clock, process_start=START, retention_seconds=retention), clock


def value(m: OxygenMetrics, name: str, **labels: str) -> float:
    total = 0.0
    for sample_name, sample_labels, v in m.series():
        if sample_name == name and all(sample_labels.get(k) == x for k, x in labels.items()):
            total += v
    return total


def item(i: int, status: str, attempts: int = 1, latency: float | None = 0.2, **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"id": str(i), "status": status, "attemptCount": attempts}
    if latency is not None and status in ("succeeded", "failed"):
        out["latencySeconds"] = latency
    if status == "failed":
        out["errorClass"] = extra.pop("error_class", "http_5xx")
    out.update(extra)
    return out


def shard(
    items: list[dict[str, Any]],
    *,
    uid: str = "shard-uid-1",
    created: float = START + 10,
    provider: str = "clearbit",
    carried: dict[str, int] | None = None,
) -> dict[str, Any]:
    from oxygen.api.runshard import ItemResult
    from oxygen.status.shard import summarize

    summary = summarize([ItemResult.model_validate(i) for i in items]).wire()
    carried = carried or {}
    return {
        "metadata": {
            "uid": uid,
            "name": f"run-{uid}",
            "namespace": "team-a",
            "creationTimestamp": stamp(created),
        },
        "spec": {
            "runUid": "run-uid-1",
            "runName": "run",
            "round": 0,
            "index": 0,
            "producer": {"provider": provider},
            "items": [{"id": i["id"], "attemptCount": carried.get(i["id"], 0)} for i in items],
        },
        "status": {"items": items, "summary": summary},
    }


def run_body(
    phase: str,
    *,
    uid: str = "run-uid-1",
    name: str = "run",
    created: float = START + 5,
    counts: dict[str, int] | None = None,
    **status: Any,
) -> dict[str, Any]:
    counts = counts or {}
    return {
        "metadata": {
            "uid": uid,
            "name": name,
            "namespace": "team-a",
            "creationTimestamp": stamp(created),
        },
        "spec": {
            "kind": "column",
            "mode": "live",
            "creditAccount": "acme",
            "producer": {"provider": "clearbit"},
        },
        "status": {
            "phase": phase,
            **{f"items{k.capitalize()}": v for k, v in counts.items()},
            **status,
        },
    }


# -- shards ---------------------------------------------------------------------------------------


def test_shard_deltas_count_each_finished_item_once() -> None:
    m, _ = metrics()
    m.observe_shard(shard([item(1, "running"), item(2, "pending", attempts=0)]))
    assert value(m, "oxygen_items_finished_total") == 0
    m.observe_shard(shard([item(1, "succeeded"), item(2, "failed", attempts=3, error_class="http_4xx")]))
    m.observe_shard(shard([item(1, "succeeded"), item(2, "failed", attempts=3, error_class="http_4xx")]))
    assert value(m, "oxygen_items_finished_total", status="succeeded", provider="clearbit") == 1
    assert value(m, "oxygen_items_finished_total", status="failed", error_class="http_4xx") == 1
    assert value(m, "oxygen_item_attempts_total", provider="clearbit") == 4
    assert value(m, "oxygen_item_retries_total", provider="clearbit") == 2
    assert value(m, "oxygen_item_latency_seconds_count", provider="clearbit") == 2
    assert value(m, "oxygen_item_latency_seconds_sum", provider="clearbit") == pytest.approx(0.4)
    assert value(m, "oxygen_item_latency_seconds_bucket", provider="clearbit", le="0.1") == 0
    assert value(m, "oxygen_item_latency_seconds_bucket", provider="clearbit", le="0.25") == 2
    assert value(m, "oxygen_item_latency_seconds_bucket", provider="clearbit", le="+Inf") == 2


def test_shard_created_before_the_process_sets_a_baseline() -> None:
    m, _ = metrics()
    old = [item(1, "succeeded"), item(2, "failed")]
    m.observe_shard(shard(old, created=START - 60))
    assert value(m, "oxygen_items_finished_total") == 0
    assert value(m, "oxygen_item_attempts_total") == 0
    m.observe_shard(shard([*old, item(3, "failed")], created=START - 60))
    assert value(m, "oxygen_items_finished_total", status="failed") == 1
    assert value(m, "oxygen_items_finished_total") == 1


def test_shard_created_after_start_counts_from_zero_even_if_first_seen_finished() -> None:
    m, _ = metrics()
    m.observe_shard(shard([item(1, "succeeded"), item(2, "skipped", attempts=0)], created=START + 1))
    assert value(m, "oxygen_items_finished_total", status="succeeded") == 1
    assert value(m, "oxygen_items_finished_total", status="skipped") == 1


def test_negative_deltas_from_superseded_items_are_ignored_and_retries_not_double_counted() -> None:
    m, _ = metrics()
    first = [item(1, "failed", attempts=3), item(2, "succeeded")]
    m.observe_shard(shard(first, uid="a"))
    assert value(m, "oxygen_item_attempts_total") == 4
    # A retry round supersedes item 1: the old shard's figures go down (ignored) ...
    superseded = [item(1, "failed", attempts=3, supersededBy="b"), item(2, "succeeded")]
    m.observe_shard(shard(superseded, uid="a"))
    assert value(m, "oxygen_items_finished_total", status="failed") == 1
    # ... and the new shard carries item 1's 3 attempts: only its own (4th) attempt is new.
    m.observe_shard(shard([item(1, "pending", attempts=3)], uid="b", carried={"1": 3}))
    m.observe_shard(shard([item(1, "succeeded", attempts=4)], uid="b", carried={"1": 3}))
    assert value(m, "oxygen_item_attempts_total") == 5
    assert value(m, "oxygen_item_retries_total") == 3
    assert value(m, "oxygen_items_finished_total", status="succeeded") == 2
    assert value(m, "oxygen_items_finished_total", status="failed") == 1


def test_forgotten_shard_is_not_counted_again() -> None:
    m, _ = metrics()
    body = shard([item(1, "failed")])
    m.observe_shard(body)
    m.forget_shard("shard-uid-1")
    m.observe_shard(body)
    m.forget_run("team-a", "run", "run-uid-1")
    m.observe_shard(shard([item(1, "failed")], uid="other"))
    assert value(m, "oxygen_items_finished_total", status="failed") == 1


def test_latency_histogram_stays_cumulative_when_buckets_shrink() -> None:
    assert per_bucket(latency_buckets([0.02, 0.3, 70])) == {
        "0.01": 0, "0.025": 1, "0.05": 0, "0.1": 0, "0.25": 0, "0.5": 1, "1": 0,
        "2.5": 0, "5": 0, "10": 0, "30": 0, "60": 0, "+Inf": 1,
    }  # fmt: skip
    m, _ = metrics()
    m.observe_shard(shard([item(1, "failed", latency=0.5), item(2, "running")]))
    # item 1 superseded (its 0.5 s leaves the buckets) while item 2 finishes fast
    m.observe_shard(
        shard([item(1, "failed", latency=0.5, supersededBy="x"), item(2, "succeeded", latency=0.02)])
    )
    buckets = [value(m, "oxygen_item_latency_seconds_bucket", le=le) for le in ("0.025", "0.5", "10", "+Inf")]
    assert buckets == sorted(buckets)
    assert buckets[-1] == 2


def test_error_classes_are_bounded() -> None:
    m, _ = metrics()
    items = [item(i, "failed", error_class=f"class-{i}") for i in range(60)]
    m.observe_shard(shard(items))
    classes = {
        labels["error_class"] for name, labels, _ in m.series() if name == "oxygen_items_finished_total"
    }
    assert len(classes) <= 33
    assert "other" in classes
    assert value(m, "oxygen_items_finished_total", status="failed") == 60


# -- runs -----------------------------------------------------------------------------------------


def test_run_phase_gauge_finished_counter_and_duration() -> None:
    m, clock = metrics()
    m.observe_run(run_body("queued"))
    m.observe_run(run_body("running", counts={"pending": 3}))
    assert value(m, "oxygen_runs", phase="running", namespace="team-a") == 1
    clock.now += 42
    finished = run_body(
        "completed",
        counts={"succeeded": 2, "failed": 1},
        startedAt=stamp(START + 5),
        finishedAt=stamp(START + 47),
    )
    m.observe_run(finished)
    m.observe_run(finished)
    assert value(m, "oxygen_runs", phase="running") == 0
    assert value(m, "oxygen_runs", phase="completed") == 1
    assert value(m, "oxygen_runs_finished_total", outcome="completed", kind="column", mode="live") == 1
    assert value(m, "oxygen_run_duration_seconds_count") == 1
    assert value(m, "oxygen_run_duration_seconds_sum") == 42
    assert value(m, "oxygen_run_items", run="run", status="failed") == 1


def test_pre_existing_finished_run_is_a_baseline() -> None:
    m, _ = metrics()
    m.observe_run(run_body("succeeded", created=START - 600, creditsUsed="5", finishedAt=stamp(START - 500)))
    assert value(m, "oxygen_runs_finished_total") == 0
    assert value(m, "oxygen_credits_captured_total") == 0
    assert value(m, "oxygen_runs", phase="succeeded") == 1
    # finished long before the retention window: no per-run series after a restart
    assert value(m, "oxygen_run_phase") == 0
    # a pre-existing run that finishes while we watch is counted
    m.observe_run(run_body("running", uid="u2", name="r2", created=START - 60))
    m.observe_run(run_body("failed", uid="u2", name="r2", created=START - 60))
    assert value(m, "oxygen_runs_finished_total", outcome="failed") == 1


def test_new_run_first_seen_finished_is_counted() -> None:
    m, _ = metrics()
    m.observe_run(run_body("failed", created=START + 3))
    assert value(m, "oxygen_runs_finished_total", outcome="failed") == 1


def test_credits_captured_released_and_reserved_per_account() -> None:
    m, _ = metrics()
    m.observe_run(run_body("running", creditsReserved="10", creditsUsed="0"))
    assert value(m, "oxygen_credits_reserved", account="acme") == 10
    m.observe_run(run_body("running", creditsReserved="8", creditsUsed="2.5"))
    m.observe_run(run_body("running", creditsReserved="8", creditsUsed="2.5", creditsReleased="1"))
    m.observe_run(run_body("succeeded", creditsReserved="0", creditsUsed="3", creditsReleased="1"))
    assert value(m, "oxygen_credits_captured_total", account="acme", provider="clearbit") == 3
    assert value(m, "oxygen_credits_released_total", account="acme", provider="clearbit") == 1
    assert value(m, "oxygen_credits_reserved", account="acme") == 0


def test_credit_account_gauges() -> None:
    m, _ = metrics()
    body = {
        "metadata": {"name": "acme", "namespace": "team-a"},
        "status": {"granted": "100", "available": "7.5"},
    }
    m.observe_credit_account(body)
    assert value(m, "oxygen_credit_account_available", account="acme") == 7.5
    assert value(m, "oxygen_credit_account_granted", account="acme") == 100
    m.forget_credit_account("team-a", "acme")
    assert not [s for s in m.series() if s[0].startswith("oxygen_credit_account")]


def test_per_run_gauges_removed_after_retention() -> None:
    m, clock = metrics(retention=300)
    m.observe_run(run_body("running", counts={"running": 2}))
    assert value(m, "oxygen_run_items", run="run", status="running") == 2
    clock.now += 10
    m.observe_run(run_body("succeeded", counts={"succeeded": 2}))
    clock.now += 299
    assert value(m, "oxygen_run_phase", run="run", phase="succeeded") == 1
    clock.now += 1
    assert not [s for s in m.series() if s[1].get("run") == "run"]
    # the run still exists: the phase count keeps it
    assert value(m, "oxygen_runs", phase="succeeded") == 1
    m.forget_run("team-a", "run", "run-uid-1")
    assert value(m, "oxygen_runs", phase="succeeded") == 0


def test_recreated_run_of_the_same_name_has_one_series() -> None:
    m, _ = metrics()
    m.observe_run(run_body("completed", uid="old"))
    m.observe_run(run_body("running", uid="new"))
    phases = [labels["phase"] for name, labels, _ in m.series() if name == "oxygen_run_phase"]
    assert phases == ["running"]


def test_stuck_run_progress_timestamp() -> None:
    m, clock = metrics()
    m.observe_run(run_body("running", counts={"pending": 5}))
    assert value(m, "oxygen_run_last_progress_timestamp_seconds", run="run") == START
    clock.now += 100
    m.observe_run(run_body("running", counts={"pending": 5}))
    assert value(m, "oxygen_run_last_progress_timestamp_seconds", run="run") == START
    m.observe_run(run_body("running", counts={"pending": 4, "succeeded": 1}))
    assert value(m, "oxygen_run_last_progress_timestamp_seconds", run="run") == START + 100


def test_hundred_finished_runs_do_not_grow_series_beyond_retention() -> None:
    m, clock = metrics(retention=300)

    def one_run(i: int) -> None:
        uid, name = f"uid-{i}", f"run-{i}"
        created = clock.now
        m.observe_run(run_body("running", uid=uid, name=name, created=created, counts={"pending": 10}))
        body = shard([item(j, "failed" if j % 3 == 0 else "succeeded") for j in range(10)], uid=f"s-{i}")
        body["spec"]["runUid"] = uid
        m.observe_shard(body)
        m.observe_run(run_body("completed", uid=uid, name=name, created=created, counts={"failed": 4}))
        clock.now += 30  # one run finishes every 30 s: 10 inside a 300 s window

    counts = []
    for i in range(100):
        one_run(i)
        counts.append(sum(1 for _ in m.series()))
    # a steady state: what grows with runs is bounded by the runs inside the retention window
    assert max(counts[20:]) == min(counts[20:]), counts
    per_run = {labels.get("run") for _, labels, _ in m.series() if "run" in labels}
    assert 0 < len(per_run) <= 10
    assert value(m, "oxygen_runs", phase="completed") == 100
    assert value(m, "oxygen_items_finished_total", status="failed") == 400


def test_no_item_row_or_object_ids_in_labels() -> None:
    m, _ = metrics()
    m.observe_run(run_body("running", counts={"running": 1}))
    m.observe_shard(shard([item(1234567, "failed", rowId="row-secret-42"), item(7654321, "succeeded")]))
    m.observe_run(run_body("completed", counts={"failed": 1, "succeeded": 1}))
    text = m.exposition().decode()
    for forbidden in ("1234567", "7654321", "row-secret-42", "shard-uid-1", "run-uid-1", "run-shard-uid-1"):
        assert forbidden not in text
    allowed = {
        "namespace", "kind", "mode", "provider", "phase", "status", "error_class", "account", "outcome",
        "run", "le", "verb", "code", "resource", "reason",
    }  # fmt: skip
    for family in text_string_to_metric_families(text):
        if family.name.startswith("oxygen_"):
            for sample in family.samples:
                assert set(sample.labels) <= allowed, sample


def test_reconcile_timer_counts_errors() -> None:
    m, _ = metrics()
    with m.reconcile_timer():
        pass
    with pytest.raises(RuntimeError), m.reconcile_timer():
        raise RuntimeError("boom")
    assert value(m, "oxygen_reconcile_duration_seconds_count") == 2
    assert value(m, "oxygen_reconcile_errors_total") == 1
    m.set_queue_depth(3)
    assert value(m, "oxygen_reconcile_queue_depth") == 3


def test_api_client_instrumentation_counts_verb_code_and_exceptions() -> None:
    class Response:
        def __init__(self, status: int) -> None:
            self.status = status

    class Rest:
        def request(self, method: str, url: str, **_: Any) -> Response:
            if "down" in url:
                raise ConnectionError("refused")
            return Response(404 if "missing" in url else 200)

    class Api:
        rest_client = Rest()

    m, _ = metrics()
    api = m.instrument_api_client(Api())
    m.instrument_api_client(api)  # idempotent
    api.rest_client.request("GET", "https://x/ok")
    api.rest_client.request("patch", "https://x/ok")
    api.rest_client.request("GET", "https://x/missing")
    with pytest.raises(ConnectionError):
        api.rest_client.request("GET", "https://x/down")
    assert value(m, "oxygen_kube_api_requests_total", verb="GET", code="200") == 1
    assert value(m, "oxygen_kube_api_requests_total", verb="PATCH", code="200") == 1
    assert value(m, "oxygen_kube_api_requests_total", verb="GET", code="404") == 1
    assert value(m, "oxygen_kube_api_requests_total", verb="GET", code="error") == 1
    assert value(m, "oxygen_kube_api_request_duration_seconds_count") == 4


def test_a_peering_standby_baselines_what_was_created_before_it_took_over() -> None:
    clock = Clock()
    m = OxygenMetrics(clock=clock, retention_seconds=300)  # reference: the first observation
    clock.now += 1000  # standing by: kopf's watches are paused, nothing is observed
    m.observe_shard(shard([item(1, "failed")], uid="old", created=START + 500))
    assert value(m, "oxygen_items_finished_total") == 0
    m.observe_shard(shard([item(1, "failed")], uid="new", created=START + 1001))
    assert value(m, "oxygen_items_finished_total", status="failed") == 1


def provider_shard(uid: str, calls: int, throttled: int, running: int) -> dict[str, Any]:
    body = shard([item(1, "running")], uid=uid)
    body["status"]["summary"].update({"calls": calls, "throttledCalls": throttled, "running": running})
    return body


def test_provider_requests_throttled_and_in_flight_over_its_shards() -> None:
    m, _ = metrics()
    m.observe_shard(provider_shard("a", calls=10, throttled=1, running=4))
    m.observe_shard(provider_shard("b", calls=5, throttled=0, running=3))
    m.observe_shard(provider_shard("a", calls=12, throttled=2, running=2))
    assert value(m, "oxygen_provider_requests_total", namespace="team-a", provider="clearbit") == 17
    assert value(m, "oxygen_provider_throttled_total", provider="clearbit") == 2
    assert value(m, "oxygen_provider_in_flight", provider="clearbit") == 5
    m.forget_shard("b")
    assert value(m, "oxygen_provider_in_flight", provider="clearbit") == 2
    # Bounded labels: no run, shard or item id.
    labels = {k for name, ls, _ in m.series() if name.startswith("oxygen_provider_") for k in ls}
    assert labels == {"namespace", "provider"}
