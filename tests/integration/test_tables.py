"""Tables against the real control plane and a real PostgreSQL: the Table controller reports rows and
columns, and a database or table it cannot reach as a condition and an Event (the operator keeps
serving); `oxygen tables list|get`."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from oxygen.api.common import GROUP, VERSION
from oxygen.devcluster import LocalCluster
from oxygen.devcluster.wait import wait_for
from tests.integration.test_tenancy_admission import ALICE, grant, impersonating, refused
from tests.support.runs import Runs
from tests.support.tables import create_table, database, dsn_secret, get_table, leads, ready, table_manifest

pytestmark = pytest.mark.cluster


@pytest.fixture
def crm(postgres: str) -> Iterator[str]:
    with database(postgres) as dsn:
        yield dsn


def oxygen(cluster: LocalCluster, ns: str, *args: str) -> subprocess.CompletedProcess[str]:
    flags = ["--kubeconfig", str(cluster.kubeconfig), "-n", ns]
    return subprocess.run([sys.executable, "-m", "oxygen", *args, *flags], capture_output=True, text=True)


def test_a_table_reports_rows_columns_and_unreachable_databases(
    runs: Runs, api: client.ApiClient, cluster: LocalCluster, crm: str
) -> None:
    leads(crm, 25)
    dsn_secret(api, runs.ns, "crm-db", crm)
    dsn_secret(api, runs.ns, "nowhere-db", "host=127.0.0.1 port=1 dbname=x user=x connect_timeout=2")
    create_table(api, runs.ns, table_manifest("leads", "public.leads"))
    create_table(api, runs.ns, table_manifest("missing", "public.nope"))
    create_table(api, runs.ns, table_manifest("away", "public.leads", secret="nowhere-db"))
    create_table(api, runs.ns, table_manifest("no-secret", "public.leads", secret="absent"))

    def condition(name: str) -> dict[str, object] | None:
        return ready(get_table(api, runs.ns, name))

    good = wait_for(lambda: get_table(api, runs.ns, "leads") if condition("leads") else None, timeout=60)
    assert ready(good)["status"] == "True", good  # type: ignore[index]
    assert good["status"]["rows"] == 25
    assert [(c["name"], c["type"], c["filled"], c["empty"]) for c in good["status"]["columns"]] == [
        ("id", "text", 25, 0),
        ("website", "text", 25, 0),
    ]
    expected = {
        "missing": ("TableNotFound", 'relation "public.nope" does not exist'),
        "away": ("DatabaseUnreachable", "port 1"),
        "no-secret": ("SecretNotFound", 'secrets "absent"'),
    }
    for name, (reason, text) in expected.items():
        found = wait_for(lambda name=name: condition(name), timeout=60)  # type: ignore[misc]
        assert (found["status"], found["reason"]) == ("False", reason), found
        assert text in str(found["message"]), found
        events = client.CoreV1Api(api).list_namespaced_event(
            runs.ns, field_selector=f"involvedObject.name={name},involvedObject.kind=Table"
        )
        assert [e.reason for e in events.items] == [reason], name

    # The table grows and a column is added: the status follows within a pass.
    with psycopg.connect(crm, autocommit=True) as conn:
        conn.execute("insert into public.leads values ('extra', null)")
        conn.execute("alter table public.leads add column score jsonb")

    def grown() -> bool:
        status = get_table(api, runs.ns, "leads")["status"]
        return status["rows"] == 26 and len(status["columns"]) == 3

    wait_for(grown, timeout=30)
    columns = {c["name"]: c for c in get_table(api, runs.ns, "leads")["status"]["columns"]}
    assert (columns["website"]["filled"], columns["website"]["empty"]) == (25, 1)
    assert (columns["score"]["type"], columns["score"]["empty"]) == ("jsonb", 26)

    # The CLI.
    listed = oxygen(cluster, runs.ns, "tables", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    shapes = {t["name"]: t for t in json.loads(listed.stdout)}
    assert set(shapes) == {"leads", "missing", "away", "no-secret"}
    assert (shapes["leads"]["ready"], shapes["leads"]["rows"], shapes["leads"]["table"]) == (
        True,
        26,
        "public.leads",
    )
    assert (shapes["missing"]["ready"], shapes["missing"]["reason"]) == (False, "TableNotFound")
    got = oxygen(cluster, runs.ns, "tables", "get", "leads", "--json")
    assert json.loads(got.stdout)["columns"][2] == {
        "name": "score", "type": "jsonb", "filled_by": None, "filled": 0, "failed": 0, "empty": 26,
    }  # fmt: skip
    assert "crm-db" in got.stdout and crm not in got.stdout, "the Secret is named, its DSN never shown"
    table_text = oxygen(cluster, runs.ns, "tables", "get", "leads")
    assert "website" in table_text.stdout and "FILLED BY" in table_text.stdout
    assert oxygen(cluster, runs.ns, "tables", "get", "nope").returncode == 3
    # The operator kept serving: a run in the same namespace still succeeds.
    runs.create(
        "still", {"items": [{"inputs": {"a": 1}}], "producer": {"provider": "echo", "builtin": "echo"}}
    )
    assert runs.wait_phase("still", timeout=120)["phase"] == "succeeded"


def test_a_run_uses_a_table_and_a_table_its_secret_only_if_its_writer_may_get_them(
    cluster: LocalCluster, api: client.ApiClient, namespace: str, crds: None
) -> None:
    """The tenancy rules at admission: a Run naming a Table (column run over it, or ingestion into it)
    needs `get` on that Table and on its Secret; a Table needs `get` on its Secret. The writer is
    `alice`."""
    grant(api, namespace, "alice-runs", ALICE, [
        {"apiGroups": [GROUP], "resources": ["runs", "tables"], "verbs": ["create"]},
    ])  # fmt: skip
    alice = client.CustomObjectsApi(impersonating(cluster, ALICE))
    admin = client.CustomObjectsApi(api)

    def create(plural: str, body: dict[str, Any]) -> Callable[[], object]:
        return lambda: alice.create_namespaced_custom_object(GROUP, VERSION, namespace, plural, body)

    over_table = run_manifest("fill", {
        "table": "leads", "column": "domain", "inputs": {"d": "${row.website}"},
        "producer": {"provider": "echo", "builtin": "echo"},
    })  # fmt: skip
    ingestion = run_manifest("ingest", {
        "kind": "ingestion", "table": "leads",
        "ingestion": {"provider": "search", "url": "http://127.0.0.1:9/x", "query": "q"},
    })  # fmt: skip
    message = refused(create("runs", over_table))
    assert "Table leads" in message and "get tables leads" in message, message
    assert "get tables leads" in refused(create("runs", ingestion))
    table = table_manifest("leads", "public.leads", secret="crm-db")
    message = refused(create("tables", table))
    assert "Secret crm-db" in message and "get secrets crm-db" in message, message
    # The admin writes the Table; alice may get it but not its Secret: her runs may not use it.
    create_table(api, namespace, table)
    grant(api, namespace, "alice-table", ALICE, [
        {"apiGroups": [GROUP], "resources": ["tables"], "resourceNames": ["leads"], "verbs": ["get"]},
    ])  # fmt: skip
    attempts = itertools.count()

    def refused_for_the_secret() -> bool:
        """Refused naming the Table's Secret; a probe admitted before the API server saw the Table
        (or alice's Role) is deleted, and the next probe has a name of its own."""
        name = f"probe-{next(attempts)}"
        try:
            create("runs", {**over_table, "metadata": {"name": name}})()
        except ApiException as err:
            assert err.status == 403, err.body
            expected = (
                f"Run {name} names Table leads (spec.table) whose Secret is crm-db "
                f"(spec.postgres.secretRef), but {ALICE} may not get secrets crm-db in namespace {namespace}"
            )
            return expected in str(json.loads(err.body)["message"])
        admin.delete_namespaced_custom_object(GROUP, VERSION, namespace, "runs", name)
        return False

    wait_for(refused_for_the_secret, timeout=30, what="a run over Table leads refused for its Secret")
    message = refused(create("runs", ingestion))
    assert "names Table leads" in message and "may not get secrets crm-db" in message, message
    # With the permission on the Secret too, the same objects are admitted.
    grant(api, namespace, "alice-secret", ALICE, [
        {"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["crm-db"], "verbs": ["get"]},
    ])  # fmt: skip
    wait_for(lambda: _admitted(create("runs", over_table)), timeout=30)
    create("runs", ingestion)()
    create("tables", table_manifest("other", "public.other", secret="crm-db"))()
    # A run that only names its table (rows of its own) needs nothing more, as before Tables.
    plain = run_manifest("plain", {
        "table": "elsewhere", "column": "c", "items": [{"inputs": {}}],
        "producer": {"provider": "echo", "builtin": "echo"},
    })  # fmt: skip
    create("runs", plain)()


def _admitted(call: Callable[[], object]) -> bool:
    """RBAC changes reach the authorizer within moments: retried while still refused."""
    try:
        call()
    except ApiException as err:
        if err.status == 403:
            return False
        raise
    return True


def run_manifest(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Run", "metadata": {"name": name}, "spec": spec}
