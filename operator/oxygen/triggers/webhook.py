"""The webhook trigger: `POST /hooks/<namespace>/<workflow>` creates a workflow run from the body.

The caller presents `Authorization: Bearer <token>` (or `X-Oxygen-Token: <token>`), compared in
constant time with the key `triggers.webhook.tokenSecretRef` names in a Secret of the Workflow's
namespace (surrounding whitespace in the Secret value is ignored; an empty value accepts nothing).
The token is never logged. Answers (JSON, `{"error": …}` on failure; nothing is created unless 201):

    201  {"name", "uid", "namespace", "workflow"}   the run, trigger `webhook`, the body as spec.inputs
    400  the body is not JSON, or not a JSON object (an empty body means no inputs: {})
    401  the token is missing or wrong (or the Secret or key does not exist)
    404  no such Workflow, or it has no webhook trigger
    413  the body is larger than triggers.webhook.maxBodyBytes (Content-Length, or bytes read)

Order of checks: workflow (404), token (401), size (413), body (400): an unauthenticated caller's
body is never read.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import json
import logging
import re
from typing import Any

from aiohttp import web
from kubernetes.client.exceptions import ApiException

from oxygen.api.workflow import Workflow
from oxygen.kube.client import Kube
from oxygen.triggers.clock import SystemClock
from oxygen.triggers.runs import run_manifest
from oxygen.triggers.workflows import WorkflowReconciler, record_created

log = logging.getLogger("oxygen.triggers.webhook")

_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
RECONCILER: web.AppKey[WorkflowReconciler] = web.AppKey("reconciler", WorkflowReconciler)
_CHUNK = 64 * 1024


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status, headers={"Cache-Control": "no-store"})


def presented_token(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    token = request.headers.get("X-Oxygen-Token", "").strip()
    return token or None


def tokens_match(presented: str | None, expected: str | None) -> bool:
    if not presented or not expected:
        return False
    return hmac.compare_digest(presented.encode(), expected.encode())


def _secret_value(kube: Kube, namespace: str, name: str, key: str) -> str | None:
    try:
        secret = kube.core.read_namespaced_secret(name, namespace)
    except ApiException as err:
        if err.status == 404:
            return None
        raise
    encoded = (secret.data or {}).get(key)
    if encoded is None:
        return None
    try:
        return base64.b64decode(encoded).decode("utf-8").strip() or None
    except (binascii.Error, UnicodeDecodeError):
        return None


async def _read_body(request: web.Request, limit: int) -> bytes | None:
    """The body, or None when it is longer than `limit` bytes (reading stops there)."""
    if request.content_length is not None and request.content_length > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = await request.content.read(_CHUNK)
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)


def parse_inputs(raw: bytes) -> tuple[dict[str, Any] | None, str]:
    """The body as inputs, or (None, why it is malformed)."""
    if not raw.strip():
        return {}, ""
    try:
        value = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        return None, "the body is not UTF-8 text"
    except ValueError as err:
        return None, f"the body is not valid JSON: {err}"
    if not isinstance(value, dict):
        return None, f"the body must be a JSON object (the run's inputs), not {type(value).__name__}"
    return value, ""


async def hook(request: web.Request) -> web.Response:
    namespace, name = request.match_info["namespace"], request.match_info["workflow"]
    reconciler = request.app[RECONCILER]
    kube = reconciler.kube
    if not (_NAME.match(namespace) and _NAME.match(name)):
        return _error(404, f"no workflow {namespace}/{name}")
    try:
        body = await asyncio.to_thread(kube.get, "workflows", namespace, name)
    except ApiException as err:
        if err.status == 404:
            return _error(404, f"no workflow {namespace}/{name}")
        log.warning("webhook %s/%s: reading the workflow failed: %s", namespace, name, err.reason)
        return _error(503, "the workflow could not be read; try again")
    workflow = Workflow.model_validate(body)
    trigger = workflow.spec.triggers.webhook
    if trigger is None:
        return _error(404, f"workflow {namespace}/{name} has no webhook trigger")

    ref = trigger.token_secret_ref
    try:
        expected = await asyncio.to_thread(_secret_value, kube, namespace, ref.name, ref.key)
    except ApiException as err:
        log.warning("webhook %s/%s: reading Secret %s failed: %s", namespace, name, ref.name, err.reason)
        return _error(503, "the token could not be checked; try again")
    if expected is None:
        log.warning("webhook %s/%s: Secret %s has no usable key %r", namespace, name, ref.name, ref.key)
    if not tokens_match(presented_token(request), expected):
        return _error(401, "missing or wrong token (Authorization: Bearer <token> or X-Oxygen-Token)")

    raw = await _read_body(request, trigger.max_body_bytes)
    if raw is None:
        return _error(413, f"the body is larger than maxBodyBytes ({trigger.max_body_bytes} bytes)")
    inputs, problem = parse_inputs(raw)
    if inputs is None:
        return _error(400, problem)

    manifest = run_manifest(body, "webhook", inputs)
    try:
        created = await asyncio.to_thread(reconciler.create_run, namespace, manifest, None)
    except ApiException as err:
        log.warning("webhook %s/%s: creating the run failed: %s %s", namespace, name, err.status, err.reason)
        if err.status in (400, 422):
            return _error(400, f"the run was refused by the API server: {_api_message(err)}")
        return _error(503, "the run could not be created; try again")
    if created is None:  # generateName collisions are retried by the server; this is unexpected
        return _error(503, "the run could not be created; try again")
    try:
        await asyncio.to_thread(record_created, kube, namespace, name, 1)
    except ApiException as err:
        log.warning("webhook %s/%s: runsCreated not updated: %s", namespace, name, err.reason)
    meta = created["metadata"]
    return web.json_response(
        {"name": meta["name"], "uid": meta["uid"], "namespace": namespace, "workflow": name}, status=201
    )


def _api_message(err: ApiException) -> str:
    try:
        return str(json.loads(err.body or "{}").get("message") or err.reason)
    except ValueError:
        return str(err.reason)


async def healthz(_: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def make_app(reconciler: WorkflowReconciler) -> web.Application:
    # The body limit is enforced per workflow in `hook`; this is only aiohttp's own ceiling.
    app = web.Application(client_max_size=2 * 1024 * 1024)
    app[RECONCILER] = reconciler
    app.router.add_post("/hooks/{namespace}/{workflow}", hook)
    app.router.add_get("/healthz", healthz)
    return app


async def start_webhook_server(host: str, port: int, kube: Kube) -> web.AppRunner:
    """Serve the webhook on host:port; stop it with `await runner.cleanup()`."""
    runner = web.AppRunner(make_app(WorkflowReconciler(kube, SystemClock())), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    log.info("webhook server listening on %s:%d (POST /hooks/<namespace>/<workflow>)", host, port)
    return runner
