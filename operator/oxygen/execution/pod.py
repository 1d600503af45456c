"""The worker pod's shell around `ShardExecutor`: read the RunShard, patch its status, signals, exit codes.

Its only API calls are a `get` of its own RunShard and merge patches of that RunShard's status, through
`oxygen.kube` (configuration from the pod's environment, per-request timeouts, retries of transient
failures). Each producer gets only its own header variables, and every header value the pod holds is
redacted from what is written.
"""

from __future__ import annotations

import functools
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Final, TypeVar

from pydantic import ValidationError

from oxygen.api.common import GROUP, VERSION
from oxygen.api.labels import ANNOTATION_RATE_SHARE
from oxygen.api.runshard import RunShard, RunShardStatus
from oxygen.execution.producers import make_producer, run_env, secret_values, step_env
from oxygen.execution.ratelimit import limiter_for
from oxygen.execution.redaction import Redactor
from oxygen.execution.shard_items import needs_execution
from oxygen.execution.shard_ledger import ShardLedger
from oxygen.execution.store_shard import load
from oxygen.execution.worker import (
    DEFAULT_FLUSH_INTERVAL,
    DEFAULT_MAX_STATUS_BYTES,
    DEFAULT_STOP_GRACE_SECONDS,
    ShardExecutor,
)
from oxygen.itemstore.store import ItemStoreError
from oxygen.kube.client import Kube
from oxygen.kube.failures import ConfigError, client_for_process, describe_error, is_transient
from oxygen.status.shard import CANNOT_START, shard_phase, summarize

log = logging.getLogger("oxygen.worker")

PLURAL: Final = "runshards"
EXIT_OK: Final = 0
EXIT_ERROR: Final = 1
EXIT_SIGINT: Final = 130
EXIT_SIGTERM: Final = 143


class ShardApiError(Exception):
    """The API server refused or stayed unreachable: the worker cannot do its job."""


T = TypeVar("T")
# (connect, read) seconds per request: a worker must notice a vanished API server well within its pod's life.
WORKER_TIMEOUT: Final = (5.0, 30.0)
# A worker rides out an API server that is down or failing transiently for this long: it keeps calling
# the provider (results stay in memory, inside the shard's status byte budget) and writes once the
# server is back. Past it the pod exits and the Job replaces it, as for any other dead worker.
API_OUTAGE_SECONDS: Final = 600.0
# Retries of a transient failure back off exponentially up to this pause.
MAX_BACKOFF_SECONDS: Final = 5.0


class ShardReplaced(ShardApiError):
    """The RunShard of this name is not the one the pod was started for (deleted, or re-created by a
    namesake Run): the worker must not write a single result into it."""


class ShardClient:
    """The only API calls a worker makes: get its own RunShard, merge-patch its status.

    Every write is bound to the shard's uid (the one the Job was made for, `OXYGEN_SHARD_UID`, else
    the one first read) and to the resourceVersion this worker last saw: the API server refuses a
    patch of a newer object with 409, the worker re-reads, and writes again only if the uid is
    still its own. A status patch's `metadata.uid` alone is not checked by the API server (the status
    strategy keeps the stored metadata), hence the resourceVersion.
    """

    def __init__(
        self,
        kube: Kube,
        namespace: str,
        name: str,
        *,
        uid: str | None = None,
        attempts: int = 5,
        backoff_seconds: float = 0.5,
        outage_seconds: float = API_OUTAGE_SECONDS,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._kube = kube
        self.namespace = namespace
        self.name = name
        self.uid = uid or None
        self._resource_version: str | None = None
        # Conflicts (409) are re-read at most this often per write.
        self._attempts = attempts
        self._backoff = backoff_seconds
        self._outage = outage_seconds
        self._sleep = sleep
        self._clock = clock

    def get(self) -> RunShard:
        raw = self._retry("read", lambda: self._kube.get(PLURAL, self.namespace, self.name))
        self._adopt(raw)
        return RunShard.model_validate(raw)

    def _adopt(self, raw: Mapping[str, Any]) -> None:
        meta = raw.get("metadata") or {}
        uid = meta.get("uid")
        if self.uid is None:
            self.uid = uid
        elif uid != self.uid:
            raise ShardReplaced(
                f"RunShard {self.namespace}/{self.name} is now uid {uid}, not {self.uid} this pod was "
                "started for: it belongs to another run; exiting without writing"
            )
        self._resource_version = meta.get("resourceVersion")

    def rate_share(self) -> str | None:
        """The operator's rate share annotation of this shard (the pod cannot write metadata).

        Read every second or so, hence a metadata-only GET: the whole shard can be a megabyte. A share
        on a namesake shard (another run's) is not ours to keep to: None, the last share stays."""
        meta = self._kube.get_metadata(PLURAL, self.namespace, self.name)
        if self.uid is None or meta.get("uid") != self.uid:
            return None
        annotations: dict[str, str] = meta.get("annotations") or {}
        return annotations.get(ANNOTATION_RATE_SHARE)

    def patch_status(self, status: RunShardStatus) -> None:
        body = status.wire()
        # Merge patch keeps absent keys: null clears what an earlier pod left (its stop message).
        for key in ("message", "finishedAt"):
            body.setdefault(key, None)
        for _ in range(self._attempts):
            patch = {
                "metadata": {"uid": self.uid, "resourceVersion": self._resource_version},
                "status": body,
            }
            try:
                result = self._retry("patch the status of", functools.partial(self._patch, patch))
            except ShardApiError as exc:
                if not _is_conflict(exc.__cause__):
                    raise
                # Someone else wrote the shard (or it is a namesake): re-read, check it is still ours.
                self.get()
                continue
            self._adopt(result)
            return
        raise ShardApiError(f"RunShard {self.namespace}/{self.name}: status kept conflicting")

    def _patch(self, body: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self._kube.custom.patch_namespaced_custom_object_status(
            GROUP, VERSION, self.namespace, PLURAL, self.name, body
        )
        return result

    def _retry(self, what: str, call: Callable[[], T]) -> T:
        """Retry transient failures (throttling, 5xx, a refused or dropped connection) for up to
        `outage_seconds` since the first one; anything else is final at once."""
        first_failure: float | None = None
        attempt = 0
        while True:
            try:
                return call()
            except Exception as exc:
                attempt += 1
                text = f"cannot {what} RunShard {self.namespace}/{self.name}: {describe_error(exc)}"
                if _is_gone(exc) and self.uid is not None:
                    raise ShardReplaced(f"{text}: the shard was deleted; exiting without writing") from exc
                now = self._clock()
                first_failure = now if first_failure is None else first_failure
                if not is_transient(exc):
                    raise ShardApiError(text) from exc
                if now - first_failure >= self._outage:
                    raise ShardApiError(f"{text} (for {now - first_failure:.0f}s, giving up)") from exc
                # One line per retry early on, then one every ~10 retries: an outage must not flood the log.
                if attempt <= 3 or attempt % 10 == 0:
                    log.warning("%s (attempt %d, retrying for up to %gs)", text, attempt, self._outage)
                self._sleep(min(MAX_BACKOFF_SECONDS, self._backoff * 2.0 ** min(attempt - 1, 10)))


def _status_of(exc: BaseException | None) -> int | None:
    status = getattr(exc, "status", None)
    return status if isinstance(status, int) else None


def _is_conflict(exc: BaseException | None) -> bool:
    return _status_of(exc) == 409


def _is_gone(exc: BaseException | None) -> bool:
    return _status_of(exc) == 404


@contextmanager
def stop_on_signals(stop: threading.Event) -> Iterator[list[int]]:
    """SIGTERM (pod deletion, Job suspend) and SIGINT end the run gracefully; yields which came."""
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield received
        return

    def handler(signum: int, _frame: object) -> None:
        received.append(signum)
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield received
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def run_worker(
    namespace: str,
    shard: str,
    *,
    flush_interval: float = DEFAULT_FLUSH_INTERVAL,
    stop_grace_seconds: float = DEFAULT_STOP_GRACE_SECONDS,
    env: Mapping[str, str] | None = None,
    kube: Kube | None = None,
    stop: threading.Event | None = None,
) -> int:
    """Execute one RunShard; the process exit code (0 done, 143 stopped by SIGTERM, 1 API error)."""
    env = os.environ if env is None else env
    stop = stop if stop is not None else threading.Event()
    with stop_on_signals(stop) as received:
        return _run(namespace, shard, flush_interval, stop_grace_seconds, env, kube, stop, received)


def _run(
    namespace: str,
    shard: str,
    flush_interval: float,
    stop_grace_seconds: float,
    env: Mapping[str, str],
    kube: Kube | None,
    stop: threading.Event,
    received: list[int],
) -> int:
    try:
        client = ShardClient(
            kube if kube is not None else _kube(env), namespace, shard, uid=env.get("OXYGEN_SHARD_UID")
        )
        try:
            # With an item store the shard's items are rows: read once, results written back in batches.
            resource, flush, status_budget = load(client.get(), env, client.patch_status)
            abandon = threading.Event()
            # Each producer sees only its own header variables; the pod's envFrom carries every step's.
            producer = make_producer(resource.spec.producer, env=run_env(env), cancel=abandon)
        except ValueError as exc:
            # A configuration the worker cannot run with: say so on the shard, where the Run shows it.
            # Once that is written nothing is left to execute: exit 0, or the Job would start pod
            # after pod up to its backoff limit, each writing the same reason again.
            return EXIT_OK if report_cannot_start(client, env, exc) else EXIT_ERROR
        executor = ShardExecutor(
            resource,
            producer,
            flush,
            max_status_bytes=status_budget or DEFAULT_MAX_STATUS_BYTES,
            stop=stop,
            abandon=abandon,
            stop_grace_seconds=stop_grace_seconds,
            flush_interval=flush_interval,
            worker_name=env.get("HOSTNAME"),
            make_producer=lambda spec, item_id: make_producer(
                spec, env=step_env(env, item_id), cancel=abandon
            ),
            redactor=Redactor(secret_values(env)),
            limiter=limiter_for(resource, client.rate_share),
        )
        todo = sum(1 for item in executor.snapshot().items if needs_execution(item))
        log.info("shard %s/%s: %d items, %d to execute", namespace, shard, len(resource.spec.items), todo)
        outcome = executor.run()
    except ShardReplaced as exc:
        log.warning("%s", exc)
        return EXIT_ERROR
    except ItemStoreError as exc:
        log.error("RunShard %s/%s: %s", namespace, shard, exc)
        return EXIT_ERROR
    except ShardApiError as exc:
        log.error("%s", exc)
        return EXIT_ERROR
    except ValueError as exc:
        log.error("RunShard %s/%s cannot run: %s", namespace, shard, exc)
        return EXIT_ERROR
    summary = outcome.status.summary
    log.info(
        "shard %s/%s: %d calls, %d succeeded, %d failed, %d pending, %d status writes%s",
        namespace,
        shard,
        outcome.calls,
        summary.succeeded,
        summary.failed,
        summary.pending,
        outcome.flushes,
        " (stopped)" if outcome.stopped else "",
    )
    if outcome.stopped:
        return EXIT_SIGINT if received[:1] == [signal.SIGINT] else EXIT_SIGTERM
    return EXIT_OK


def report_cannot_start(client: ShardClient, env: Mapping[str, str], error: ValueError) -> bool:
    """Write why this worker cannot run on its shard: the message, and every item it would have called
    failed with it (error class `config`); nothing was called. Only a shard it could read is written.
    True when the items were failed and written, so no other pod need try."""
    redactor = Redactor(secret_values(env))
    message = CANNOT_START + redactor.clip(_reason(error), 500)
    log.error("RunShard %s/%s: %s", client.namespace, client.name, message)
    try:
        shard, flush, budget = load(client.get(), env, client.patch_status)
    except ItemStoreError as exc:
        log.error("%s", exc)
        return False
    except ValueError:
        # The shard itself does not parse: only the message can be written.
        status = RunShardStatus(message=message, worker=env.get("HOSTNAME"))
        flush = client.patch_status
        settled = False
    else:
        ledger = ShardLedger(
            shard, clock=time.time, redactor=redactor, max_status_bytes=budget or DEFAULT_MAX_STATUS_BYTES
        )
        for index, item in enumerate(ledger.items):
            if needs_execution(item):
                ledger.fail(index, message, "config", 0.0)
        items = list(ledger.items)
        status = RunShardStatus(
            phase=shard_phase(items),
            items=items,
            summary=summarize(items),
            worker=env.get("HOSTNAME"),
            message=message,
            started_at=shard.status.started_at or ledger.now(),
            finished_at=ledger.now(),
        )
        settled = True
    try:
        flush(status)
    except (ShardApiError, ItemStoreError) as exc:
        log.error("%s", exc)
        return False
    return settled


def _reason(error: ValueError) -> str:
    """One line: a shard that does not parse names its fields (pydantic's first line names only the model)."""
    if isinstance(error, ValidationError):
        return "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors()[:3])
    return str(error).splitlines()[0] if str(error) else repr(error)


def _kube(env: Mapping[str, str]) -> Kube:
    try:
        return Kube(client_for_process(env), timeout=WORKER_TIMEOUT)
    except (ConfigError, OSError) as exc:
        raise ShardApiError(f"no Kubernetes configuration (KUBECONFIG or in-cluster): {exc}") from exc
