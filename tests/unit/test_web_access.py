"""The run page's front door without a cluster: the ?token= login, the cookie, and which listener
serves what (run pages never next to /metrics)."""

from __future__ import annotations

import asyncio
import socket
import urllib.error
import urllib.request
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry

from oxygen.web import app as web_app
from oxygen.web.auth import DEFAULT_AUDIENCE, Caller
from oxygen.web.data import RunPageData


class Reviews:
    """Stands in for the API server's verdicts: 'good' may see the run, 'weak' is a user who may not."""

    def __init__(self) -> None:
        self.reviewed: list[str] = []

    def authenticate(self, token: str) -> Caller | None:
        self.reviewed.append(token)
        return Caller("alice") if token in ("good", "weak") else None

    def may_get_run(self, token: str, caller: Caller, namespace: str, name: str) -> bool:
        return token == "good"


def page_data(*_: Any) -> RunPageData:
    run = {
        "metadata": {"name": "r", "namespace": "ns", "uid": "u"},
        "spec": {},
        "status": {"phase": "running"},
    }
    return RunPageData(run, [], [])


def test_settings_from_the_environment() -> None:
    default = web_app.WebSettings.from_env({})
    assert (default.token_audience, default.secure_cookie, default.page_port) == (
        DEFAULT_AUDIENCE,
        False,
        8083,
    )
    env = {
        "OXYGEN_WEB_TOKEN_AUDIENCE": "pages",
        "OXYGEN_WEB_SECURE_COOKIE": "true",
        "OXYGEN_WEB_PORT": "9000",
    }
    assert web_app.WebSettings.from_env(env) == web_app.WebSettings("pages", True, 9000)
    assert web_app.WebSettings.from_env({"OXYGEN_WEB_PORT": "off"}).page_port is None


@pytest.mark.parametrize("secure", [False, True])
def test_a_token_link_sets_a_cookie_only_once_the_token_may_see_the_run(
    monkeypatch: Any, secure: bool
) -> None:
    monkeypatch.setattr(web_app, "load_run_page", page_data)
    reviews = Reviews()

    async def scenario() -> None:
        app = web_app.make_app(object(), CollectorRegistry(), web_app.WebSettings(secure_cookie=secure))
        app[web_app.AUTHORIZER] = reviews  # type: ignore[misc]
        async with TestClient(TestServer(app)) as http:
            forged = await http.get("/runs/ns/r?token=made-up", allow_redirects=False)
            assert forged.status == 401 and "Set-Cookie" not in forged.headers
            assert f"--audience {DEFAULT_AUDIENCE}" in await forged.text()
            other = await http.get("/runs/ns/r?token=weak", allow_redirects=False)
            assert other.status == 403 and "Set-Cookie" not in other.headers
            moved = await http.get("/runs/ns/r?token=good", allow_redirects=False)
            assert moved.status == 303 and moved.headers["Location"] == "/runs/ns/r"
            cookie = moved.headers["Set-Cookie"]
            assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/runs/" in cookie
            assert ("Secure" in cookie) is secure
            assert (await http.get("/runs/ns/r", cookies={"token": "good"})).status == 200

    asyncio.run(scenario())
    assert reviews.reviewed[:3] == ["made-up", "weak", "good"]


def get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as reply:
            return int(reply.status)
    except urllib.error.HTTPError as err:
        return err.code


def test_run_pages_and_metrics_listen_apart(monkeypatch: Any) -> None:
    monkeypatch.setattr(web_app, "load_run_page", page_data)

    async def scenario() -> None:
        settings = web_app.WebSettings(page_port=0)
        runner = await web_app.start_web("127.0.0.1", 0, object(), CollectorRegistry(), settings)
        try:
            (metrics_address,) = runner.addresses
            (page_address,) = web_app.page_addresses(runner)
            metrics_url = f"http://127.0.0.1:{metrics_address[1]}"
            page_url = f"http://127.0.0.1:{page_address[1]}"
            codes = await asyncio.gather(
                *(
                    asyncio.to_thread(get, url)
                    for url in (
                        f"{metrics_url}/metrics",
                        f"{metrics_url}/healthz",
                        f"{metrics_url}/runs/ns/r",
                        f"{page_url}/metrics",
                        f"{page_url}/healthz",
                        f"{page_url}/runs/ns/r",
                    )
                )
            )
            assert codes == [200, 200, 404, 404, 200, 401]
        finally:
            await runner.cleanup()

    asyncio.run(scenario())


def test_run_pages_are_off_when_they_would_share_the_metrics_port() -> None:
    async def scenario() -> None:
        with socket.socket() as probe:  # a port free right now
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
        settings = web_app.WebSettings(page_port=port)
        runner = await web_app.start_web("127.0.0.1", port, object(), CollectorRegistry(), settings)
        try:
            assert web_app.page_addresses(runner) == []
        finally:
            await runner.cleanup()

    asyncio.run(scenario())
