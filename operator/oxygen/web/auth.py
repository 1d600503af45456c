"""Who may see a run page: Kubernetes decides (TokenReview, then SubjectAccessReview).

The caller's bearer token comes from the Authorization header, or — for a browser — a `token`
cookie or query parameter. The token is reviewed by the API server for the run page's own audience
(`oxygen-run-page` by default, `OXYGEN_WEB_TOKEN_AUDIENCE`), so a token minted for something else
(the API server, another service) is refused; a user gets one with
`kubectl create token <serviceaccount> --audience oxygen-run-page`. The user it names must be
allowed to `get` the Run (`oxygen.dev` runs, in that namespace, by name). Answers are cached for a
short time by the token's hash (never the token itself), so an auto-refreshing page does not cost
two API calls a refresh.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from oxygen.api.common import GROUP
from oxygen.kube.reviews import review_access, review_token

TOKEN_COOKIE = "token"
DEFAULT_AUDIENCE = "oxygen-run-page"
CACHE_SECONDS = 30.0
CACHE_LIMIT = 4096


@dataclass(frozen=True)
class Caller:
    username: str
    uid: str = ""
    groups: tuple[str, ...] = ()
    extra: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


def bearer_token(
    headers: Mapping[str, str], cookies: Mapping[str, str], query: Mapping[str, str]
) -> str | None:
    header = headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    for source in (cookies, query):
        token = source.get(TOKEN_COOKIE, "").strip()
        if token:
            return token
    return None


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class Authorizer:
    """Blocking (the official client); the web app calls it from a thread."""

    def __init__(
        self,
        api_client: Any,
        ttl_seconds: float = CACHE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        audience: str = DEFAULT_AUDIENCE,
    ) -> None:
        self._api_client = api_client
        self._audience = audience
        self._ttl = ttl_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._callers: dict[str, tuple[float, Caller | None]] = {}
        self._decisions: dict[tuple[str, str, str], tuple[float, bool]] = {}

    def authenticate(self, token: str) -> Caller | None:
        key = _digest(token)
        cached = self._cached(self._callers, key)
        if cached is not None:
            known: Caller | None = cached[0]
            return known
        status = review_token(self._api_client, token, [self._audience])
        caller: Caller | None = None
        user = status.get("user") or {}
        # The API server names the audiences it checked; none of ours means "not for this page".
        if status.get("authenticated") and self._audience in (status.get("audiences") or []):
            caller = Caller(
                username=user.get("username") or "",
                uid=user.get("uid") or "",
                groups=tuple(user.get("groups") or ()),
                extra={k: tuple(v) for k, v in (user.get("extra") or {}).items()},
            )
        self._store(self._callers, key, caller)
        return caller

    def may_get_run(self, token: str, caller: Caller, namespace: str, name: str) -> bool:
        key = (_digest(token), namespace, name)
        cached = self._cached(self._decisions, key)
        if cached is not None:
            return bool(cached[0])
        spec: dict[str, Any] = {
            "user": caller.username,
            "groups": list(caller.groups),
            "resourceAttributes": {
                "namespace": namespace,
                "verb": "get",
                "group": GROUP,
                "resource": "runs",
                "name": name,
            },
        }
        if caller.uid:
            spec["uid"] = caller.uid
        if caller.extra:
            spec["extra"] = {k: list(v) for k, v in caller.extra.items()}
        allowed = review_access(self._api_client, spec)
        self._store(self._decisions, key, allowed)
        return allowed

    def _cached(self, table: dict[Any, tuple[float, Any]], key: Any) -> tuple[Any] | None:
        with self._lock:
            hit = table.get(key)
            if hit is None or hit[0] < self._clock():
                return None
            return (hit[1],)

    def _store(self, table: dict[Any, tuple[float, Any]], key: Any, value: Any) -> None:
        with self._lock:
            if len(table) >= CACHE_LIMIT:
                table.clear()
            table[key] = (self._clock() + self._ttl, value)
