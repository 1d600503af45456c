"""The alert rules: promtool's own unit tests (cases that fire and cases that must not), plus shape."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "observability" / "prometheus" / "oxygen-rules.yaml"
TESTS = sorted((REPO / "observability" / "prometheus" / "tests").glob("*.yaml"))
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool not installed (Debian package `prometheus`: make setup installs it)"
)


def alerts() -> list[dict[str, object]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


@needs_promtool
def test_rules_are_valid() -> None:
    assert PROMTOOL is not None
    result = subprocess.run([PROMTOOL, "check", "rules", str(RULES)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_promtool_unit_tests_pass() -> None:
    assert PROMTOOL is not None
    assert TESTS
    result = subprocess.run(
        [PROMTOOL, "test", "rules", *(str(p.relative_to(TESTS[0].parent)) for p in TESTS)],
        capture_output=True,
        text=True,
        cwd=TESTS[0].parent,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_is_tested_both_ways() -> None:
    """Each alert appears in a promtool case that fires and in one that must stay silent."""
    fired: set[str] = set()
    silent: set[str] = set()
    for path in TESTS:
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                (fired if check.get("exp_alerts") else silent).add(check["alertname"])
    names = {str(rule["alert"]) for rule in alerts()}
    assert names <= fired, names - fired
    assert names <= silent, names - silent


def test_every_alert_has_summary_description_and_a_runbook_in_the_readme() -> None:
    readme = (REPO / "README.md").read_text()
    anchors = {
        re.sub(r"[^a-z0-9 -]", "", heading.strip().lower()).replace(" ", "-")
        for heading in re.findall(r"^#+ (.+)$", readme, flags=re.MULTILINE)
    }
    for rule in alerts():
        annotations = rule["annotations"]
        assert isinstance(annotations, dict)
        assert annotations.get("summary"), rule["alert"]
        assert annotations.get("description"), rule["alert"]
        url = str(annotations.get("runbook_url", ""))
        anchor = url.partition("#")[2]
        assert anchor == f"runbook-{str(rule['alert']).lower()}", url
        assert anchor in anchors, f"README has no heading for #{anchor}"
