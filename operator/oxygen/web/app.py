"""The operator's web server: /metrics, /healthz and the read-only run pages.

    runner = await start_web("0.0.0.0", 8080, api_client)   # from kopf's startup
    ...
    await runner.cleanup()

/metrics and /healthz are open (no secrets in them); /runs/{namespace}/{name} needs a bearer
token that Kubernetes accepts and that may `get` that Run (see `auth`).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from oxygen import metrics
from oxygen.web.auth import TOKEN_COOKIE, Authorizer, bearer_token
from oxygen.web.data import load_run_page
from oxygen.web.page import render

log = logging.getLogger("oxygen.web")

# DNS-1123 names: anything else cannot be a namespace or a Run, and is refused before any API call.
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
API_CLIENT: web.AppKey[Any] = web.AppKey("api_client", object)
AUTHORIZER: web.AppKey[Authorizer] = web.AppKey("authorizer", Authorizer)
REGISTRY: web.AppKey[CollectorRegistry] = web.AppKey("registry", CollectorRegistry)

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


async def run_page(request: web.Request) -> web.StreamResponse:
    namespace, name = request.match_info["namespace"], request.match_info["name"]
    if not (_NAME.match(namespace) and _NAME.match(name)):
        return _text(404, "404 Not Found")
    if request.query.get(TOKEN_COOKIE):
        # A link with ?token=…: keep the token in an HttpOnly cookie and take it out of the URL.
        response = web.HTTPSeeOther(location=request.rel_url.with_query(None).path, headers=SECURITY_HEADERS)
        response.set_cookie(
            TOKEN_COOKIE,
            request.query[TOKEN_COOKIE],
            httponly=True,
            samesite="Lax",
            path="/runs/",
            secure=request.secure,
        )
        raise response
    token = bearer_token(request.headers, request.cookies, {})
    if token is None:
        return _text(
            401, "401 Unauthorized: a Kubernetes bearer token is required", **{"WWW-Authenticate": "Bearer"}
        )
    authorizer = request.app[AUTHORIZER]
    try:
        caller = await asyncio.to_thread(authorizer.authenticate, token)
        if caller is None:
            return _text(
                401, "401 Unauthorized: the token was not accepted", **{"WWW-Authenticate": "Bearer"}
            )
        allowed = await asyncio.to_thread(authorizer.may_get_run, token, caller, namespace, name)
    except Exception as err:  # the API server is unreachable: fail closed
        log.warning("access review failed: %s", err.__class__.__name__)
        return _text(503, "503 Service Unavailable: could not check access")
    if not allowed:
        return _text(403, f"403 Forbidden: you may not get runs in namespace {namespace}")
    data = await asyncio.to_thread(load_run_page, request.app[API_CLIENT], namespace, name)
    if data is None:
        return _text(404, "404 Not Found: no such run")
    html = render(data.run, data.shards, data.events, time.time())
    return web.Response(text=html, content_type="text/html", charset="utf-8", headers=SECURITY_HEADERS)


def make_app(api_client: Any, registry: CollectorRegistry | None = None) -> web.Application:
    app = web.Application()
    app[API_CLIENT] = api_client
    app[AUTHORIZER] = Authorizer(api_client)
    app[REGISTRY] = registry if registry is not None else metrics.registry()
    app.router.add_get("/metrics", metrics_handler)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/runs/{namespace}/{name}", run_page)
    return app


async def start_web(
    host: str, port: int, api_client: Any, registry: CollectorRegistry | None = None
) -> web.AppRunner:
    """Serve the app on host:port; the caller keeps the runner and calls `await runner.cleanup()`."""
    runner = web.AppRunner(make_app(api_client, registry), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    log.info("web: serving /metrics and /runs on %s", ", ".join(str(a) for a in runner.addresses))
    return runner
