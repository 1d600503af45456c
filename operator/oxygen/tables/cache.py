"""Never pay twice: successful calls by producer and inputs, in the Table's database
(`oxygen.call_cache`, one row per namespace, producer and inputs; the latest call wins).

The key is the SHA-256 of the inputs as canonical JSON (sorted keys, no spaces), so two items with
the same inputs share a key whatever order their keys were written in. The producer is who answers
the call (`producer_identity`), not the name a run gives it in its summaries: a Provider by its
name, an inline producer by what it calls, so two inline producers that call different things never
share outputs, whatever their names, and none fills a Provider's cache.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from psycopg.types.json import Jsonb

from oxygen.api.run import Producer
from oxygen.tables import schema
from oxygen.tables.connect import connect

# Keys asked for in one statement.
LOOKUP_BATCH = 10_000


# Fields of an inline producer that do not change what a call answers: its summary name, its price,
# its cache, how many calls run at once, how long one may take, how big an answer may be.
_NOT_IDENTITY = frozenset(
    {"provider", "costPerItem", "cache", "concurrency", "timeoutSeconds", "maxOutputBytes", "retry"}
)


def key_of(inputs: Any) -> str:
    canonical = json.dumps(inputs, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _identity_config(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _identity_config(v) for k, v in value.items() if k not in _NOT_IDENTITY}
    if isinstance(value, list):
        return [_identity_config(v) for v in value]
    return value


def producer_identity(producer: Producer) -> str:
    """Whose calls a cache entry holds: the Provider's name for a run that names one (providerRef),
    else `producer:` and the SHA-256 of the inline producer's config (builtin, http URL and headers'
    Secret, command, waterfall steps), which no Provider name can equal (names have no colon)."""
    if producer.provider_ref is not None:
        return producer.provider_ref.name
    return "producer:" + key_of(_identity_config(producer.wire()))


@dataclass(frozen=True)
class Call:
    """A successful call to remember."""

    inputs: Any
    outputs: Any
    run_uid: str
    item_id: str
    finished_at: str | None


def lookup(dsn: str, namespace: str, provider: str, keys: Iterable[str], ttl_seconds: int) -> dict[str, Any]:
    """key → outputs of the calls `provider` (a producer_identity) made within the TTL."""
    wanted = sorted(set(keys))
    found: dict[str, Any] = {}
    with connect(dsn) as conn:
        schema.ensure(conn, dsn)
        for start in range(0, len(wanted), LOOKUP_BATCH):
            rows = conn.execute(
                "select key, outputs from oxygen.call_cache where namespace = %s and provider = %s "
                "and key = any(%s) and called_at > now() - make_interval(secs => %s)",
                (namespace, provider, wanted[start : start + LOOKUP_BATCH], ttl_seconds),
            ).fetchall()
            found.update({str(key): outputs for key, outputs in rows})
    return found


def remember(conn: Any, namespace: str, provider: str, calls: list[Call]) -> None:
    """Records these calls of `provider` (a producer_identity), inside the caller's transaction."""
    if not calls:
        return
    with conn.cursor() as cur:
        cur.executemany(
            "insert into oxygen.call_cache as k "
            "(namespace, provider, key, inputs, outputs, run_uid, item_id, called_at) "
            "values (%s, %s, %s, %s, %s, %s, %s, coalesce(%s::timestamptz, now())) "
            "on conflict (namespace, provider, key) do update set inputs = excluded.inputs, "
            "outputs = excluded.outputs, run_uid = excluded.run_uid, item_id = excluded.item_id, "
            "called_at = excluded.called_at where k.called_at < excluded.called_at",
            [
                (
                    namespace,
                    provider,
                    key_of(c.inputs),
                    Jsonb(c.inputs),
                    Jsonb(c.outputs),
                    c.run_uid,
                    c.item_id,
                    c.finished_at,
                )
                for c in calls
            ],
        )
