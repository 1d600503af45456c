"""The operator's settings, read once at startup (environment, set by the chart or `oxygen operator`).

Kept in kopf's `memo`; nothing else in the operator reads `os.environ` for these.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from oxygen.execution.jobs import DEFAULT_WORKER_RESOURCES, WorkerDefaults

DEFAULT_MAX_PARALLELISM = 100
# A worker Job that runs longer than this is stopped by Kubernetes (its shard's items then fail).
DEFAULT_WORKER_DEADLINE_SECONDS = 24 * 3600


class SettingsError(ValueError):
    """A setting's value cannot be used (the operator refuses to start, saying which)."""


@dataclass(frozen=True)
class OperatorSettings:
    web_base_url: str = "http://localhost:8083"
    worker: WorkerDefaults = field(default_factory=WorkerDefaults)
    # The admin's cap on a Run's spec.parallelism (shard Jobs at once).
    max_parallelism: int = DEFAULT_MAX_PARALLELISM
    # The PostgreSQL item store's DSN (`--item-store`, OXYGEN_ITEM_STORE); None: items live in etcd.
    item_store: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> OperatorSettings:
        env = os.environ if env is None else env
        return cls(
            web_base_url=env.get("OXYGEN_WEB_BASE_URL") or cls.web_base_url,
            worker=_worker(env),
            max_parallelism=_positive_int(env, "OXYGEN_MAX_PARALLELISM", DEFAULT_MAX_PARALLELISM),
            item_store=env.get("OXYGEN_ITEM_STORE", "").strip() or None,
        )


def _worker(env: Mapping[str, str]) -> WorkerDefaults:
    """The chart's worker values, passed to the operator as environment variables (JSON)."""
    defaults = WorkerDefaults()
    return WorkerDefaults(
        image=env.get("OXYGEN_WORKER_IMAGE") or defaults.image,
        image_pull_policy=env.get("OXYGEN_WORKER_IMAGE_PULL_POLICY") or defaults.image_pull_policy,
        resources=_json(env, "OXYGEN_WORKER_RESOURCES", DEFAULT_WORKER_RESOURCES),
        node_selector=_json(env, "OXYGEN_WORKER_NODE_SELECTOR", {}),
        tolerations=_json(env, "OXYGEN_WORKER_TOLERATIONS", []),
        service_account=env.get("OXYGEN_WORKER_SERVICE_ACCOUNT") or None,
        active_deadline_seconds=_positive_int(
            env, "OXYGEN_WORKER_DEADLINE_SECONDS", DEFAULT_WORKER_DEADLINE_SECONDS
        ),
        # Pod deaths a shard's Job absorbs before it fails (0: the first death fails it).
        backoff_limit=_positive_int(env, "OXYGEN_WORKER_BACKOFF_LIMIT", defaults.backoff_limit, least=0),
    )


def _json(env: Mapping[str, str], name: str, default: Any) -> Any:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return json.loads(raw)
    except json.JSONDecodeError as err:
        raise SettingsError(f"{name} is not JSON: {err}") from None


def _positive_int(env: Mapping[str, str], name: str, default: int, least: int = 1) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a whole number, got {raw!r}") from None
    if value < least:
        raise SettingsError(f"{name} must be at least {least}, got {value}")
    return value
