"""Run-level metrics from the Run objects the operator observes.

- `oxygen_runs{namespace,kind,mode,phase}` — how many Runs are in each phase (computed at scrape).
- `oxygen_runs_finished_total{namespace,kind,mode,outcome}` and `oxygen_run_duration_seconds` — on
  an observed transition into a terminal phase (a Run first seen already finished counts only when
  it was created after this process started: its predecessor counted the others).
- `oxygen_credits_reserved{namespace,account}`; `oxygen_credits_captured_total` and
  `oxygen_credits_released_total{namespace,account,provider}` from the growth of `creditsUsed` and
  `creditsReleased` (missing is 0).
- Per active run (labels namespace + run name): `oxygen_run_items{status}`, `oxygen_run_phase{phase}`
  and `oxygen_run_last_progress_timestamp_seconds`; kept until the run has been finished (or deleted)
  for the retention window, then dropped, so the series count follows the active runs, not all runs.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from oxygen.api.run import ITEM_STATUSES, TERMINAL_PHASES
from oxygen.metrics.deltas import DeltaTracker, WatchStart, created_before, to_decimal
from oxygen.metrics.tombstones import Tombstones
from oxygen.timefmt import epoch

DEFAULT_RETENTION_SECONDS = 300.0
RUN_DURATION_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 86400, float("inf"))
_STATUS_FIELDS = {
    "pending": "itemsPending",
    "running": "itemsRunning",
    "retrying": "itemsRetrying",
    "succeeded": "itemsSucceeded",
    "failed": "itemsFailed",
    "skipped": "itemsSkipped",
}


@dataclass
class RunRecord:
    uid: str
    namespace: str
    name: str
    created: float | None
    kind: str = "column"
    mode: str = "live"
    phase: str = "queued"
    account: str = "default"
    provider: str = "unknown"
    reserved: Decimal = Decimal(0)
    items: dict[str, int] = field(default_factory=dict)
    finished_items: int = 0
    last_progress: float = 0.0
    # Clock time the run finished or was deleted: the start of its per-run series' retention.
    ended_at: float | None = None
    deleted: bool = False
    # Another Run of the same name appeared (this one was deleted and recreated).
    superseded: bool = False


def _int(value: object) -> int:
    try:
        return int(value)  # type: ignore[call-overload, no-any-return]
    except (TypeError, ValueError):
        return 0


class RunMetrics(Collector):
    def __init__(
        self,
        registry: CollectorRegistry,
        clock: Callable[[], float],
        watch_start: WatchStart,
        retention_seconds: float = DEFAULT_RETENTION_SECONDS,
    ) -> None:
        self._clock = clock
        self._start = watch_start
        self.retention_seconds = retention_seconds
        self._lock = threading.Lock()
        self._runs: dict[str, RunRecord] = {}
        self._credits = DeltaTracker()
        self._forgotten = Tombstones(clock)
        self.finished = Counter(
            "oxygen_runs_finished_total",
            "Runs that reached a terminal phase, by outcome (the phase: succeeded, completed, failed, "
            "canceled).",
            ["namespace", "kind", "mode", "outcome"],
            registry=registry,
        )
        self.duration = Histogram(
            "oxygen_run_duration_seconds",
            "Wall time of finished runs, from startedAt to finishedAt.",
            ["namespace", "kind", "mode"],
            buckets=RUN_DURATION_BUCKETS,
            registry=registry,
        )
        self.captured = Counter(
            "oxygen_credits_captured_total",
            "Credits captured (billed items), per account and provider.",
            ["namespace", "account", "provider"],
            registry=registry,
        )
        self.released = Counter(
            "oxygen_credits_released_total",
            "Credits released (reservations returned), per account and provider.",
            ["namespace", "account", "provider"],
            registry=registry,
        )
        registry.register(self)

    # -- observation ---------------------------------------------------------------------------

    def observe(self, body: Mapping[str, Any]) -> None:
        meta = body.get("metadata") or {}
        uid = str(meta.get("uid") or "")
        if not uid:
            return
        spec = body.get("spec") or {}
        status = body.get("status") or {}
        now = self._clock()
        with self._lock:
            if uid in self._forgotten:
                return
            record = self._runs.get(uid)
            first_sight = record is None
            if record is None:
                record = RunRecord(
                    uid=uid,
                    namespace=str(meta.get("namespace") or ""),
                    name=str(meta.get("name") or ""),
                    created=epoch(meta.get("creationTimestamp")),
                    last_progress=now,
                )
                self._runs[uid] = record
                same_name = (record.namespace, record.name)
                for other in self._runs.values():
                    if other is not record and (other.namespace, other.name) == same_name:
                        other.superseded = True
            baseline = first_sight and (
                created_before(record.created, self._start.get()) or bool(meta.get("deletionTimestamp"))
            )
            previous_phase = None if first_sight else record.phase
            phase = str(status.get("phase") or "queued")
            record.kind = str(spec.get("kind") or status.get("kind") or "column")
            record.mode = str(spec.get("mode") or status.get("mode") or "live")
            record.account = str(status.get("creditAccount") or spec.get("creditAccount") or "default")
            producer = spec.get("producer") or {}
            # A Provider's runs are labelled with the Provider's name.
            named = producer.get("provider") or (producer.get("providerRef") or {}).get("name")
            record.provider = str(named or "unknown")
            record.reserved = to_decimal(status.get("creditsReserved", 0))
            record.items = {s: _int(status.get(f, 0)) for s, f in _STATUS_FIELDS.items()}
            finished_items = sum(record.items[s] for s in ("succeeded", "failed", "skipped"))
            resumed = phase == "running" and previous_phase != "running"
            if finished_items != record.finished_items or resumed:
                record.last_progress = now
            record.finished_items = finished_items
            record.phase = phase
            terminal = phase in TERMINAL_PHASES
            newly_finished = terminal and (
                (first_sight and not baseline)
                or (previous_phase is not None and previous_phase not in TERMINAL_PHASES)
            )
            if terminal and first_sight and baseline:
                # Finished before this process: its retention runs from its real finish.
                finished_at = epoch(status.get("finishedAt"))
                record.ended_at = min(now, finished_at) if finished_at is not None else now
            elif terminal and (record.ended_at is None or newly_finished):
                record.ended_at = now
            elif not terminal and not record.deleted:
                record.ended_at = None
            credits = self._credits.update(
                uid,
                {
                    "captured": to_decimal(status.get("creditsUsed", 0)),
                    "released": to_decimal(status.get("creditsReleased", 0)),
                },
                baseline,
            )
            self._purge(now)
            labels = (record.namespace, record.kind, record.mode)
            account = (record.namespace, record.account, record.provider)
        if newly_finished:
            self.finished.labels(*labels, phase).inc()
            started, ended = epoch(status.get("startedAt")), epoch(status.get("finishedAt"))
            if started is not None and ended is not None and ended >= started:
                self.duration.labels(*labels).observe(ended - started)
        if credits.get("captured"):
            self.captured.labels(*account).inc(float(credits["captured"]))
        if credits.get("released"):
            self.released.labels(*account).inc(float(credits["released"]))

    def forget(self, namespace: str, name: str, uid: str) -> None:
        """The Run was deleted: it leaves the phase counts now and its per-run series after retention."""
        now = self._clock()
        with self._lock:
            self._forgotten.add(uid)
            self._credits.forget(uid)
            record = self._runs.get(uid)
            if record is not None:
                record.deleted = True
                record.ended_at = record.ended_at if record.ended_at is not None else now
            self._purge(now)

    def _purge(self, now: float) -> None:
        for uid in [u for u, r in self._runs.items() if r.deleted and self._expired(r, now)]:
            del self._runs[uid]

    def _expired(self, record: RunRecord, now: float) -> bool:
        return record.ended_at is not None and now - record.ended_at >= self.retention_seconds

    # -- collection ------------------------------------------------------------------------------

    def collect(self) -> Iterator[Metric]:
        now = self._clock()
        with self._lock:
            self._purge(now)
            records = list(self._runs.values())
        phases = GaugeMetricFamily(
            "oxygen_runs",
            "Runs by phase (Run objects the operator observes).",
            labels=["namespace", "kind", "mode", "phase"],
        )
        counts: dict[tuple[str, str, str, str], int] = {}
        reserved: dict[tuple[str, str], Decimal] = {}
        for r in records:
            if r.deleted:
                continue
            key = (r.namespace, r.kind, r.mode, r.phase)
            counts[key] = counts.get(key, 0) + 1
            acct = (r.namespace, r.account)
            reserved[acct] = reserved.get(acct, Decimal(0)) + r.reserved
        for key, count in sorted(counts.items()):
            phases.add_metric(list(key), count)
        yield phases
        held = GaugeMetricFamily(
            "oxygen_credits_reserved",
            "Credits reserved by runs, per account.",
            labels=["namespace", "account"],
        )
        for acct, amount in sorted(reserved.items()):
            held.add_metric(list(acct), float(amount))
        yield held

        items = GaugeMetricFamily(
            "oxygen_run_items",
            "Items of an active run by status (kept for the retention window after the run finishes).",
            labels=["namespace", "run", "status"],
        )
        phase = GaugeMetricFamily(
            "oxygen_run_phase",
            "The phase of an active run (1 for its current phase).",
            labels=["namespace", "run", "phase"],
        )
        progress = GaugeMetricFamily(
            "oxygen_run_last_progress_timestamp_seconds",
            "When an item of an active run last finished (or the run started or resumed), Unix time.",
            labels=["namespace", "run"],
        )
        for r in sorted(records, key=lambda r: (r.namespace, r.name)):
            if r.superseded or self._expired(r, now):
                continue
            for status in ITEM_STATUSES:
                items.add_metric([r.namespace, r.name, status], r.items.get(status, 0))
            phase.add_metric([r.namespace, r.name, r.phase], 1)
            progress.add_metric([r.namespace, r.name], r.last_progress)
        yield items
        yield phase
        yield progress

    def describe(self) -> Iterator[Metric]:
        yield GaugeMetricFamily("oxygen_runs", "", labels=["namespace", "kind", "mode", "phase"])
        yield GaugeMetricFamily("oxygen_credits_reserved", "", labels=["namespace", "account"])
        yield GaugeMetricFamily("oxygen_run_items", "", labels=["namespace", "run", "status"])
        yield GaugeMetricFamily("oxygen_run_phase", "", labels=["namespace", "run", "phase"])
        yield GaugeMetricFamily("oxygen_run_last_progress_timestamp_seconds", "", labels=["namespace", "run"])

    @property
    def tracked(self) -> int:
        return len(self._runs)
