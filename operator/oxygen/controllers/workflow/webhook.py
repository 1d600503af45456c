"""The webhook trigger: `POST /hooks/<namespace>/<workflow>` creates a workflow run from the body.

The caller presents `Authorization: Bearer <token>` (or `X-Oxygen-Token: <token>`), compared in
constant time with the key `triggers.webhook.tokenSecretRef` names in a Secret of the Workflow's
namespace (surrounding whitespace in the Secret value is ignored; an empty value accepts nothing).
The token is never logged. Answers (JSON, `{"error": …}` on failure; nothing is created unless 201):

    201  {"name", "uid", "namespace", "workflow"}   the run, trigger `webhook`, the body as spec.inputs
    400  the body is not JSON, or not a JSON object (an empty body means no inputs: {})
    401  not authenticated: the token is missing or wrong, or there is no such Workflow, or it has no
         webhook trigger, or its Secret or key does not exist: one answer for all, so a caller without
         the token learns nothing about which workflows exist
    413  the body is larger than triggers.webhook.maxBodyBytes (Content-Length, or bytes read)
    429  this workflow's rate limit is spent (Retry-After says when to try again)
    503  the Workflow or Secret could not be read, or the run not created

Order of checks: authentication (401), rate limit (429), size (413), body (400): an unauthenticated
caller's body is never read. The Workflow and the Secret are cached for a few seconds and calls are
rate limited per workflow (see webhook_guard.py): a rotated token takes effect within the cache TTL.
The operator reads the Secret with `get` of that one name only (no list or watch of Secrets).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import json
import logging
import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from oxygen.api.workflow import WebhookTrigger, Workflow
from oxygen.controllers.workflow.apply import WorkflowApplier
from oxygen.controllers.workflow.runs import generate_name, run_manifest
from oxygen.controllers.workflow.webhook_guard import RateLimiter, TtlCache, WebhookSettings, retry_after
from oxygen.kube.client import ApiException, Kube

log = logging.getLogger("oxygen.workflow.webhook")

_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
_CHUNK = 64 * 1024
# The API server's own alphabet for generateName suffixes (no vowels: no words).
_SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
UNAUTHENTICATED = (
    "not authenticated: missing or wrong token (Authorization: Bearer <token> or X-Oxygen-Token), "
    "or no webhook for this path"
)


class Unavailable(Exception):
    """The Workflow or its Secret could not be read (not: does not exist)."""


@dataclass
class Hooks:
    """The webhook's state: the API access, the caches and the rate limiter."""

    applier: WorkflowApplier
    workflows: TtlCache[dict[str, Any]]
    secrets: TtlCache[dict[str, str]]
    limiter: RateLimiter

    @classmethod
    def create(cls, kube: Kube, settings: WebhookSettings) -> Hooks:
        clock = time.monotonic
        return cls(
            WorkflowApplier(kube),
            TtlCache(settings.cache_seconds, clock),
            TtlCache(settings.cache_seconds, clock),
            RateLimiter(settings.rate_per_second, settings.burst, clock),
        )

    @property
    def kube(self) -> Kube:
        return self.applier.kube

    def workflow(self, namespace: str, name: str) -> dict[str, Any] | None:
        hit, body = self.workflows.get((namespace, name))
        if hit:
            return body
        try:
            body = self.kube.get("workflows", namespace, name)
        except ApiException as err:
            if err.status != 404:
                raise Unavailable(f"reading the workflow failed: {err.reason}") from err
            body = None
        self.workflows.put((namespace, name), body)
        return body

    def secret_value(self, namespace: str, name: str, key: str) -> str | None:
        hit, data = self.secrets.get((namespace, name))
        if not hit:
            data = _secret_data(self.kube, namespace, name)
            self.secrets.put((namespace, name), data)
        encoded = (data or {}).get(key)
        if encoded is None:
            return None
        try:
            return base64.b64decode(encoded).decode("utf-8").strip() or None
        except (binascii.Error, UnicodeDecodeError):
            return None


HOOKS: web.AppKey[Hooks] = web.AppKey("hooks", Hooks)


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
    """Constant time in the token's content; a missing expected token is compared too (and fails)."""
    ok = hmac.compare_digest((presented or "").encode(), (expected or "\x00").encode())
    return ok and bool(presented) and bool(expected)


def _secret_data(kube: Kube, namespace: str, name: str) -> dict[str, str] | None:
    """The Secret's data (base64 values), None when it does not exist: one `get`, nothing listed."""
    try:
        secret = kube.core.read_namespaced_secret(name, namespace)
    except ApiException as err:
        if err.status == 404:
            return None
        raise Unavailable(f"reading Secret {name} failed: {err.reason}") from err
    return dict(secret.data or {})


def authenticate(
    hooks: Hooks, namespace: str, name: str, presented: str | None
) -> tuple[dict[str, Any], WebhookTrigger] | None:
    """The Workflow and its webhook trigger when `presented` is its token; None otherwise, whatever
    the reason (blocking: call it from a thread; raises Unavailable)."""
    if not (_NAME.match(namespace) and _NAME.match(name)):
        tokens_match(presented, None)
        return None
    body = hooks.workflow(namespace, name)
    trigger = Workflow.model_validate(body).spec.triggers.webhook if body is not None else None
    expected = None
    if body is not None and trigger is not None:
        ref = trigger.token_secret_ref
        expected = hooks.secret_value(namespace, ref.name, ref.key)
        if expected is None:
            log.warning("webhook %s/%s: Secret %s has no usable key %r", namespace, name, ref.name, ref.key)
    if not tokens_match(presented, expected) or body is None or trigger is None:
        return None
    return body, trigger


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


def webhook_run_name(workflow_name: str) -> str:
    """`<workflow>-<5 random characters>`, chosen here (not by generateName) so the name can be
    recorded as an intent before the create (see managed.py)."""
    return generate_name(workflow_name) + "".join(secrets.choice(_SUFFIX_ALPHABET) for _ in range(5))


def create_and_record(hooks: Hooks, body: dict[str, Any], manifest: dict[str, Any]) -> dict[str, Any] | None:
    """Intent, create, record (blocking). None when the name was taken (the intent is dropped)."""
    meta = body["metadata"]
    namespace, name, run_name = meta["namespace"], meta["name"], manifest["metadata"]["name"]
    hooks.applier.intend(namespace, name, [run_name])
    created = hooks.applier.create_run(namespace, manifest, None)
    if created is None:
        hooks.applier.write_status(namespace, name, lambda cur: _without_intent(cur, run_name))
        return None
    try:
        hooks.applier.record_created(namespace, name, {run_name: created["metadata"]["uid"]})
    except ApiException as err:  # the intent stays: the workflow's daemon adopts the run
        log.warning("webhook %s/%s: run %s not recorded yet: %s", namespace, name, run_name, err.reason)
    return created


def _without_intent(status: Mapping[str, Any], run_name: str) -> dict[str, Any]:
    entries = status.get("managedRuns") or []
    return {"managedRuns": [e for e in entries if (e.get("name"), e.get("uid") or "") != (run_name, "")]}


async def hook(request: web.Request) -> web.Response:
    namespace, name = request.match_info["namespace"], request.match_info["workflow"]
    hooks = request.app[HOOKS]
    try:
        found = await asyncio.to_thread(authenticate, hooks, namespace, name, presented_token(request))
    except Unavailable as err:
        log.warning("webhook %s/%s: %s", namespace, name, err)
        return _error(503, "the token could not be checked; try again")
    if found is None:
        return _error(401, UNAUTHENTICATED)
    body, trigger = found

    wait = hooks.limiter.take((namespace, name))
    if wait > 0:
        response = _error(429, f"rate limit of workflow {namespace}/{name} reached; retry later")
        response.headers["Retry-After"] = retry_after(wait)
        return response

    raw = await _read_body(request, trigger.max_body_bytes)
    if raw is None:
        return _error(413, f"the body is larger than maxBodyBytes ({trigger.max_body_bytes} bytes)")
    inputs, problem = parse_inputs(raw)
    if inputs is None:
        return _error(400, problem)

    manifest = run_manifest(body, "webhook", inputs, name=webhook_run_name(name))
    try:
        created = await asyncio.to_thread(create_and_record, hooks, body, manifest)
    except ApiException as err:
        log.warning("webhook %s/%s: creating the run failed: %s %s", namespace, name, err.status, err.reason)
        if err.status in (400, 422):
            return _error(400, f"the run was refused by the API server: {_api_message(err)}")
        return _error(503, "the run could not be created; try again")
    if created is None:  # a random name taken: vanishingly rare; the caller may simply retry
        return _error(503, "the run could not be created; try again")
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


def make_app(hooks: Hooks) -> web.Application:
    # The body limit is enforced per workflow in `hook`; this is only aiohttp's own ceiling.
    app = web.Application(client_max_size=2 * 1024 * 1024)
    app[HOOKS] = hooks
    app.router.add_post("/hooks/{namespace}/{workflow}", hook)
    app.router.add_get("/healthz", healthz)
    return app


async def start_webhook_server(
    host: str, port: int, kube: Kube, settings: WebhookSettings | None = None
) -> web.AppRunner:
    """Serve the webhook on host:port; stop it with `await runner.cleanup()`."""
    hooks = Hooks.create(kube, settings or WebhookSettings.from_env())
    runner = web.AppRunner(make_app(hooks), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    log.info("webhook server listening on %s:%d (POST /hooks/<namespace>/<workflow>)", host, port)
    return runner
