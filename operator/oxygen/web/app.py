"""The operator's web servers: /metrics and /healthz on one listener, the run pages on another.

    runner = await start_web("0.0.0.0", 8080, api_client)   # from kopf's startup
    ...
    await runner.cleanup()                                  # stops both listeners

/metrics and /healthz are open (no secrets in them) and stay on the metrics port (OXYGEN_METRICS_PORT,
8080), which Prometheus scrapes inside the cluster. /runs/{namespace}/{name} is on its own port
(OXYGEN_WEB_PORT, 8083), the one a platform team exposes to people: /metrics is not served there.
A run page needs a bearer token for the page's audience that may `get` that Run (see `auth`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from oxygen import metrics
from oxygen.itemstore.store import ItemStore
from oxygen.web.auth import DEFAULT_AUDIENCE, TOKEN_COOKIE, Authorizer, Caller, bearer_token
from oxygen.web.data import load_run_page
from oxygen.web.page import render

log = logging.getLogger("oxygen.web")

# DNS-1123 names: anything else cannot be a namespace or a Run, and is refused before any API call.
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
PAGE_PORT_ENV = "OXYGEN_WEB_PORT"
ITEM_STORE_ENV = "OXYGEN_ITEM_STORE"
DEFAULT_PAGE_PORT = 8083
_OFF = ("", "0", "off", "none")


@dataclass(frozen=True)
class WebSettings:
    """The run pages' settings, read once from the operator's environment."""

    # TokenReview audience: only tokens minted for the run page are accepted.
    token_audience: str = DEFAULT_AUDIENCE
    # Mark the token cookie Secure (set it when the page is served over TLS, e.g. behind an Ingress).
    secure_cookie: bool = False
    # The run pages' own port; None: no run pages.
    page_port: int | None = DEFAULT_PAGE_PORT
    # The operator's item store (its DSN): runs whose items live there are shown from it.
    item_store: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> WebSettings:
        env = os.environ if env is None else env
        port = env.get(PAGE_PORT_ENV, str(DEFAULT_PAGE_PORT)).strip().lower()
        return cls(
            token_audience=env.get("OXYGEN_WEB_TOKEN_AUDIENCE") or DEFAULT_AUDIENCE,
            secure_cookie=env.get("OXYGEN_WEB_SECURE_COOKIE", "").strip().lower()
            in ("1", "true", "yes", "on"),
            page_port=None if port in _OFF else int(port),
            item_store=env.get(ITEM_STORE_ENV) or None,
        )


API_CLIENT: web.AppKey[Any] = web.AppKey("api_client", object)
SETTINGS: web.AppKey[WebSettings] = web.AppKey("settings", WebSettings)
PAGE_RUNNER: web.AppKey[web.AppRunner] = web.AppKey("page_runner", web.AppRunner)
AUTHORIZER: web.AppKey[Authorizer] = web.AppKey("authorizer", Authorizer)
REGISTRY: web.AppKey[CollectorRegistry] = web.AppKey("registry", CollectorRegistry)
ITEM_STORE: web.AppKey[ItemStore] = web.AppKey("item_store", ItemStore)

SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def _text(status: int, message: str, **headers: str) -> web.Response:
    return web.Response(
        status=status, text=message + "\n", content_type="text/plain", headers={**SECURITY_HEADERS, **headers}
    )


async def metrics_handler(request: web.Request) -> web.Response:
    body = generate_latest(request.app[REGISTRY])
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def healthz(_: web.Request) -> web.Response:
    return web.Response(text="ok\n", content_type="text/plain")


def _unauthorized(request: web.Request, message: str) -> web.Response:
    audience = request.app[SETTINGS].token_audience
    # The way in, since a link followed from another site arrives without the (SameSite=Strict) cookie.
    how = (
        f"get a token with `kubectl create token <serviceaccount> --audience {audience}` and open "
        "this page once with ?token=<token>, or send it as `Authorization: Bearer <token>`"
    )
    return _text(401, f"401 Unauthorized: {message}; {how}", **{"WWW-Authenticate": "Bearer"})


async def _admit(request: web.Request, token: str, namespace: str) -> web.Response | None:
    """None when the token's user may get this Run; else the answer to give (401, 403, 503)."""
    name = request.match_info["name"]
    authorizer = request.app[AUTHORIZER]
    try:
        caller: Caller | None = await asyncio.to_thread(authorizer.authenticate, token)
        if caller is None:
            return _unauthorized(request, "the token was not accepted for this page's audience")
        allowed = await asyncio.to_thread(authorizer.may_get_run, token, caller, namespace, name)
    except Exception as err:  # the API server is unreachable: fail closed
        log.warning("access review failed: %s", err.__class__.__name__)
        return _text(503, "503 Service Unavailable: could not check access")
    if not allowed:
        return _text(403, f"403 Forbidden: you may not get runs in namespace {namespace}")
    return None


async def run_page(request: web.Request) -> web.StreamResponse:
    namespace, name = request.match_info["namespace"], request.match_info["name"]
    if not (_NAME.match(namespace) and _NAME.match(name)):
        return _text(404, "404 Not Found")
    offered = request.query.get(TOKEN_COOKIE, "").strip()
    if offered:
        # A link with ?token=…: only a token that may see this run becomes a cookie (a link with
        # someone else's or a made-up token must not log the browser in), then it leaves the URL.
        refused = await _admit(request, offered, namespace)
        if refused is not None:
            return refused
        response = web.HTTPSeeOther(location=request.rel_url.with_query(None).path, headers=SECURITY_HEADERS)
        response.set_cookie(
            TOKEN_COOKIE,
            offered,
            httponly=True,
            samesite="Strict",
            path="/runs/",
            secure=request.secure or request.app[SETTINGS].secure_cookie,
        )
        raise response
    token = bearer_token(request.headers, request.cookies, {})
    if token is None:
        return _unauthorized(request, "a Kubernetes bearer token is required")
    refused = await _admit(request, token, namespace)
    if refused is not None:
        return refused
    store = request.app.get(ITEM_STORE)
    data = await asyncio.to_thread(load_run_page, request.app[API_CLIENT], namespace, name, store)
    if data is None:
        return _text(404, "404 Not Found: no such run")
    html = render(data.run, data.shards, data.events, time.time(), data.stored)
    return web.Response(text=html, content_type="text/html", charset="utf-8", headers=SECURITY_HEADERS)


def make_app(
    api_client: Any,
    registry: CollectorRegistry | None = None,
    settings: WebSettings | None = None,
    *,
    metrics_routes: bool = True,
    page_routes: bool = True,
) -> web.Application:
    """The app with /healthz and the routes asked for (both by default; `start_web` splits them)."""
    settings = settings if settings is not None else WebSettings.from_env()
    app = web.Application()
    app[API_CLIENT] = api_client
    app[SETTINGS] = settings
    app[AUTHORIZER] = Authorizer(api_client, audience=settings.token_audience)
    app[REGISTRY] = registry if registry is not None else metrics.registry()
    if settings.item_store:
        # One connection per page thread (ItemStore keeps one per thread); closed with the app.
        app[ITEM_STORE] = ItemStore(settings.item_store)
    app.router.add_get("/healthz", healthz)
    if metrics_routes:
        app.router.add_get("/metrics", metrics_handler)
    if page_routes:
        app.router.add_get("/runs/{namespace}/{name}", run_page)
    return app


async def _start_pages(host: str, api_client: Any, settings: WebSettings) -> web.AppRunner | None:
    if settings.page_port is None:
        log.info("web: run pages are off (%s)", PAGE_PORT_ENV)
        return None
    runner = web.AppRunner(make_app(api_client, None, settings, metrics_routes=False), access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, settings.page_port).start()
    except OSError as err:  # a taken port must not cost the operator its metrics; the log says why
        log.error("web: run pages not served on port %s: %s", settings.page_port, err)
        await runner.cleanup()
        return None
    log.info("web: serving /runs on %s", ", ".join(str(a) for a in runner.addresses))
    return runner


async def start_web(
    host: str,
    port: int,
    api_client: Any,
    registry: CollectorRegistry | None = None,
    settings: WebSettings | None = None,
) -> web.AppRunner:
    """/metrics and /healthz on host:port, the run pages on `settings.page_port` (OXYGEN_WEB_PORT).

    The caller keeps the runner and calls `await runner.cleanup()`, which stops both listeners;
    `page_addresses(runner)` says where the run pages are.
    """
    settings = settings if settings is not None else WebSettings.from_env()
    if port and settings.page_port == port:
        # One port would put /metrics where people are sent: refuse, keep the metrics.
        log.error("web: %s must differ from the metrics port %d; run pages are off", PAGE_PORT_ENV, port)
        settings = WebSettings(settings.token_audience, settings.secure_cookie, page_port=None)
    pages = await _start_pages(host, api_client, settings)
    app = make_app(api_client, registry, settings, page_routes=False)
    if pages is not None:
        app[PAGE_RUNNER] = pages

        async def stop_pages(_: web.Application) -> None:
            await pages.cleanup()

        app.on_cleanup.append(stop_pages)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except OSError:
        await runner.cleanup()
        raise
    log.info("web: serving /metrics on %s", ", ".join(str(a) for a in runner.addresses))
    return runner


def page_addresses(runner: web.AppRunner) -> list[Any]:
    """Where `start_web`'s run pages listen (empty when they are off)."""
    pages = runner.app.get(PAGE_RUNNER) if runner.app is not None else None
    return list(pages.addresses) if pages is not None else []
