"""The `oxygen` command line end to end: a subprocess per command against the real control plane.

Every `--json` answer is checked field by field against the resources it was derived from, so the
shapes of DESIGN.md are held to what the API server actually stores.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from oxygen.api.common import GROUP, VERSION
from oxygen.devcluster import LocalCluster
from tests.support.contract import ITEM_CONTRACT, RUN_CONTRACT
from tests.support.provider import Provider, Reply, bad_request, echo, with_latency
from tests.support.runs import Runs

pytestmark = pytest.mark.cluster

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent


# Runs the CLI in a child and reports its peak RSS on stderr, for the report's figures. VmHWM is the
# high-water mark of this process image (ru_maxrss would include the forking parent's pages).
RSS_WRAPPER = (
    "import re, sys\n"
    "from oxygen.cli.main import main\n"
    "code = main(sys.argv[1:])\n"
    "sys.stdout.flush()\n"
    "hwm = re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1)\n"
    "print(f'peak_rss_kib={hwm}', file=sys.stderr)\n"
    "raise SystemExit(code)\n"
)

UNPAGED_LIST = (
    "import re, sys\n"
    "from kubernetes import client, config\n"
    "def hwm(): return int(re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1))\n"
    "api = config.new_client_from_config(config_file=sys.argv[1])\n"
    "before = hwm()\n"
    "shards = client.CustomObjectsApi(api).list_namespaced_custom_object("
    "'oxygen.dev', 'v1alpha1', sys.argv[2], 'runshards')\n"
    "print(f\"{len(shards['items'])} shards at once: peak RSS {hwm() / 1024:.1f} MiB, "
    '{(hwm() - before) / 1024:.1f} MiB above the process before the list")\n'
)


class Cli:
    def __init__(self, cluster: LocalCluster, namespace: str) -> None:
        self.kubeconfig = str(cluster.kubeconfig)
        self.ns = namespace
        self.timings: dict[str, float] = {}

    def __call__(
        self, *args: str, namespaced: bool = True, timeout: float = 300
    ) -> subprocess.CompletedProcess[str]:
        flags = ["--kubeconfig", self.kubeconfig] + (["-n", self.ns] if namespaced else [])
        started = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-m", "oxygen", *args, *flags],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=REPO,
        )
        self.timings[" ".join(args[:2])] = time.monotonic() - started
        assert "Traceback" not in done.stderr, done.stderr
        return done

    def json(self, *args: str, code: int = 0, **kwargs: Any) -> Any:
        done = self(*args, "--json", **kwargs)
        assert done.returncode == code, f"exit {done.returncode}: {done.stderr}"
        return json.loads(done.stdout)


@pytest.fixture
def cli(cluster: LocalCluster, runs: Runs) -> Cli:
    return Cli(cluster, runs.ns)


def raw_run(runs: Runs, name: str) -> dict[str, Any]:
    return runs.get(name)


def assert_run_shape(shape: dict[str, Any], run: dict[str, Any]) -> None:
    """The run shape, field by field, against the stored Run."""
    status = run.get("status") or {}
    spec = run["spec"]
    assert list(shape)[: len(RUN_CONTRACT)] == list(RUN_CONTRACT)
    assert shape["id"] == run["metadata"]["uid"]
    assert shape["kind"] == status.get("kind", spec.get("kind", "column"))
    assert shape["status"] == status.get("phase", "queued")
    assert shape["mode"] == status.get("mode", spec.get("mode", "live"))
    assert shape["trigger"] == status.get("trigger", spec.get("trigger", "user"))
    for field, key in (
        ("items_total", "itemsTotal"),
        ("items_succeeded", "itemsSucceeded"),
        ("items_failed", "itemsFailed"),
        ("items_pending", "itemsPending"),
        ("items_running", "itemsRunning"),
        ("items_retrying", "itemsRetrying"),
        ("items_skipped", "itemsSkipped"),
    ):
        assert shape[field] == status.get(key, 0), field
    assert shape["credits_used"] == status.get("creditsUsed", "0")
    assert shape["credits_reserved"] == status.get("creditsReserved", "0")
    assert isinstance(shape["credits_used"], str)
    assert isinstance(shape["credits_reserved"], str)
    assert shape["started_at"] == status.get("startedAt")
    assert shape["finished_at"] == status.get("finishedAt")
    assert shape["web_url"] == status.get("webUrl")
    assert shape["name"] == run["metadata"]["name"]
    assert shape["namespace"] == run["metadata"]["namespace"]
    assert shape["table"] == spec.get("table")
    assert shape["column"] == spec.get("column")
    assert shape["provider"] == (spec.get("producer") or {}).get("provider")


def stored_items(runs: Runs, name: str) -> dict[str, tuple[dict[str, Any], dict[str, Any], str]]:
    """id → (spec item, latest result, shard name), straight from the RunShards."""
    out: dict[str, tuple[dict[str, Any], dict[str, Any], str]] = {}
    for shard in runs.shards(name):
        specs = {i["id"]: i for i in shard["spec"]["items"]}
        for result in (shard.get("status") or {}).get("items", []):
            if not result.get("supersededBy"):
                out[result["id"]] = (specs[result["id"]], result, shard["metadata"]["name"])
    return out


def assert_item_shape(item: dict[str, Any], stored: tuple[dict[str, Any], dict[str, Any], str]) -> None:
    spec_item, result, shard = stored
    assert list(item)[: len(ITEM_CONTRACT)] == list(ITEM_CONTRACT)
    assert item["id"] == spec_item["id"] == result["id"]
    assert item["row_id"] == spec_item.get("rowId")
    assert item["status"] == result["status"]
    assert item["attempt_count"] == result["attemptCount"]
    assert item["inputs"] == spec_item["inputs"]
    assert item["outputs"] == result.get("outputs")
    assert item["error"] == result.get("error")
    assert item["credits_used"] == result.get("creditsUsed", "0")
    assert item["error_class"] == result.get("errorClass")
    assert item["shard"] == shard


def bad_rows_fail() -> Any:
    """Rows whose inputs say `bad` get a 400 (a permanent failure); the others an echo."""
    ok, bad = echo(), bad_request("company is not a domain: expected something like acme.com")

    def behaviour(item_id: str, attempt: int, body: dict[str, Any]) -> Reply:
        return (bad if body["item"]["inputs"].get("bad") else ok)(item_id, attempt, body)

    return behaviour


def test_debugging_a_failed_run_as_the_docs_tell(cli: Cli, runs: Runs, tmp_path: Path) -> None:
    rows = tmp_path / "rows.jsonl"
    rows.write_text(
        "\n".join(
            json.dumps({"rowId": f"lead-{i}", "inputs": {"company": f"c{i}", "bad": i in (2, 5, 7)}})
            for i in range(10)
        )
    )
    with Provider(bad_rows_fail()) as provider:
        created = cli.json(
            "table-runs", "create", "--table", "leads", "--column", "email", "--rows", str(rows),
            "--provider", "clearbit", "--url", provider.url, "--cost-per-item", "0.25",
            "--batch-size", "4", "--parallelism", "2", "--name", "leads-email",
        )  # fmt: skip
        assert created["name"] == "leads-email"
        assert created["table"] == "leads"
        assert created["column"] == "email"
        stored = raw_run(runs, "leads-email")
        assert created["id"] == stored["metadata"]["uid"]
        assert stored["spec"]["itemsFrom"] == {
            "configMapKeyRef": {"name": "leads-email", "key": "rows.jsonl"}
        }
        assert stored["spec"]["producer"] == {
            **stored["spec"]["producer"],
            "provider": "clearbit",
            "http": {**stored["spec"]["producer"]["http"], "url": provider.url},
            "costPerItem": "0.25",
        }
        config_map = runs.core.read_namespaced_config_map("leads-email", runs.ns)
        assert config_map.data["rows.jsonl"] == rows.read_text()
        assert not config_map.metadata.owner_references

        # `runs watch --json`: a run shape per change, exit 1 because the run ends with failures.
        watched = cli("runs", "watch", "leads-email", "--json", "--interval", "0.3")
        assert watched.returncode == 1, watched.stderr
        lines = [json.loads(line) for line in watched.stdout.splitlines()]
        assert lines[-1]["status"] == "completed"
        assert len(lines) >= 2
        assert len({json.dumps(x, sort_keys=True) for x in lines}) == len(lines), "a line per change"

        # 1. runs get
        got = cli.json("runs", "get", "leads-email")
        assert_run_shape(got, raw_run(runs, "leads-email"))
        assert (got["status"], got["kind"], got["mode"], got["trigger"]) == (
            "completed",
            "column",
            "live",
            "user",
        )
        assert (got["items_total"], got["items_succeeded"], got["items_failed"], got["items_pending"]) == (
            10,
            7,
            3,
            0,
        )
        assert got["credits_used"] == "1.75"
        assert got["started_at"]
        assert got["finished_at"]
        assert got["web_url"].endswith(f"/{runs.ns}/leads-email")
        assert cli.json("table-runs", "get", got["id"]) == got, "the uid finds the same run"

        # 2. table-runs items --status failed
        failed = cli.json("table-runs", "items", "leads-email", "--status", "failed")
        stored_now = stored_items(runs, "leads-email")
        assert sorted(i["row_id"] for i in failed) == ["lead-2", "lead-5", "lead-7"]
        for item in failed:
            assert_item_shape(item, stored_now[item["id"]])
            assert item["status"] == "failed"
            assert item["attempt_count"] == 1
            assert item["outputs"] is None
            assert "company is not a domain" in item["error"]
            assert item["credits_used"] == "0"
            assert item["provider"] == "clearbit"
        everything = cli.json("table-runs", "items", "leads-email")
        assert [i["id"] for i in everything] == [str(i) for i in range(10)]
        for item in everything:
            assert_item_shape(item, stored_now[item["id"]])
        assert {i["credits_used"] for i in everything if i["status"] == "succeeded"} == {"0.25"}

        # 3. cells inspect one failed row
        cell = cli.json("cells", "inspect", "leads", "lead-5", "email")
        assert_item_shape(cell, stored_now["5"])
        assert cell["row_id"] == "lead-5"
        assert cell["status"] == "failed"
        assert cell["error"] == stored_now["5"][1]["error"], "the full error"
        assert (cell["provider"], cell["run"], cell["table"], cell["column"]) == (
            "clearbit",
            "leads-email",
            "leads",
            "email",
        )
        assert cell["inputs"] == {"company": "c5", "bad": True}
        assert cell["history"] == []

        # 4. fix the provider, 5. retry the failed items
        provider.behaviour = echo()
        retried = cli.json("table-runs", "retry-failed", "leads-email", "--wait")
        assert retried["retry_failed"] == 1
        assert retried["id"] == got["id"]
        assert raw_run(runs, "leads-email")["status"]["observedRetryFailed"] >= 1
        assert cli("runs", "watch", "leads-email", "--interval", "0.3").returncode == 0

    final = cli.json("runs", "get", "leads-email")
    assert_run_shape(final, raw_run(runs, "leads-email"))
    assert (final["status"], final["items_succeeded"], final["items_failed"]) == ("succeeded", 10, 0)
    assert final["credits_used"] == "2.5"
    assert cli.json("table-runs", "items", "leads-email", "--status", "failed") == []
    cell = cli.json("cells", "inspect", "leads", "lead-5", "email")
    assert cell["status"] == "succeeded"
    assert cell["attempt_count"] == 2
    assert cell["outputs"] == cell["inputs"]
    assert [(h["round"], h["status"]) for h in cell["history"]] == [(0, "failed")]
    assert cell["shard"] == stored_items(runs, "leads-email")["5"][2]
    assert "-r1-" in cell["shard"]

    summary = cli.json("table-runs", "provider-summary", "leads-email")
    providers = raw_run(runs, "leads-email")["status"]["providers"]
    assert [p["provider"] for p in summary] == [p["provider"] for p in providers] == ["clearbit"]
    for row, raw in zip(summary, providers, strict=True):
        assert row["items_succeeded"] == raw["itemsSucceeded"]
        assert row["items_failed"] == raw["itemsFailed"]
        assert row["credits_used"] == raw["creditsUsed"]
        assert row["attempts"] == raw["attempts"]
        assert row["mean_latency_seconds"] == pytest.approx(
            raw["latencySecondsSum"] / raw["attempts"], abs=1e-6
        )
    assert summary[0]["items_succeeded"] == 10
    assert summary[0]["credits_used"] == "2.5"

    events = cli.json("observability", "events", "leads-email")
    reasons = [e["reason"] for e in events]
    for wanted in ("Planned", "Started", "Completed", "Retrying", "Succeeded"):
        assert wanted in reasons, reasons
    stored_events = {e.metadata.name: e for e in runs.events("leads-email")}
    assert len(events) == len(stored_events)
    for event in events:
        assert set(event) >= {"type", "reason", "message", "run", "first_seen", "last_seen", "count"}
        assert event["run"] == "leads-email"
        assert event["type"] in ("Normal", "Warning")
        assert event["first_seen"] <= event["last_seen"]
        assert event["count"] >= 1
    assert [e["last_seen"] for e in events] == sorted(e["last_seen"] for e in events)
    retrying = next(e for e in events if e["reason"] == "Retrying")
    assert "retrying 3 failed items" in retrying["message"]


def test_runs_list_get_and_table_runs_list(
    cli: Cli, runs: Runs, cluster: LocalCluster, tmp_path: Path
) -> None:
    manifest = tmp_path / "run.yaml"
    manifest.write_text(
        yaml.safe_dump_all(
            [
                {
                    "apiVersion": f"{GROUP}/{VERSION}",
                    "kind": "Run",
                    "metadata": {"name": "orders-total"},
                    "spec": {
                        "table": "orders",
                        "column": "total",
                        "items": [{"rowId": f"o{i}", "inputs": {"i": i}} for i in range(3)],
                        "producer": {"provider": "echo", "builtin": "echo"},
                    },
                },
                {
                    "apiVersion": f"{GROUP}/{VERSION}",
                    "kind": "Run",
                    "metadata": {"name": "nightly"},
                    "spec": {
                        "mode": "dry_run",
                        "trigger": "schedule",
                        "items": [{"inputs": {"step": "a"}}],
                        "producer": {"provider": "echo", "builtin": "echo"},
                    },
                },
            ]
        )
    )
    created = cli.json("table-runs", "create", "-f", str(manifest))
    assert [c["name"] for c in created] == ["orders-total", "nightly"]
    runs.wait_phase("orders-total")
    runs.wait_phase("nightly")

    listed = cli.json("runs", "list")
    assert sorted(r["name"] for r in listed) == ["nightly", "orders-total"]
    for shape in listed:
        assert_run_shape(shape, raw_run(runs, shape["name"]))
    assert [r["name"] for r in cli.json("runs", "list", "--kind", "column")] == ["nightly", "orders-total"]
    assert cli.json("runs", "list", "--kind", "workflow") == []
    phases = {name: raw_run(runs, name)["status"]["phase"] for name in ("nightly", "orders-total")}
    assert phases["orders-total"] == "succeeded"
    for phase in set(phases.values()):
        expected = sorted(name for name, p in phases.items() if p == phase)
        assert [r["name"] for r in cli.json("runs", "list", "--status", phase)] == expected
    assert cli.json("runs", "list", "--status", "failed") == []
    nightly = cli.json("runs", "get", "nightly")
    assert (nightly["mode"], nightly["trigger"], nightly["items_total"]) == ("dry_run", "schedule", 1)

    tables = cli.json("table-runs", "list", "--table", "orders")
    assert [t["name"] for t in tables] == ["orders-total"]
    assert_run_shape(tables[0], raw_run(runs, "orders-total"))
    assert cli.json("table-runs", "list", "--table", "nope") == []

    # By uid across namespaces, and flags before the command words.
    uid = nightly["id"]
    everywhere = cli.json("runs", "get", uid, "-A", namespaced=False)
    assert everywhere["name"] == "nightly"
    assert everywhere["namespace"] == runs.ns
    early = subprocess.run(
        [sys.executable, "-m", "oxygen", "--kubeconfig", str(cluster.kubeconfig), "-n", runs.ns, "--json",
         "runs", "get", "nightly"],
        capture_output=True, text=True, timeout=60, cwd=REPO,
    )  # fmt: skip
    assert early.returncode == 0
    assert json.loads(early.stdout)["id"] == uid

    # The human table.
    table = cli("runs", "list")
    header, *lines = table.stdout.splitlines()
    assert header.split() == ["NAME", "PHASE", "MODE", "TOTAL", "SUCCEEDED", "FAILED", "CREDITS", "AGE"]
    assert [line.split()[:6] for line in lines] == [
        ["nightly", phases["nightly"], "dry_run", "1", "0", "0"],
        ["orders-total", "succeeded", "live", "3", "3", "0"],
    ]
    wide = cli("runs", "list", "-A", namespaced=False)
    assert wide.stdout.splitlines()[0].split()[0] == "NAMESPACE"
    assert runs.ns in wide.stdout

    # A finished run's watch prints one line (no TTY) and exits 0.
    watch = cli("runs", "watch", "orders-total")
    assert watch.returncode == 0
    assert len(watch.stdout.splitlines()) == 1
    assert "100.0% 3/3" in watch.stdout
    assert "succeeded" in watch.stdout


def test_kubectl_plugin_lists_runs(cli: Cli, runs: Runs, cluster: LocalCluster) -> None:
    runs.create(
        "plugged", {"items": [{"inputs": {"x": 1}}], "producer": {"provider": "p", "builtin": "echo"}}
    )
    runs.wait_phase("plugged")
    assert (VENV_BIN / "kubectl-oxygen").exists()
    kubectl = shutil.which("kubectl")
    assert kubectl is not None
    env = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    base = [kubectl, "oxygen", "runs", "list", "--kubeconfig", str(cluster.kubeconfig), "-n", runs.ns]
    as_json = subprocess.run([*base, "--json"], capture_output=True, text=True, env=env, timeout=60)
    assert as_json.returncode == 0, as_json.stderr
    [shape] = json.loads(as_json.stdout)
    assert_run_shape(shape, raw_run(runs, "plugged"))
    table = subprocess.run(base, capture_output=True, text=True, env=env, timeout=60)
    assert table.stdout.split()[:8] == [
        "NAME",
        "PHASE",
        "MODE",
        "TOTAL",
        "SUCCEEDED",
        "FAILED",
        "CREDITS",
        "AGE",
    ]
    usage = subprocess.run([kubectl, "oxygen", "runs", "nope"], capture_output=True, text=True, env=env)
    assert usage.returncode == 2
    assert "kubectl oxygen runs" in usage.stderr


def test_pause_resume_and_cancel_through_the_spec(cli: Cli, runs: Runs) -> None:
    with Provider(with_latency(0.2)) as provider:
        runs.create(
            "slow",
            {
                "items": [{"rowId": f"r{i}", "inputs": {"i": i}} for i in range(60)],
                "producer": {"provider": "slowpoke", "http": {"url": provider.url}},
                "batchSize": 10,
                "parallelism": 1,
            },
        )
        runs.wait_phase("slow", "running", timeout=60)

        paused = cli.json("table-runs", "pause", "slow", "--wait")
        assert paused["status"] == "paused"
        assert paused["paused"] is True
        assert_run_shape(paused, raw_run(runs, "slow"))
        assert raw_run(runs, "slow")["spec"]["paused"] is True
        assert all(job.spec.suspend for job in runs.jobs("slow") if not job.status.succeeded)

        resumed = cli.json("table-runs", "resume", "slow", "--wait")
        assert resumed["status"] in ("running", "completed", "succeeded")
        assert resumed["paused"] is False
        assert raw_run(runs, "slow")["spec"]["paused"] is False

        canceled = cli.json("table-runs", "cancel", "slow", "--wait")
        assert canceled["status"] == "canceled"
        assert raw_run(runs, "slow")["spec"]["cancel"] is True
        assert_run_shape(canceled, raw_run(runs, "slow"))
        assert canceled["items_skipped"] > 0
        assert canceled["finished_at"]

    # A canceled run cannot be paused, resumed or retried: one line, exit 1.
    for verb in ("pause", "resume", "retry-failed"):
        refused = cli("table-runs", verb, "slow")
        assert refused.returncode == 1
        assert refused.stderr.count("\n") == 1
        assert refused.stderr.startswith('error: run "slow" is canceled'), refused.stderr


@pytest.mark.slow
def test_items_page_through_ten_thousand(cli: Cli, runs: Runs, api: client.ApiClient) -> None:
    runs.create_from_rows("big", 10_000, batchSize=1000, parallelism=4)
    assert runs.wait_phase("big", timeout=300)["phase"] == "succeeded"

    figures: dict[str, str] = {}

    def measured(*args: str) -> tuple[Any, float, int]:
        started = time.monotonic()
        done = subprocess.run(
            [
                sys.executable,
                "-c",
                RSS_WRAPPER,
                *args,
                "--json",
                "--kubeconfig",
                cli.kubeconfig,
                "-n",
                runs.ns,
            ],
            capture_output=True,
            text=True,
            timeout=300,
            cwd=REPO,
        )
        elapsed = time.monotonic() - started
        assert done.returncode == 0, done.stderr
        rss = int(re.search(r"peak_rss_kib=(\d+)", done.stderr).group(1))  # type: ignore[union-attr]
        figures[" ".join(args)] = f"{elapsed:.2f}s, peak RSS {rss / 1024:.1f} MiB"
        return json.loads(done.stdout), elapsed, rss

    items, _, rss_all = measured("table-runs", "items", "big")
    assert len(items) == 10_000
    assert [i["id"] for i in items] == [str(i) for i in range(10_000)]
    assert {i["status"] for i in items} == {"succeeded"}
    sample = items[4321]
    assert sample == {
        **sample,
        "id": "4321",
        "row_id": "row-4321",
        "status": "succeeded",
        "attempt_count": 1,
        "inputs": {"i": 4321},
        "outputs": {"i": 4321},
        "error": None,
        "credits_used": "0",
        "provider": "echo",
    }
    del items
    limited, _, _ = measured("table-runs", "items", "big", "--limit", "25")
    assert [i["id"] for i in limited] == [str(i) for i in range(25)]
    assert measured("table-runs", "items", "big", "--status", "failed")[0] == []
    assert len(measured("table-runs", "items", "big", "--status", "succeeded", "--limit", "1500")[0]) == 1500
    _, _, rss_one_page = measured("table-runs", "items", "big", "--page-size", "1")
    _, _, rss_five_pages = measured("table-runs", "items", "big", "--page-size", "5")
    _, _, rss_baseline = measured("runs", "get", "big")
    # For comparison only: what one unpaged list of every shard costs a process.
    unpaged = subprocess.run(
        [sys.executable, "-c", UNPAGED_LIST, cli.kubeconfig, runs.ns],
        capture_output=True,
        text=True,
        timeout=300,
    )
    figures["(unpaged list of all shards, for comparison)"] = unpaged.stdout.strip()
    figures["(items above runs get)"] = (
        f"{(rss_all - rss_baseline) / 1024:.1f} MiB by default (2 shards a page), "
        f"{(rss_one_page - rss_baseline) / 1024:.1f} MiB with 1, "
        f"{(rss_five_pages - rss_baseline) / 1024:.1f} MiB with 5"
    )
    print("\nCLI figures (10,000 items, 10 shards of 1000):")
    for command, figure in figures.items():
        print(f"  oxygen {command}: {figure}")
    # Streaming bounds memory by a page of shards, not by the run: far below the whole run's size.
    assert rss_one_page - rss_baseline < 64 * 1024, (rss_one_page, rss_baseline)
    assert rss_all > 0


def test_billing_ledger(cli: Cli, runs: Runs, api: client.ApiClient) -> None:
    served = {r.name for r in client.CustomObjectsApi(api).get_api_resources(GROUP, VERSION).resources}
    if "creditaccounts" not in served:
        assert cli.json("billing", "ledger") == []
        return
    custom = client.CustomObjectsApi(api)
    custom.create_namespaced_custom_object(
        GROUP,
        VERSION,
        runs.ns,
        "creditaccounts",
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "CreditAccount",
            "metadata": {"name": "default"},
            "spec": {"grants": [{"id": "plan-2026-11", "amount": "100", "reason": "monthly plan"}]},
        },
    )
    runs.create(
        "billed",
        {
            "items": [{"inputs": {"i": i}} for i in range(4)],
            "producer": {"provider": "echo", "builtin": "echo", "costPerItem": "0.5"},
        },
    )
    runs.wait_phase("billed")
    ledger = cli.json("billing", "ledger")
    grants = [row for row in ledger if row["type"] == "granted"]
    assert grants == [
        {
            "account": "default",
            "run": None,
            "type": "granted",
            "amount": "100",
            "at": grants[0]["at"],
            "reason": "monthly plan",
            "id": "plan-2026-11",
        }
    ]
    stored = raw_run(runs, "billed")
    entries = (stored.get("status") or {}).get("ledger") or []
    run_rows = [row for row in ledger if row["run"] == "billed"]
    assert len(run_rows) == len(entries)
    for row, entry in zip(run_rows, sorted(entries, key=lambda e: e["at"]), strict=True):
        assert set(row) >= {"account", "run", "type", "amount", "at", "reason"}
        assert (row["type"], row["amount"], row["at"]) == (entry["type"], entry["amount"], entry["at"])
        assert row["account"] == "default"
        assert row["type"] in ("reserved", "captured", "released")
    assert [r["at"] for r in ledger] == sorted(r["at"] for r in ledger)
    assert cli.json("billing", "ledger", "--account", "default") == ledger
    assert cli.json("billing", "ledger", "--account", "someone-else") == []


def test_errors_are_one_line_with_meaningful_exit_codes(
    cli: Cli, runs: Runs, cluster: LocalCluster, tmp_path: Path
) -> None:
    missing = cli("runs", "get", "nope")
    assert missing.returncode == 3
    assert missing.stderr == f'error: run "nope" not found in namespace "{runs.ns}"\n'
    assert missing.stdout == ""
    for args in (
        ("table-runs", "items", "nope"),
        ("table-runs", "pause", "nope"),
        ("runs", "watch", "nope"),
        ("observability", "events", "nope"),
        ("table-runs", "provider-summary", "nope"),
    ):
        done = cli(*args)
        assert done.returncode == 3, (args, done.stderr)
        assert done.stderr.count("\n") == 1, (args, done.stderr)
    everywhere = cli("runs", "get", "nope", "-A", namespaced=False)
    assert everywhere.returncode == 3
    assert everywhere.stderr == 'error: run "nope" not found in any namespace\n'
    no_cell = cli("cells", "inspect", "nothing", "r1", "c")
    assert no_cell.returncode == 3
    assert "no run of table" in no_cell.stderr

    usage = cli("runs", "get")
    assert usage.returncode == 2
    assert "usage:" in usage.stderr
    assert cli("table-runs", "create", "--table", "t").returncode == 2

    # A kubeconfig whose server nobody listens on: one line naming the context and the server, fast.
    config = yaml.safe_load(Path(cluster.kubeconfig).read_text())
    config["clusters"][0]["cluster"]["server"] = "https://127.0.0.1:1"
    dead = tmp_path / "dead.kubeconfig"
    dead.write_text(yaml.safe_dump(config))
    started = time.monotonic()
    unreachable = subprocess.run(
        [sys.executable, "-m", "oxygen", "runs", "list", "--kubeconfig", str(dead)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert time.monotonic() - started < 15
    assert unreachable.returncode == 1
    assert unreachable.stdout == ""
    assert unreachable.stderr == (
        'error: cannot reach the cluster of context "oxygen-local" (https://127.0.0.1:1): '
        "connection refused\n"
    )
    wrong_context = cli("runs", "list", "--context", "elsewhere")
    assert wrong_context.returncode == 1
    assert wrong_context.stderr == 'error: context "elsewhere" not found in the kubeconfig\n'
