"""The Grafana dashboard is generated as code; the checked-in JSON must be the generator's output."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]
GENERATOR = REPO / "observability" / "grafana" / "dashboard.py"
CHECKED_IN = REPO / "observability" / "grafana" / "oxygen-dashboard.json"

pytest.importorskip("grafana_foundation_sdk", reason="grafana-foundation-sdk is in the dev extras")


def generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("oxygen_dashboard", GENERATOR)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_checked_in_json_is_the_generators_output() -> None:
    assert CHECKED_IN.read_text() == generator().render(), (
        "oxygen-dashboard.json is stale: run .venv/bin/python observability/grafana/dashboard.py"
    )


def test_dashboard_has_the_panels_people_look_for() -> None:
    dashboard = json.loads(CHECKED_IN.read_text())
    titles = {p["title"] for p in dashboard["panels"]}
    for wanted in (
        "Runs by phase",
        "Items per second by status",
        "Failed items by provider and error class",
        "Credits burn (captured and released per second)",
        "Top failing runs",
        "Reconcile duration p95 and errors",
        "Kubernetes API requests by verb and code",
    ):
        assert wanted in titles
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    assert exprs
    assert all(e.startswith(("sum", "histogram_quantile", "topk")) for e in exprs)
    # Dashboards must not break a label budget: no per-item or per-shard grouping.
    assert not any(word in e for e in exprs for word in ("item_id", "row_id", "shard"))
