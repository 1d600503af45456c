"""The run timeline page, served by the operator's web app, rendered in headless Chromium.

Access is checked by Kubernetes: a ServiceAccount bound to a Role that may `get` runs sees the page;
another ServiceAccount gets 403; no token (or a forged one) gets 401.
"""

from __future__ import annotations

import os
import re
import subprocess
import urllib.error
import urllib.request
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from oxygen.api.common import GROUP
from oxygen.web.auth import DEFAULT_AUDIENCE
from tests.support.provider import Provider, Reply, bad_request, echo, with_credits, with_latency
from tests.support.runs import Runs
from tests.support.web_thread import WebThread

pytestmark = pytest.mark.cluster

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOT = REPO / "docs" / "run-timeline.png"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def service_account_token(
    api: client.ApiClient, ns: str, name: str, *, audience: str | None = DEFAULT_AUDIENCE, create: bool = True
) -> str:
    """What `kubectl create token <name> --audience oxygen-run-page` gives (None: the API server's own
    audience, what a plain `kubectl create token <name>` gives)."""
    core = client.CoreV1Api(api)
    if create:
        core.create_namespaced_service_account(ns, {"metadata": {"name": name}})
    spec: dict[str, Any] = {"expirationSeconds": 3600, **({"audiences": [audience]} if audience else {})}
    request = core.create_namespaced_service_account_token(name, ns, {"spec": spec})
    token: str = request.status.token
    return token


def grant_get_runs(api: client.ApiClient, ns: str, account: str) -> None:
    rbac = client.RbacAuthorizationV1Api(api)
    rbac.create_namespaced_role(
        ns,
        {
            "metadata": {"name": "run-viewer"},
            "rules": [{"apiGroups": [GROUP], "resources": ["runs"], "verbs": ["get"]}],
        },
    )
    rbac.create_namespaced_role_binding(
        ns,
        {
            "metadata": {"name": "run-viewer"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "run-viewer"},
            "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": ns}],
        },
    )


def fetch(url: str, token: str | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as reply:
            return reply.status, reply.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


class Texts(HTMLParser):
    """The visible text of elements by id, as a person (or a test) reads them off the page."""

    def __init__(self) -> None:
        super().__init__()
        self.by_id: dict[str, str] = {}
        self._open: list[tuple[str, str | None]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("meta", "br", "img", "input", "link", "line", "rect"):
            return
        if tag in ("td", "th", "tr", "p", "div", "li"):
            for _, element_id in self._open:  # cells read apart, as on screen
                if element_id:
                    self.by_id[element_id] = self.by_id.get(element_id, "") + " "
        self._open.append((tag, dict(attrs).get("id")))

    def handle_endtag(self, tag: str) -> None:
        while self._open:
            open_tag, _ = self._open.pop()
            if open_tag == tag:
                break

    def handle_data(self, data: str) -> None:
        if any(tag in ("style", "script", "title") for tag, _ in self._open):
            return
        self.text.append(data)
        for _, element_id in self._open:
            if element_id:
                self.by_id[element_id] = self.by_id.get(element_id, "") + data


def read_page(html: str) -> Texts:
    parser = Texts()
    parser.feed(html)
    return parser


def dispatch() -> Any:
    ok, bad = with_credits("2", with_latency(0.05, echo())), bad_request("company is not a domain")

    def behaviour(item_id: str, attempt: int, body: dict[str, Any]) -> Reply:
        return (bad if body["item"]["inputs"]["kind"] == "bad" else ok)(item_id, attempt, body)

    return behaviour


def test_run_page_in_chromium_and_access_control(runs: Runs, api: client.ApiClient, tmp_path: Path) -> None:
    rows = [
        {"rowId": f"row-{i}", "inputs": {"kind": "bad" if i % 4 == 0 else "ok", "i": i}} for i in range(24)
    ]
    with Provider(dispatch()) as provider:
        runs.create(
            "timeline",
            {
                "items": rows,
                "producer": {"provider": "clearbit", "costPerItem": "2", "http": {"url": provider.url}},
                "batchSize": 8,
                "parallelism": 2,
                "retry": {"maxAttempts": 1},
            },
        )
        status = runs.wait_phase("timeline", timeout=180)
    assert (status["phase"], status["itemsSucceeded"], status["itemsFailed"]) == ("completed", 18, 6), status

    viewer = service_account_token(api, runs.ns, "viewer")
    stranger = service_account_token(api, runs.ns, "stranger")
    grant_get_runs(api, runs.ns, "viewer")
    # The same viewer's token for the API server: valid, but not for the run page.
    viewer_api_token = service_account_token(api, runs.ns, "viewer", audience=None, create=False)

    with WebThread(api) as web:
        page = f"{web.base_url}/runs/{runs.ns}/timeline"
        assert fetch(f"{web.base_url}/healthz") == (200, "ok\n")
        code, body = fetch(page)
        assert code == 401, body
        assert fetch(page, "not-a-real-token")[0] == 401
        assert fetch(page, viewer_api_token)[0] == 401
        assert fetch(f"{page}?token={viewer_api_token}")[0] == 401
        assert fetch(f"{web.base_url}/metrics")[0] == 404  # metrics listen apart, not where people go
        code, body = fetch(page, stranger)
        assert code == 403, body
        assert "timeline" not in body.replace(f"runs in namespace {runs.ns}", "")
        assert fetch(f"{web.base_url}/runs/{runs.ns}/no-such-run", viewer)[0] in (403, 404)

        code, html = fetch(page, viewer)
        assert code == 200, html
        assert viewer not in html
        assert "company is not a domain" in html
        assert 'http-equiv="refresh"' not in html  # finished: no auto-refresh

        if not CHROMIUM.exists():
            pytest.skip("/usr/bin/chromium is absent (Debian package `chromium`: make setup installs it)")
        # The browser way in: ?token= is swapped for an HttpOnly cookie and the token leaves the URL.
        profile = tmp_path / "chromium"
        dom = subprocess.run(
            [
                str(CHROMIUM),
                *CHROMIUM_FLAGS,
                f"--user-data-dir={profile}",
                "--dump-dom",
                f"{page}?token={viewer}",
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert dom.returncode == 0, dom.stderr[-2000:]
        seen = read_page(dom.stdout)
        # The README's screenshot is refreshed only on request, so a test run leaves the tree clean.
        target = SCREENSHOT if os.environ.get("OXYGEN_UPDATE_SCREENSHOT") else tmp_path / "run-timeline.png"
        shot = subprocess.run(
            [
                str(CHROMIUM),
                *CHROMIUM_FLAGS,
                f"--user-data-dir={tmp_path / 'chromium-shot'}",
                "--hide-scrollbars",
                "--window-size=1280,1400",
                f"--screenshot={target}",
                f"{page}?token={viewer}",
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert shot.returncode == 0, shot.stderr[-2000:]
        assert target.stat().st_size > 10_000, shot.stderr[-2000:]

    # What a person sees on the page.
    assert seen.by_id.get("run-name") == f"{runs.ns}/timeline", seen.by_id
    assert seen.by_id["phase"].strip() == "completed"
    assert seen.by_id["items-total"] == "24"
    assert seen.by_id["items-succeeded"] == "18"
    assert seen.by_id["items-failed"] == "6"
    assert seen.by_id["credits-used"] == "36"
    assert seen.by_id["mode"] == "live"
    assert seen.by_id["provider"] == "clearbit"
    assert seen.by_id["progress-text"] == "24 of 24 items finished (100%)"
    assert seen.by_id["failed-count"] == "6"
    assert (seen.by_id["timeline-succeeded"], seen.by_id["timeline-failed"]) == ("18", "6")
    failed_rows = re.findall(r"row-\d+", seen.by_id["failed-items"])
    assert sorted(failed_rows) == sorted(f"row-{i}" for i in range(0, 24, 4))
    assert "company is not a domain" in seen.by_id["failed-items"]
    assert "Started" in seen.by_id["events"]
    assert "Completed" in seen.by_id["events"]
    shards = seen.by_id["shards"]
    assert shards.count("Succeeded") == 3
    # Nothing secret: no token, no item inputs.
    page_text = "".join(seen.text)
    assert viewer not in dom.stdout
    assert '"kind": "bad"' not in page_text
