"""The run page without a cluster: rendering, escaping, the timeline buckets, and the access gate."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry

from oxygen.web import app as web_app
from oxygen.web.auth import Caller, bearer_token
from oxygen.web.data import RunPageData
from oxygen.web.page import EventRow, render
from oxygen.web.timeline import bucket, finishes

T0 = 1_700_000_000.0


def stamp(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def shard(items: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "metadata": {"name": "r-r0-0000"},
        "spec": {
            "round": 0,
            "index": 0,
            "items": [{"id": i["id"], "inputs": {"secret": "hunter2"}} for i in items],
        },
        "status": {"phase": "Succeeded", "items": items, "summary": {"succeeded": 2, "failed": 1}},
    }


def run(phase: str = "completed") -> dict[str, Any]:
    return {
        "metadata": {"name": "r", "namespace": "ns", "uid": "u"},
        "spec": {"mode": "live", "producer": {"provider": "p"}},
        "status": {
            "phase": phase,
            "itemsTotal": 3,
            "itemsSucceeded": 2,
            "itemsFailed": 1,
            "startedAt": stamp(T0),
            "finishedAt": stamp(T0 + 10),
        },
    }


ITEMS = [
    {"id": "1", "status": "succeeded", "finishedAt": stamp(T0 + 1)},
    {"id": "2", "status": "succeeded", "finishedAt": stamp(T0 + 9)},
    {"id": "3", "status": "failed", "finishedAt": stamp(T0 + 9.5), "error": "<script>alert(1)</script>"},
    {"id": "4", "status": "failed", "finishedAt": stamp(T0 + 2), "supersededBy": "x"},
]


def test_timeline_buckets_live_finished_items() -> None:
    timeline = bucket(finishes([shard(ITEMS)]), T0, T0 + 10, buckets=10)
    assert timeline.total("succeeded") == 2
    assert timeline.total("failed") == 1
    assert timeline.buckets[1]["succeeded"] == 1
    assert timeline.buckets[9] == {
        "succeeded": 1,
        "failed": 1,
        "skipped": 0,
    }


def test_page_escapes_and_hides_inputs() -> None:
    html = render(run(), [shard(ITEMS)], [EventRow(stamp(T0), "Normal", "Started", "<b>x</b>")], T0 + 20)
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;" in html
    assert "&lt;b&gt;x&lt;/b&gt;" in html
    assert "hunter2" not in html
    assert 'id="items-failed">1<' in html
    assert 'id="failed-count">1<' in html
    assert "http-equiv" not in html
    assert 'http-equiv="refresh"' in render(run("running"), [], [], T0 + 20)


def test_bearer_token_sources() -> None:
    assert bearer_token({"Authorization": "Bearer abc"}, {}, {}) == "abc"
    assert bearer_token({}, {"token": "c"}, {"token": "q"}) == "c"
    assert bearer_token({"Authorization": "Basic x"}, {}, {}) is None


class FakeAuthorizer:
    def authenticate(self, token: str) -> Caller | None:
        return Caller("alice") if token in ("good", "weak") else None

    def may_get_run(self, token: str, caller: Caller, namespace: str, name: str) -> bool:
        return token == "good"


def test_access_gate(monkeypatch: Any) -> None:
    monkeypatch.setattr(
        web_app, "load_run_page", lambda api, ns, name, store=None: RunPageData(run(), [shard(ITEMS)], [])
    )

    async def scenario() -> None:
        app = web_app.make_app(object(), CollectorRegistry())
        app[web_app.AUTHORIZER] = FakeAuthorizer()  # type: ignore[misc]
        async with TestClient(TestServer(app)) as http:
            assert (await http.get("/runs/ns/r")).status == 401
            assert (await http.get("/runs/ns/r", headers={"Authorization": "Bearer bad"})).status == 401
            assert (await http.get("/runs/ns/r", headers={"Authorization": "Bearer weak"})).status == 403
            ok = await http.get("/runs/ns/r", headers={"Authorization": "Bearer good"})
            assert ok.status == 200
            assert "Run ns/r" in await ok.text()
            moved = await http.get("/runs/ns/r?token=good", allow_redirects=False)
            assert moved.status == 303
            assert moved.headers["Location"] == "/runs/ns/r"
            assert "HttpOnly" in moved.headers["Set-Cookie"]
            assert (await http.get("/runs/ns/r", cookies={"token": "good"})).status == 200
            assert (await http.get("/runs/NS!/r")).status == 404
            assert (await http.get("/healthz")).status == 200
            assert (await http.get("/metrics")).status == 200

    asyncio.run(scenario())


def test_start_web_serves_metrics() -> None:
    async def scenario() -> None:
        settings = web_app.WebSettings(page_port=0)  # not the default 8083: tests run side by side
        runner = await web_app.start_web("127.0.0.1", 0, object(), CollectorRegistry(), settings)
        try:
            assert isinstance(runner, web.AppRunner)
            assert runner.addresses
        finally:
            await runner.cleanup()

    asyncio.run(scenario())
