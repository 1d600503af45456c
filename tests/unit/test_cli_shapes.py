"""The CLI's pure parts: shapes, tables, progress, paging, argument parsing, error mapping."""

from __future__ import annotations

import datetime as dt
import io
import json
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import MaxRetryError, NewConnectionError

from oxygen.cli import control
from oxygen.cli.create import default_name, run_manifest
from oxygen.cli.errors import EXIT_NOT_FOUND, CliError, connection_reason, describe_api_error
from oxygen.cli.items import item_pages, shards_per_page
from oxygen.cli.kubeaccess import target_options
from oxygen.cli.main import build_parser, main
from oxygen.cli.output import JsonArrayWriter, StreamingTable, age, human_duration, render_table
from oxygen.cli.progress import progress_line
from oxygen.cli.shapes import (
    event_shape,
    grant_rows,
    item_shape,
    provider_rows,
    run_ledger_rows,
    run_shape,
    shard_items,
    sort_ledger,
    superseded_results,
)
from oxygen.kube.errors import api_error
from tests.support.contract import RUN_CONTRACT

RUN: dict[str, Any] = {
    "apiVersion": "oxygen.dev/v1alpha1",
    "kind": "Run",
    "metadata": {
        "name": "leads-email",
        "namespace": "sales",
        "uid": "0b5f-uid",
        "creationTimestamp": "2026-01-02T03:04:05Z",
    },
    "spec": {
        "table": "leads",
        "column": "email",
        "producer": {"provider": "clearbit", "http": {"url": "http://p"}},
        "retryFailed": 2,
        "creditAccount": "team-a",
    },
    "status": {
        "phase": "completed",
        "kind": "column",
        "mode": "live",
        "trigger": "user",
        "itemsTotal": 10,
        "itemsSucceeded": 7,
        "itemsFailed": 3,
        "itemsPending": 0,
        "itemsSkipped": 0,
        "creditsUsed": "1.75",
        "creditsReserved": "0.25",
        "startedAt": "2026-01-02T03:04:06Z",
        "finishedAt": "2026-01-02T03:05:00Z",
        "webUrl": "http://web/runs/sales/leads-email",
        "providers": [
            {
                "provider": "clearbit",
                "itemsSucceeded": 7,
                "itemsFailed": 3,
                "creditsUsed": "1.75",
                "attempts": 4,
                "latencySecondsSum": 1.0,
            },
            {"provider": "idle", "attempts": 0},
        ],
        "ledger": [
            {"type": "reserved", "amount": "2.5", "at": "2026-01-02T03:04:06Z", "round": 0},
            {"type": "captured", "amount": "1.75", "at": "2026-01-02T03:05:00Z", "round": 0},
        ],
    },
}


def shard(
    round_: int, index: int, items: list[dict[str, Any]], results: list[dict[str, Any]]
) -> dict[str, Any]:
    return {
        "metadata": {"name": f"leads-email-r{round_}-{index:04d}"},
        "spec": {"round": round_, "index": index, "producer": {"provider": "clearbit"}, "items": items},
        "status": {"items": results},
    }


def test_run_shape_has_the_contract_fields_first_with_exact_values() -> None:
    shape = run_shape(RUN)
    assert list(shape)[: len(RUN_CONTRACT)] == list(RUN_CONTRACT)
    assert {k: shape[k] for k in RUN_CONTRACT} == {
        "id": "0b5f-uid",
        "kind": "column",
        "status": "completed",
        "mode": "live",
        "trigger": "user",
        "items_total": 10,
        "items_succeeded": 7,
        "items_failed": 3,
        "items_pending": 0,
        "credits_used": "1.75",
        "credits_reserved": "0.25",
        "started_at": "2026-01-02T03:04:06Z",
        "finished_at": "2026-01-02T03:05:00Z",
        "web_url": "http://web/runs/sales/leads-email",
    }
    assert (shape["name"], shape["namespace"], shape["table"], shape["column"], shape["provider"]) == (
        "leads-email",
        "sales",
        "leads",
        "email",
        "clearbit",
    )
    assert shape["retry_failed"] == 2


def test_run_shape_of_a_fresh_run_falls_back_to_the_spec() -> None:
    fresh = {
        "metadata": {"name": "x", "uid": "u"},
        "spec": {"kind": "workflow", "mode": "dry_run", "trigger": "schedule", "producer": {"provider": "p"}},
    }
    shape = run_shape(fresh)
    assert (shape["status"], shape["kind"], shape["mode"], shape["trigger"]) == (
        "queued",
        "workflow",
        "dry_run",
        "schedule",
    )
    assert (shape["credits_used"], shape["credits_reserved"], shape["items_total"]) == ("0", "0", 0)
    assert shape["started_at"] is None
    assert shape["web_url"] is None


def test_items_join_inputs_and_skip_superseded_results() -> None:
    first = shard(
        0,
        0,
        [
            {"id": "0", "rowId": "a", "inputs": {"x": 0}},
            {"id": "1", "rowId": "b", "inputs": {"x": 1}},
            {"id": "2", "rowId": "c", "inputs": {"x": 2}},
        ],
        [
            {"id": "0", "rowId": "a", "status": "succeeded", "attemptCount": 1, "outputs": {"y": 0}},
            {
                "id": "1",
                "rowId": "b",
                "status": "failed",
                "attemptCount": 1,
                "error": "400",
                "supersededBy": "leads-email-r1-0000",
            },
        ],
    )
    items = list(shard_items(first))
    assert [i["id"] for i in items] == ["0", "2"], "superseded item 1 lives in round 1"
    assert items[0] == {
        "id": "0",
        "row_id": "a",
        "status": "succeeded",
        "attempt_count": 1,
        "inputs": {"x": 0},
        "outputs": {"y": 0},
        "error": None,
        "credits_used": "0",
        "error_class": None,
        "started_at": None,
        "finished_at": None,
        "latency_seconds": None,
        "shard": "leads-email-r0-0000",
        "provider": "clearbit",
    }
    # No result yet: pending, attempts as planned.
    assert (items[1]["status"], items[1]["attempt_count"], items[1]["outputs"]) == ("pending", 0, None)
    assert [i["id"] for i in shard_items(first, "pending")] == ["2"]
    assert list(shard_items(first, "failed")) == []
    history = list(superseded_results(first, "b"))
    assert history == [
        {
            "round": 0,
            "shard": "leads-email-r0-0000",
            "status": "failed",
            "attempt_count": 1,
            "error": "400",
            "superseded_by": "leads-email-r1-0000",
            "finished_at": None,
        }
    ]


def test_retried_item_counts_attempts_from_earlier_rounds() -> None:
    item = item_shape({"id": "1", "rowId": "b", "inputs": {}, "attemptCount": 1}, None)
    assert item["attempt_count"] == 1
    assert item["status"] == "pending"
    done = item_shape(
        {"id": "1", "inputs": {}, "attemptCount": 1}, {"status": "succeeded", "attemptCount": 2}
    )
    assert done["attempt_count"] == 2
    assert done["row_id"] is None


def test_provider_rows_mean_latency() -> None:
    assert provider_rows(RUN) == [
        {
            "provider": "clearbit",
            "items_succeeded": 7,
            "items_failed": 3,
            "credits_used": "1.75",
            "attempts": 4,
            "mean_latency_seconds": 0.25,
        },
        {
            "provider": "idle",
            "items_succeeded": 0,
            "items_failed": 0,
            "credits_used": "0",
            "attempts": 0,
            "mean_latency_seconds": None,
        },
    ]


def test_event_shape_core_v1_and_events_v1_style() -> None:
    classic = {
        "metadata": {"name": "e1", "namespace": "sales"},
        "involvedObject": {"kind": "Run", "name": "leads-email", "namespace": "sales"},
        "type": "Warning",
        "reason": "Completed",
        "message": "run completed",
        "firstTimestamp": "2026-01-02T03:04:05Z",
        "lastTimestamp": "2026-01-02T03:05:05Z",
        "count": 2,
        "source": {"component": "oxygen-operator"},
    }
    assert event_shape(classic) == {
        "type": "Warning",
        "reason": "Completed",
        "message": "run completed",
        "run": "leads-email",
        "namespace": "sales",
        "first_seen": "2026-01-02T03:04:05Z",
        "last_seen": "2026-01-02T03:05:05Z",
        "count": 2,
        "source": "oxygen-operator",
    }
    series = {
        "involvedObject": {"name": "r"},
        "metadata": {"namespace": "n"},
        "eventTime": "2026-01-02T03:04:05.000000Z",
        "series": {"count": 4, "lastObservedTime": "2026-01-02T03:09:05.000000Z"},
    }
    shaped = event_shape(series)
    assert (shaped["first_seen"], shaped["last_seen"], shaped["count"]) == (
        "2026-01-02T03:04:05.000000Z",
        "2026-01-02T03:09:05.000000Z",
        4,
    )


def test_ledger_rows_from_grants_and_run_entries() -> None:
    account = {
        "metadata": {"name": "team-a", "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": {"grants": [{"id": "g1", "amount": "100", "reason": "plan"}]},
    }
    rows = sort_ledger([*run_ledger_rows(RUN), *grant_rows(account)])
    assert [(r["account"], r["run"], r["type"], r["amount"], r["at"], r["reason"]) for r in rows] == [
        ("team-a", None, "granted", "100", "2026-01-01T00:00:00Z", "plan"),
        ("team-a", "leads-email", "reserved", "2.5", "2026-01-02T03:04:06Z", "round 0"),
        ("team-a", "leads-email", "captured", "1.75", "2026-01-02T03:05:00Z", "round 0"),
    ]
    no_account = {
        "metadata": {"name": "r"},
        "spec": {},
        "status": {"ledger": [{"type": "released", "amount": "1"}]},
    }
    [row] = run_ledger_rows(no_account)
    assert row["account"] == "default"
    assert row["at"] is None
    assert row["reason"] is None


def test_tables_and_ages_look_like_kubectl() -> None:
    text = render_table(("NAME", "PHASE", "CREDITS"), [("a", "running", "0.5"), ("longer-name", None, True)])
    assert text == (
        "NAME          PHASE     CREDITS\na             running   0.5\nlonger-name   <none>    true\n"
    )
    assert [human_duration(s) for s in (5, 119, 200, 600, 4000, 3 * 3600 + 60, 30 * 3600, 80 * 3600)] == [
        "5s",
        "119s",
        "3m20s",
        "10m",
        "66m",
        "3h1m",
        "30h",
        "3d8h",
    ]
    now = dt.datetime(2026, 1, 2, 3, 5, 5, tzinfo=dt.UTC)
    assert age("2026-01-02T03:04:05Z", now) == "60s"
    assert age(None, now) == "<unknown>"
    out = io.StringIO()
    table = StreamingTable(("ID", "STATUS"), out)
    table.write([])
    assert table.empty
    table.write([("1", "succeeded")])
    table.write([("22222", "failed")])
    assert out.getvalue() == "ID   STATUS\n1    succeeded\n22222   failed\n"


def test_json_array_writer_streams_valid_json() -> None:
    out = io.StringIO()
    with JsonArrayWriter(out) as writer:
        for i in range(3):
            writer.write({"id": str(i)})
    assert json.loads(out.getvalue()) == [{"id": "0"}, {"id": "1"}, {"id": "2"}]
    assert len(out.getvalue().splitlines()) == 5, "one element per line"
    empty = io.StringIO()
    with JsonArrayWriter(empty):
        pass
    assert json.loads(empty.getvalue()) == []
    broken = io.StringIO()
    with pytest.raises(RuntimeError), JsonArrayWriter(broken) as writer:
        writer.write({"id": "0"})
        raise RuntimeError("connection lost")
    with pytest.raises(json.JSONDecodeError):
        json.loads(broken.getvalue())


def test_progress_line() -> None:
    shape = run_shape(RUN)
    line = progress_line(shape, 12.7)
    assert line.startswith("leads-email [" + "#" * 30 + "] 100.0% 10/10")
    assert "succeeded 7 | failed 3 | credits 1.75 | completed 12s" in line
    half = run_shape(
        {**RUN, "status": {**RUN["status"], "phase": "running", "itemsSucceeded": 4, "itemsFailed": 1}}
    )
    assert "[" + "#" * 15 + "-" * 15 + "]  50.0% 5/10" in progress_line(half, 0)


class FakeShards:
    """Pages of shards, recording how many pages were requested."""

    def __init__(self, shards: list[dict[str, Any]]) -> None:
        self.shards = shards
        self.requested = 0

    def shard_pages(self, run: dict[str, Any], page: int) -> Iterator[list[dict[str, Any]]]:
        for start in range(0, len(self.shards), page):
            self.requested += 1
            yield self.shards[start : start + page]


def many_shards(count: int, per_shard: int) -> list[dict[str, Any]]:
    out = []
    for s in range(count):
        ids = [str(s * per_shard + i) for i in range(per_shard)]
        out.append(
            shard(
                0,
                s,
                [{"id": i, "rowId": f"row-{i}", "inputs": {}} for i in ids],
                [{"id": i, "status": "failed" if int(i) % 10 == 0 else "succeeded"} for i in ids],
            )
        )
    return out


def test_item_pages_stop_requesting_once_the_limit_is_met() -> None:
    fake = FakeShards(many_shards(10, 100))
    pages = item_pages(fake, RUN, limit=150, page=1)  # type: ignore[arg-type]
    first = next(pages)
    assert len(first) == 100, "lazy: one page fetched per page consumed"
    assert fake.requested == 1, "lazy: one page fetched per page consumed"
    rest = [item for page in pages for item in page]
    assert len(rest) == 50
    assert fake.requested == 2
    fake = FakeShards(many_shards(10, 100))
    failed = [i for page in item_pages(fake, RUN, status="failed", page=3) for i in page]  # type: ignore[arg-type]
    assert len(failed) == 100
    assert fake.requested == 4
    assert all(i["status"] == "failed" for i in failed)


def test_pages_are_sized_in_items_not_shards() -> None:
    def run(items: int, shards: int) -> dict[str, Any]:
        return {"status": {"itemsTotal": items, "shards": {"total": shards}}}

    assert shards_per_page(run(10_000, 10)) == 2
    assert shards_per_page(run(100_000, 10)) == 1
    assert shards_per_page(run(10_000, 1000)) == 50
    assert shards_per_page(run(250, 5)) == 40
    assert shards_per_page({"status": {}}) == 1


def test_global_flags_work_before_and_after_the_command_words() -> None:
    parser = build_parser()
    for argv in (
        ["-n", "sales", "--json", "runs", "get", "x"],
        ["runs", "-n", "sales", "get", "x", "--json"],
        ["runs", "get", "--json", "x", "--namespace", "sales"],
    ):
        options = target_options(parser.parse_args(argv))
        assert (options.namespace, options.json, options.all_namespaces) == ("sales", True, False), argv
    defaults = target_options(parser.parse_args(["runs", "list"]))
    assert (defaults.namespace, defaults.kubeconfig, defaults.json, defaults.connect_timeout) == (
        None,
        None,
        False,
        5.0,
    )
    assert target_options(parser.parse_args(["runs", "list", "-A"])).all_namespaces


@pytest.mark.parametrize(
    "argv",
    [
        ["runs"],
        ["runs", "get"],
        ["runs", "list", "--kind", "spreadsheet"],
        ["table-runs", "items", "r", "--limit", "0"],
        ["table-runs", "items", "r", "--status", "exploded"],
        ["table-runs", "create", "--url", "http://x", "--builtin", "echo"],
        ["cells", "inspect", "t", "r"],
    ],
)
def test_usage_errors_exit_2(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2


def test_missing_kubeconfig_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["runs", "list", "--kubeconfig", "/nonexistent/kubeconfig"]) == 1
    assert capsys.readouterr().err == "error: kubeconfig /nonexistent/kubeconfig: no such file\n"


def test_api_errors_map_to_one_line_and_exit_codes() -> None:
    not_found = ApiException(status=404, reason="Not Found")
    not_found.body = json.dumps({"kind": "Status", "message": 'runs.oxygen.dev "x" not found'})
    mapped = describe_api_error(api_error(not_found))
    assert (mapped.message, mapped.code) == ('runs.oxygen.dev "x" not found', EXIT_NOT_FOUND)
    no_crd = ApiException(status=404, reason="Not Found")
    no_crd.body = json.dumps({"message": "the server could not find the requested resource"})
    assert "CRDs installed" in describe_api_error(api_error(no_crd)).message
    forbidden = ApiException(status=403, reason="Forbidden")
    forbidden.body = b'{"message": "runs.oxygen.dev is forbidden: User \\"u\\" cannot list"}'
    assert describe_api_error(api_error(forbidden)).message.startswith(
        "forbidden: runs.oxygen.dev is forbidden"
    )
    refused = MaxRetryError(
        None,  # type: ignore[arg-type]
        "/apis",
        NewConnectionError(None, "Failed to establish a new connection: [Errno 111] Connection refused"),  # type: ignore[arg-type]
    )
    assert connection_reason(refused) == "connection refused"


def test_control_changes_and_their_completion() -> None:
    running = {"metadata": {"name": "r"}, "spec": {"retryFailed": 2}, "status": {"phase": "running"}}
    assert control.CHANGES["retry-failed"].spec(running) == {"retryFailed": 3}
    assert control.CHANGES["pause"].spec(running) == {"paused": True}
    assert not control.CHANGES["pause"].took_effect(running, running)
    paused = {**running, "status": {"phase": "paused"}}
    assert control.CHANGES["pause"].took_effect(paused, running)
    assert control.CHANGES["resume"].took_effect(running, paused)
    patched = {**running, "spec": {"retryFailed": 3}}
    waiting = {**running, "status": {"phase": "completed", "observedRetryFailed": 2}}
    assert not control.CHANGES["retry-failed"].took_effect(waiting, patched)
    done = {**running, "status": {"phase": "running", "observedRetryFailed": 3}}
    assert control.CHANGES["retry-failed"].took_effect(done, patched)
    canceled = {**running, "status": {"phase": "canceled", "observedRetryFailed": 2}}
    with pytest.raises(CliError, match="retryFailed will not be applied"):
        control.CHANGES["retry-failed"].took_effect(canceled, patched)
    assert control.CHANGES["retry-failed"].refuse(canceled) is not None
    assert control.CHANGES["pause"].refuse({**running, "spec": {"cancel": True}}) == 'run "r" is canceled'


def test_flag_created_run_manifest() -> None:
    args = build_parser().parse_args(
        ["table-runs", "create", "--table", "Leads Q1", "--column", "email", "--rows", "rows.jsonl",
         "--provider", "clearbit", "--url", "http://p/items", "--cost-per-item", "0.25", "--batch-size", "50",
         "--mode", "smoke_test"]
    )  # fmt: skip
    name = default_name(args.table, args.column)
    assert name.startswith("leads-q1-email-")
    assert len(name) <= 46
    manifest = run_manifest(args, "leads", "sales", "rows.jsonl")
    assert manifest == {
        "apiVersion": "oxygen.dev/v1alpha1",
        "kind": "Run",
        "metadata": {"name": "leads", "namespace": "sales"},
        "spec": {
            "kind": "column",
            "trigger": "user",
            "table": "Leads Q1",
            "column": "email",
            "itemsFrom": {"configMapKeyRef": {"name": "leads", "key": "rows.jsonl"}},
            "producer": {"provider": "clearbit", "http": {"url": "http://p/items"}, "costPerItem": "0.25"},
            "batchSize": 50,
            "mode": "smoke_test",
        },
    }
