"""A real Prometheus (Debian's package) scrapes the operator during an end-to-end run with failures.

- every dashboard query and alert expression parses and evaluates; the ones that should have data
  in this scenario do, the alerts that must stay quiet return nothing;
- the failed-items counter moves by exactly the number of failed items;
- the per-run gauges disappear after the retention window (set short here).

The operator runs as its own subprocess (the shared one is stopped meanwhile and restarted after):
it serves /metrics on OXYGEN_METRICS_PORT and keeps per-run series OXYGEN_METRICS_RUN_RETENTION_SECONDS.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from prometheus_client.parser import text_string_to_metric_families

from oxygen.devcluster import LocalCluster
from oxygen.devcluster.wait import WaitTimeout, wait_for
from tests.support.operator_process import OperatorProcess
from tests.support.provider import (
    Provider,
    Reply,
    bad_request,
    echo,
    fail_then_succeed,
    with_credits,
    with_latency,
)
from tests.support.runs import Runs

pytestmark = pytest.mark.cluster

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "observability" / "prometheus" / "oxygen-rules.yaml"
DASHBOARD = REPO / "observability" / "grafana" / "oxygen-dashboard.json"
PROMETHEUS = shutil.which("prometheus")
RETENTION = 30.0
RUN = "live"
ROWS = 30  # every 3rd row fails (10), every 5th from 1 succeeds on its second attempt
FAILED = 10
# Alerts this scenario must trip (their expression returns data) and the ones that must stay quiet.
MUST_FIRE = {"OxygenRunItemsFailing", "OxygenProviderItemsFailing"}
MUST_BE_QUIET = {
    "OxygenRunFailed",
    "OxygenRunStuck",
    "OxygenOperatorDown",
    "OxygenReconcileErrors",
    "OxygenCreditsLow",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def get(url: str, timeout: float = 10) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as reply:
        return str(reply.read().decode())


def scrape(port: int) -> list[tuple[str, dict[str, str], float]]:
    text = get(f"http://127.0.0.1:{port}/metrics")
    return [
        (sample.name, dict(sample.labels), sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    ]


def total(samples: list[tuple[str, dict[str, str], float]], name: str, **labels: str) -> float:
    return sum(v for n, lab, v in samples if n == name and all(lab.get(k) == x for k, x in labels.items()))


class Prometheus:
    def __init__(self, workdir: Path, target_port: int) -> None:
        assert PROMETHEUS is not None
        self.port = free_port()
        workdir.mkdir(parents=True, exist_ok=True)
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(RULES)],
            "scrape_configs": [
                {
                    "job_name": "oxygen-operator",
                    "scrape_interval": "1s",
                    "static_configs": [{"targets": [f"127.0.0.1:{target_port}"]}],
                }
            ],
        }
        (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.log = workdir / "prometheus.log"
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [
                    PROMETHEUS,
                    f"--config.file={workdir / 'prometheus.yml'}",
                    f"--storage.tsdb.path={workdir / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--log.level=warn",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        wait_for(
            self._ready, timeout=60, what="prometheus to be ready", describe=lambda: self.log.read_text()
        )

    def _ready(self) -> bool:
        try:
            return "Ready" in get(f"http://127.0.0.1:{self.port}/-/ready", timeout=2)
        except (OSError, urllib.error.URLError):
            return False

    def api(self, path: str, **params: str) -> dict[str, Any]:
        url = f"http://127.0.0.1:{self.port}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        try:
            body = get(url)
        except urllib.error.HTTPError as err:  # 400 for a query that does not parse
            body = err.read().decode()
        reply: dict[str, Any] = json.loads(body)
        return reply

    def query(self, expr: str) -> list[dict[str, Any]]:
        reply = self.api("query", query=expr)
        assert reply["status"] == "success", (expr, reply)
        result: list[dict[str, Any]] = reply["data"]["result"]
        return result

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def metrics_operator(
    cluster: LocalCluster, crds: None, operator: OperatorProcess, tmp_path: Path
) -> Iterator[tuple[OperatorProcess, int]]:
    """Our own operator with metrics on a known port and a short retention; the shared one pauses."""
    port = free_port()
    operator.stop()
    own = OperatorProcess(
        cluster.kubeconfig,
        tmp_path / "operator",
        {"OXYGEN_METRICS_PORT": str(port), "OXYGEN_METRICS_RUN_RETENTION_SECONDS": f"{RETENTION:g}"},
    ).start()
    try:
        yield own, port
    finally:
        own.stop()
        operator.start()


def dispatch() -> Any:
    ok = with_credits("1", with_latency(0.3, echo()))
    flaky = fail_then_succeed(1, 503, then=ok)
    bad = with_latency(0.3, bad_request("company is not a domain"))

    def behaviour(item_id: str, attempt: int, body: dict[str, Any]) -> Reply:
        i = body["item"]["inputs"]["i"]
        if i % 3 == 0:
            return bad(item_id, attempt, body)
        return (flaky if i % 5 == 1 else ok)(item_id, attempt, body)

    return behaviour


def dashboard_queries() -> list[tuple[str, str]]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [(p["title"], t["expr"]) for p in dashboard["panels"] for t in p.get("targets", [])]


def alert_rules() -> dict[str, str]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return {r["alert"]: r["expr"] for g in groups for r in g["rules"] if "alert" in r}


@pytest.mark.skipif(PROMETHEUS is None, reason="prometheus not installed (Debian package `prometheus`)")
def test_live_prometheus_evaluates_every_query_during_a_run_with_failures(
    metrics_operator: tuple[OperatorProcess, int],
    api: client.ApiClient,
    namespace: str,
    tmp_path: Path,
) -> None:
    own, port = metrics_operator
    try:
        wait_for(lambda: scrape(port), timeout=90, what=f"the operator to serve /metrics on port {port}")
    except WaitTimeout:
        pytest.fail(
            f"the operator does not serve /metrics on OXYGEN_METRICS_PORT={port} (start_web not wired?)\n"
            + own.tail(40)
        )
    runs = Runs(api, namespace)
    runs.custom.create_namespaced_custom_object(
        "oxygen.dev",
        "v1alpha1",
        namespace,
        "creditaccounts",
        {
            "apiVersion": "oxygen.dev/v1alpha1",
            "kind": "CreditAccount",
            "metadata": {"name": "default"},
            "spec": {"grants": [{"id": "plan", "amount": "1000"}]},
        },
    )
    prometheus = Prometheus(tmp_path / "prometheus", port)
    try:
        # Target discovery takes a few seconds: the run starts once the operator is really scraped.
        wait_for(
            lambda: [r for r in prometheus.query('up{job="oxygen-operator"}') if r["value"][1] == "1"],
            timeout=60,
            what="prometheus to scrape the operator",
        )
        before = total(scrape(port), "oxygen_items_finished_total", namespace=namespace, status="failed")
        with Provider(dispatch()) as provider:
            runs.create(
                RUN,
                {
                    "items": [{"rowId": f"row-{i}", "inputs": {"i": i}} for i in range(ROWS)],
                    # One call at a time per shard: the run spans several scrapes, so rates have samples.
                    "producer": {
                        "provider": "clearbit",
                        "costPerItem": "1",
                        "http": {"url": provider.url},
                        "concurrency": 1,
                    },
                    "batchSize": 10,
                    "parallelism": 2,
                    "retry": {"maxAttempts": 2, "backoffSeconds": 0.1},
                },
            )
            status = runs.wait_phase(RUN, timeout=180)
        finished_at = time.monotonic()
        assert (status["phase"], status["itemsFailed"]) == ("completed", FAILED), status

        # The counter moves by exactly the failed items, and stays there.
        def failed_delta() -> float:
            now = total(scrape(port), "oxygen_items_finished_total", namespace=namespace, status="failed")
            return now - before

        wait_for(
            lambda: failed_delta() == FAILED,
            timeout=30,
            what=f"failed counter +{FAILED}",
            describe=lambda: str(failed_delta()),
        )
        samples = scrape(port)
        assert (
            total(samples, "oxygen_items_finished_total", namespace=namespace, status="succeeded")
            == ROWS - FAILED
        )
        assert total(samples, "oxygen_run_items", namespace=namespace, run=RUN, status="failed") == FAILED
        assert total(samples, "oxygen_item_retries_total", namespace=namespace) >= 2
        assert total(samples, "oxygen_runs_finished_total", namespace=namespace, outcome="completed") == 1

        expect = f'sum(oxygen_items_finished_total{{namespace="{namespace}",status="failed"}})'
        wait_for(
            lambda: [r for r in prometheus.query(expect) if float(r["value"][1]) == FAILED],
            timeout=30,
            what="prometheus to scrape the final counts",
        )
        time.sleep(5)  # a few more scrapes, so rate() and increase() have their two samples

        # Every dashboard query parses, evaluates, and has data in this scenario.
        empty = []
        for title, expr in dashboard_queries():
            concrete = expr.replace("$namespace", namespace).replace("$__rate_interval", "1m")
            if not prometheus.query(concrete):
                empty.append(f"{title}: {concrete}")
        assert not empty, "dashboard queries without data:\n" + "\n".join(empty)

        # Every alert expression parses; the ones this run must trip return data, the others nothing.
        rules = alert_rules()
        assert set(rules) == MUST_FIRE | MUST_BE_QUIET
        for name, expr in rules.items():
            result = prometheus.query(expr)
            if name in MUST_FIRE:
                labels = [r["metric"] for r in result]
                history = prometheus.query(f'oxygen_items_finished_total{{namespace="{namespace}"}}[2m]')
                assert labels, f"{name} should have data: {expr}\nseries: {history}"
                assert any(lab.get("namespace") == namespace for lab in labels), labels
            else:
                # Other tests' runs and accounts (namespaces being deleted) are not this scenario's.
                mine = [r for r in result if r["metric"].get("namespace", namespace) == namespace]
                assert mine == [], f"{name} must stay quiet: {mine}"
        # The server loaded the same rules and evaluates them without errors.
        loaded = prometheus.api("rules")["data"]["groups"]
        health = {r["name"]: (r["health"], r.get("lastError", "")) for g in loaded for r in g["rules"]}
        assert set(health) == set(rules)
        assert all(h == ("ok", "") for h in health.values()), health

        # The per-run series go away after the retention window, not before.
        assert time.monotonic() - finished_at < RETENTION, "too slow to see the per-run series in the window"
        assert total(scrape(port), "oxygen_run_phase", namespace=namespace, run=RUN) == 1

        def per_run_series() -> int:
            return sum(1 for _, labels, _ in scrape(port) if labels.get("run") == RUN)

        wait_for(lambda: per_run_series() == 0, timeout=RETENTION + 30, what="per-run series to be dropped")
        assert time.monotonic() - finished_at >= RETENTION - 5
        wait_for(
            lambda: prometheus.query(f'oxygen_run_items{{namespace="{namespace}",run="{RUN}"}}') == [],
            timeout=30,
            what="prometheus to mark the per-run series stale",
        )
        # Dropping the run's series never re-counts its items.
        assert failed_delta() == FAILED
    finally:
        prometheus.stop()
