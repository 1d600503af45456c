"""The Run reconciler: one idempotent pass from observed state (the Run, its shards, their Jobs).

Called by the Run's kopf daemon about once a second. It plans rounds into RunShards, starts at most
`parallelism` shard Jobs, suspends them for pause, removes them for cancel, starts retry and
promotion rounds, and writes the Run's status only when it changed. All decisions come from what
is stored in the API server, so a restarted operator picks up exactly where the last one stopped.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

from kubernetes.client.exceptions import ApiException

from oxygen.api.labels import LABEL_RUN_UID
from oxygen.api.run import TERMINAL_ITEM_STATUSES, TERMINAL_PHASES, Round, Run, RunStatus, effective_producer
from oxygen.api.runshard import ItemResult, RunShard, RunShardSpec, RunShardStatus, ShardItem
from oxygen.api.workflow import Workflow
from oxygen.credits import ledger
from oxygen.credits.gate import CreditGate, Decision
from oxygen.execution.jobs import WorkerDefaults, shard_job, worker_identity
from oxygen.kube.client import Kube, OwnershipConflict, now
from oxygen.planning.items import ItemsSourceError, PlannedItem, from_inline, parse_rows
from oxygen.planning.names import round_of, shard_name
from oxygen.planning.rounds import (
    SKIP_DRY_RUN,
    SKIP_SMOKE,
    Group,
    Shape,
    initial_groups,
    shard_bodies,
    skipped_status,
)
from oxygen.status import run as aggregate
from oxygen.status.shard import live_items, shard_phase, summarize
from oxygen.status.views import JobView, ShardView, shard_view

log = logging.getLogger("oxygen.reconcile.runs")

ACTIVE_INTERVAL = 1.0
IDLE_INTERVAL = 10.0
# Status writes are rate-limited per run; phase changes are written at once.
MIN_STATUS_INTERVAL = 1.0
ROUND_WAIT = "a new round waits for credits"
QUEUED_STATUS_INTERVAL = 10.0
# Shards read per request when a new round is planned (each can hold ~1 MiB of results).
SHARDS_PER_REQUEST = 5


@dataclass
class Settings:
    web_base_url: str = "http://localhost:8080"
    worker: WorkerDefaults = field(default_factory=WorkerDefaults)


@dataclass
class RunState:
    """What one Run's daemon remembers between passes (rebuilt from the API after a restart)."""

    status: RunStatus
    last_write: float = 0.0
    # Children we created or changed whose watch events may not have reached the indexes yet.
    fresh_shards: dict[str, tuple[int, ShardView]] = field(default_factory=dict)
    fresh_jobs: dict[str, JobView] = field(default_factory=dict)
    status_writes: int = 0
    # Items resolved while the run waits for credits (resolved again when the spec changes).
    items_cache: tuple[int, Resolved] | None = None
    # Set by a pass in which a retry or promotion round waited for credits.
    round_waiting: bool = False

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> RunState:
        return cls(status=RunStatus.model_validate(body.get("status") or {}))


@dataclass(frozen=True)
class Resolved:
    items: list[PlannedItem]
    shape: Shape
    unit_cost: Decimal
    # Items an estimate counts: all of a column's, a workflow's steps, an ingestion's maxPages.
    in_scope: int


class RunFailure(Exception):
    """The run itself cannot proceed; `reason` is a CamelCase condition reason."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def _rv(body: Mapping[str, Any]) -> int:
    try:
        return int(body["metadata"].get("resourceVersion") or 0)
    except ValueError:
        return 0


class RunReconciler:
    def __init__(self, kube: Kube, settings: Settings) -> None:
        self.kube = kube
        self.settings = settings
        self.gate = CreditGate(kube)

    # -- the pass ------------------------------------------------------------------------------

    def reconcile(
        self,
        body: dict[str, Any],
        indexed_shards: list[tuple[int, ShardView]],
        indexed_jobs: list[JobView],
        state: RunState,
    ) -> float:
        """One pass; returns how long to wait before the next one."""
        run = Run.model_validate(body)
        status = state.status.model_copy(deep=True)
        state.round_waiting = False
        if status.phase == "failed":
            return IDLE_INTERVAL
        shards = self._merge_shards(indexed_shards, state)
        jobs = self._merge_jobs(indexed_jobs, state)

        if not status.rounds:
            try:
                if run.spec.cancel:
                    # Canceled before it started: nothing to plan, nothing to clean up.
                    status.rounds = []
                else:
                    self._plan_initial(body, run, status, state)
                    shards = self._merge_shards(indexed_shards, state)
            except RunFailure as failure:
                self._fail(body, run, status, state, failure)
                return IDLE_INTERVAL
            if not status.rounds and not run.spec.cancel:
                return ACTIVE_INTERVAL  # waiting for credits

        cleaned_up = True
        if run.spec.cancel and status.phase != "canceled":
            cleaned_up = self._cancel(body, run, shards, jobs, state)
            shards = self._merge_shards(indexed_shards, state)
        elif not run.spec.cancel and status.phase != "canceled":
            if (
                status.phase in ("completed", "succeeded")
                and run.spec.retry_failed > status.observed_retry_failed
            ):
                self._retry(body, run, status, state)
                shards = self._merge_shards(indexed_shards, state)
            if run.spec.mode == "live" and any(not s.execute and s.summary.skipped for s in shards.values()):
                self._promote(body, run, status, state)
                shards = self._merge_shards(indexed_shards, state)
            self._fail_dead_shards(run.metadata.namespace, shards, jobs, state)
            shards = self._merge_shards(indexed_shards, state)
            self._drive_jobs(body, run, shards, jobs, state)
            jobs = self._merge_jobs(indexed_jobs, state)

        self._write_status(body, run, status, list(shards.values()), jobs, state, cleaned_up)
        return IDLE_INTERVAL if state.status.phase in TERMINAL_PHASES else ACTIVE_INTERVAL

    # -- observed state, corrected for index lag -------------------------------------------------

    def _merge_shards(self, indexed: list[tuple[int, ShardView]], state: RunState) -> dict[str, ShardView]:
        merged = {view.name: (rv, view) for rv, view in indexed}
        for name, (rv, view) in list(state.fresh_shards.items()):
            seen = merged.get(name)
            if seen is not None and seen[0] >= rv:
                del state.fresh_shards[name]  # the index caught up
            else:
                merged[name] = (rv, view)
        return {name: view for name, (_, view) in merged.items()}

    def _merge_jobs(self, indexed: list[JobView], state: RunState) -> dict[str, JobView]:
        merged = {job.name: job for job in indexed}
        for name, job in list(state.fresh_jobs.items()):
            if name in merged:
                del state.fresh_jobs[name]
            else:
                merged[name] = job
        return merged

    def _remember_shard(self, state: RunState, body: dict[str, Any]) -> None:
        state.fresh_shards[body["metadata"]["name"]] = (_rv(body), shard_view(body))

    # -- planning --------------------------------------------------------------------------------

    def _resolve(self, run: Run) -> Resolved:
        """A run's items, how its shards execute, and what each item holds in credits."""
        spec = run.spec
        if spec.kind == "workflow":
            return self._resolve_workflow(run)
        if spec.kind == "ingestion":
            assert spec.ingestion is not None
            ing = spec.ingestion
            first = PlannedItem(
                "0", None, {"query": ing.query, "pageSize": ing.page_size, "cursor": None, "page": 0}
            )
            return Resolved(
                [first], Shape(sequence="pages", max_pages=ing.max_pages), ing.cost_per_page, ing.max_pages
            )
        assert spec.producer is not None
        items = self._resolve_items(run)
        return Resolved(items, Shape(), spec.producer.cost_per_item, len(items))

    def _resolve_workflow(self, run: Run) -> Resolved:
        assert run.spec.workflow_ref is not None
        name = run.spec.workflow_ref.name
        try:
            workflow = Workflow.model_validate(self.kube.get("workflows", run.metadata.namespace, name))
        except ApiException as err:
            if err.status == 404:
                raise RunFailure("WorkflowNotFound", f"Workflow {name!r} not found") from None
            raise
        steps = workflow.spec.steps
        items = [
            PlannedItem(str(k), None, {}, step=s.name, producer=s.producer, inputs_template=s.inputs)
            for k, s in enumerate(steps)
        ]
        context = {"inputs": {**workflow.spec.inputs, **(run.spec.inputs or {})}, "steps": {}}
        # Steps differ in cost; each unfinished step holds the most expensive one's (never too little).
        unit = max(s.producer.cost_per_item for s in steps)
        return Resolved(items, Shape(sequence="steps", context=context), unit, len(items))

    def _resolve_items(self, run: Run) -> list[PlannedItem]:
        spec = run.spec
        if spec.items is not None:
            return from_inline(spec.items)
        assert spec.items_from is not None
        ref = spec.items_from.config_map_key_ref
        try:
            data = self.kube.read_config_map(run.metadata.namespace, ref.name)
        except ApiException as err:
            if err.status == 404:
                raise RunFailure("ItemsSourceNotFound", f"ConfigMap {ref.name!r} not found") from None
            raise
        if ref.key not in data:
            raise RunFailure("ItemsSourceNotFound", f"ConfigMap {ref.name!r} has no key {ref.key!r}")
        try:
            return parse_rows(data[ref.key], ref.key)
        except ItemsSourceError as err:
            raise RunFailure("ItemsSourceMalformed", f"ConfigMap {ref.name!r}: {err}") from None

    def _plan_initial(self, body: dict[str, Any], run: Run, status: RunStatus, state: RunState) -> None:
        """Resolve the items, hold their estimated cost against the account, then create round 0.

        A run that its account cannot cover waits `queued` (or fails, if the account says so).
        """
        if state.items_cache is None or state.items_cache[0] != run.metadata.generation:
            state.items_cache = (run.metadata.generation, self._resolve(run))
        resolved = state.items_cache[1]
        items = resolved.items
        groups = (
            initial_groups(run.spec, items)
            if run.spec.kind == "column" or run.spec.mode == "dry_run"
            else [Group(items)]
        )
        # A dry run estimates what the live run would cost; other modes what they will execute.
        dry = run.spec.mode == "dry_run"
        in_scope = (
            resolved.in_scope
            if dry or run.spec.kind != "column"
            else sum(len(g.items) for g in groups if g.execute)
        )
        estimate = resolved.unit_cost * in_scope
        status.items_total = len(items)
        status.credits_estimated = estimate
        status.credits_per_item = resolved.unit_cost
        with self.gate.account_lock(run.metadata.namespace, run.spec.credit_account):
            decision = self.gate.decide(run, estimate)
            self._note_credits(body, run, status, decision, dry)
            if not decision.allowed and not dry:
                if decision.on_insufficient == "fail" and decision.reason == "InsufficientCredits":
                    raise RunFailure("InsufficientCredits", decision.message)
                self._wait_for_credits(body, run, status, state, decision)
                return
            bodies = shard_bodies(body, run.spec, 0, groups, resolved.shape)
            self._create_shards(body, status, bodies, state)
            status.rounds = [
                Round(round=0, reason="initial", items=len(items), shards=len(bodies), started_at=now())
            ]
            status.started_at = status.started_at or now()
            if decision.metered and not dry:
                status.ledger = ledger.reserve(status.ledger, estimate, now(), 0)
                status.credits_reserved = estimate
            self._commit_plan(body, run, status, state)
        state.items_cache = None
        self.kube.event(
            body,
            "Planned",
            f"{len(items)} items in {len(bodies)} shards (mode {run.spec.mode}, "
            f"batchSize {run.spec.batch_size}, parallelism {run.spec.parallelism}); {decision.message}",
        )

    def _note_credits(
        self, body: dict[str, Any], run: Run, status: RunStatus, decision: Decision, dry: bool
    ) -> None:
        status.metered = decision.metered
        status.credit_account = decision.account
        stamp, gen = now(), run.metadata.generation
        status.conditions = aggregate.set_condition(
            status.conditions,
            "Metered",
            decision.metered,
            "Metered" if decision.metered else "Unmetered",
            decision.message,
            stamp,
            gen,
        )
        if decision.metered:
            status.conditions = aggregate.set_condition(
                status.conditions,
                "InsufficientCredits",
                not decision.allowed,
                decision.reason or "CreditsAvailable",
                decision.message,
                stamp,
                gen,
            )

    def _wait_for_credits(
        self, body: dict[str, Any], run: Run, status: RunStatus, state: RunState, decision: Decision
    ) -> None:
        """Stay queued; the Event is posted once per wait, the status says why."""
        first = not any(
            c.type == "InsufficientCredits" and c.status == "True" for c in state.status.conditions
        )
        status.phase = "queued"
        status.message = decision.message
        self._stamp(run, status)
        # The available figure moves with every other run: rewrite it now and then, not on each move.
        stale = time.monotonic() - state.last_write > QUEUED_STATUS_INTERVAL
        if first or (stale and _comparable(status) != _comparable(state.status)):
            self._save(run, status, state)
        if first:
            self.kube.event(
                body,
                decision.reason or "InsufficientCredits",
                f"run waits for credits: {decision.message}",
                type_="Warning",
            )

    def _create_shards(
        self, run_body: dict[str, Any], status: RunStatus, bodies: list[dict[str, Any]], state: RunState
    ) -> None:
        """Grant the workers access to the shards first, then create them (409 means: already ours)."""
        ns = run_body["metadata"]["namespace"]
        if self.settings.worker.service_account is None:
            # The Role names every shard of the run, earlier rounds' too.
            names = {b["metadata"]["name"] for b in bodies} | set(
                self._recorded_shard_names(run_body, status)
            )
            for kind, manifest in worker_identity(run_body, sorted(names)):
                try:
                    self.kube.apply_owned(kind, ns, manifest)
                except OwnershipConflict as conflict:
                    if conflict.namesake:
                        raise  # the old run's objects are being collected: the next pass retries
                    raise RunFailure("WorkerIdentityConflict", f"{conflict}; rename the Run") from None
        for shard_body in bodies:
            created = self.kube.create_or_get("runshards", ns, shard_body)
            spec = RunShard.model_validate(created).spec
            if not spec.execute and not (created.get("status") or {}).get("items"):
                created = self.kube.patch_status(
                    "runshards", ns, created["metadata"]["name"], skipped_status(spec).wire()
                )
            self._remember_shard(state, created)

    @staticmethod
    def _recorded_shard_names(run_body: dict[str, Any], status: RunStatus) -> list[str]:
        """Every shard of the rounds already recorded: names are derived, nothing is listed."""
        name = run_body["metadata"]["name"]
        return [shard_name(name, r.round, i) for r in status.rounds for i in range(r.shards)]

    def _commit_plan(self, body: dict[str, Any], run: Run, status: RunStatus, state: RunState) -> None:
        """Record a round in the Run's status at once: it is what makes the plan durable."""
        status.observed_generation = run.metadata.generation
        self._save(run, status, state)

    def _save(self, run: Run, status: RunStatus, state: RunState) -> None:
        """The one place the Run's status is written: a merge patch of the status subresource."""
        self.kube.patch_status("runs", run.metadata.namespace, run.metadata.name, status.wire())
        state.status = status.model_copy(deep=True)
        state.status_writes += 1
        state.last_write = time.monotonic()

    # -- later rounds ------------------------------------------------------------------------------

    def _shards(self, run: Run) -> Iterator[RunShard]:
        """The run's shards, a few per request: a round never holds every shard's body at once."""
        selector = f"{LABEL_RUN_UID}={run.metadata.uid}"
        for body in self.kube.pages("runshards", run.metadata.namespace, selector, limit=SHARDS_PER_REQUEST):
            yield RunShard.model_validate(body)

    def _start_round(
        self,
        body: dict[str, Any],
        run: Run,
        status: RunStatus,
        state: RunState,
        reason: Literal["promotion", "retry"],
        wanted: Callable[[ItemResult, RunShard], bool],
    ) -> tuple[int, Decision | None]:
        """Move the items `wanted` selects into a new round, if their account admits them.

        Returns how many items moved (0 when none, or when credits refused: see the Decision).
        Order matters for restarts: create the new shards, then mark the old items superseded, then
        record the round. An item superseded into this round still belongs to it when recomputed.
        """
        round_ = len(status.rounds)
        moved: list[tuple[ItemResult, ShardItem]] = []
        holders: set[str] = set()
        first: RunShardSpec | None = None
        steps: dict[str, Any] = {}  # a workflow's succeeded steps, for the new round's templates
        for shard in self._shards(run):
            first = first or shard.spec
            for item in shard.status.items:
                if item.step and item.status == "succeeded" and item.superseded_by is None:
                    steps[item.step] = {"outputs": item.outputs}
            if shard.spec.round >= round_:
                continue
            declared = {i.id: i for i in shard.spec.items}
            for item in shard.status.items:
                mine = item.superseded_by is not None and round_of(item.superseded_by) == round_
                if mine or (item.superseded_by is None and wanted(item, shard)):
                    # Pages found while running live only in the status, with their inputs.
                    spec_item = declared.get(item.id) or ShardItem(
                        id=item.id,
                        row_id=item.row_id,
                        inputs=item.inputs if isinstance(item.inputs, dict) else {},
                    )
                    moved.append((item, spec_item))
                    holders.add(shard.metadata.name)
        if not moved or first is None:
            return 0, None
        amount = self._unit_cost(run, status) * len(moved)
        decision = self.gate.decide(run, amount) if status.metered else None
        if decision is not None and not decision.allowed:
            return 0, decision
        moved.sort(key=lambda pair: int(pair[0].id) if pair[0].id.isdigit() else pair[0].id)
        planned = [
            PlannedItem(
                item.id,
                item.row_id,
                spec_item.inputs,
                step=spec_item.step,
                producer=spec_item.producer,
                inputs_template=spec_item.inputs_template,
            )
            for item, spec_item in moved
        ]
        attempts = {item.id: item.attempt_count for item, _ in moved}
        shape = self._later_shape(first, steps)
        bodies = shard_bodies(body, run.spec, round_, [Group(planned, attempts=attempts)], shape)
        self._create_shards(body, status, bodies, state)
        new_home = {
            item.id: b["metadata"]["name"] for b in bodies for item in RunShard.model_validate(b).spec.items
        }
        for name in sorted(holders):
            shard = RunShard.model_validate(self.kube.get("runshards", run.metadata.namespace, name))
            self._supersede(run, shard, new_home, round_, state)
        status.rounds.append(
            Round(round=round_, reason=reason, items=len(moved), shards=len(bodies), started_at=now())
        )
        if status.metered:
            status.ledger = ledger.reserve(status.ledger, amount, now(), round_)
            status.credits_reserved = amount
        status.phase = "running"
        status.finished_at = None
        return len(moved), decision

    @staticmethod
    def _later_shape(first: RunShardSpec, steps: dict[str, Any]) -> Shape:
        """A later round executes like the first; a workflow's also knows the steps that succeeded."""
        if first.sequence == "independent":
            return Shape()
        context: dict[str, Any] | None = None
        if first.sequence == "steps":
            context = {"inputs": (first.context or {}).get("inputs", {}), "steps": steps}
        return Shape(
            sequence=first.sequence, context=context, max_pages=first.max_pages, producer=first.producer
        )

    def _supersede(
        self, run: Run, shard: RunShard, new_home: dict[str, str], round_: int, state: RunState
    ) -> None:
        if shard.spec.round >= round_:
            return
        changed = False
        for item in shard.status.items:
            if item.id in new_home and item.superseded_by is None:
                item.superseded_by = new_home[item.id]
                changed = True
        if not changed:
            return
        new_status = shard.status.model_copy(
            update={"summary": summarize(shard.status.items), "phase": shard_phase(shard.status.items)}
        )
        patched = self.kube.patch_status(
            "runshards", run.metadata.namespace, shard.metadata.name, new_status.wire()
        )
        self._remember_shard(state, patched)

    def _retry(self, body: dict[str, Any], run: Run, status: RunStatus, state: RunState) -> None:
        with self.gate.account_lock(run.metadata.namespace, run.spec.credit_account):
            count, decision = self._start_round(body, run, status, state, "retry", _retryable)
            if decision is not None and not decision.allowed and decision.on_insufficient == "queue":
                self._refused_once(body, run, status, state, decision, "retry")
                return
            status.observed_retry_failed = run.spec.retry_failed
            self._commit_plan(body, run, status, state)
        if decision is not None and not decision.allowed:
            self.kube.event(
                body, "InsufficientCredits", f"retry refused: {decision.message}", type_="Warning"
            )
        elif count:
            self.kube.event(
                body, "Retrying", f"retrying {count} failed items (retryFailed={run.spec.retry_failed})"
            )
        else:
            self.kube.event(body, "NothingToRetry", "retryFailed was bumped but the run has no failed items")

    def _promote(self, body: dict[str, Any], run: Run, status: RunStatus, state: RunState) -> None:
        def skipped_by_mode(item: ItemResult, shard: RunShard) -> bool:
            return (
                not shard.spec.execute
                and item.status == "skipped"
                and shard.spec.skip_reason in (SKIP_SMOKE, SKIP_DRY_RUN)
            )

        with self.gate.account_lock(run.metadata.namespace, run.spec.credit_account):
            count, decision = self._start_round(body, run, status, state, "promotion", skipped_by_mode)
            if decision is not None and not decision.allowed:
                self._refused_once(body, run, status, state, decision, "promotion")
                return
            if count:
                status.credits_estimated += self._unit_cost(run, status) * count
                self._commit_plan(body, run, status, state)
        if count:
            self.kube.event(body, "Promoted", f"mode is live: executing the {count} items that were skipped")

    def _refused_once(
        self,
        body: dict[str, Any],
        run: Run,
        status: RunStatus,
        state: RunState,
        decision: Decision,
        what: str,
    ) -> None:
        """A later round waits for credits: say so once (condition + Event), try again next pass."""
        state.round_waiting = True
        already = any(c.type == "InsufficientCredits" and c.status == "True" for c in state.status.conditions)
        status.conditions = aggregate.set_condition(
            status.conditions,
            "InsufficientCredits",
            True,
            "InsufficientCredits",
            f"{ROUND_WAIT} ({what}): {decision.message}",
            now(),
            run.metadata.generation,
        )
        if not already:
            self.kube.event(
                body, "InsufficientCredits", f"{what} waits for credits: {decision.message}", type_="Warning"
            )

    # -- Jobs -----------------------------------------------------------------------------------------

    def _drive_jobs(
        self,
        body: dict[str, Any],
        run: Run,
        shards: dict[str, ShardView],
        jobs: dict[str, JobView],
        state: RunState,
    ) -> None:
        ns = run.metadata.namespace
        paused = run.spec.paused
        for job in jobs.values():
            if job.finished:
                continue
            if paused and not job.suspend:
                self.kube.set_job_suspended(ns, job.name, True)
                state.fresh_jobs[job.name] = JobView(name=job.name, suspend=True, active=job.active)
            elif not paused and job.suspend:
                self.kube.set_job_suspended(ns, job.name, False)
        if paused:
            return
        active = sum(1 for j in jobs.values() if not j.finished)
        waiting = sorted(
            (s for s in shards.values() if s.execute and not s.done and s.name not in jobs),
            key=lambda s: (s.round, s.index),
        )
        for shard in waiting:
            if active >= run.spec.parallelism:
                break
            shard_body = self.kube.get("runshards", ns, shard.name)
            manifest = shard_job(RunShard.model_validate(shard_body), shard_body, False, self.settings.worker)
            self.kube.create_job(ns, manifest)
            state.fresh_jobs[shard.name] = JobView(name=shard.name, active=1)
            active += 1

    def _fail_dead_shards(
        self, ns: str, shards: dict[str, ShardView], jobs: dict[str, JobView], state: RunState
    ) -> None:
        """A shard whose Job gave up (or ended without finishing the shard) fails its unfinished items."""
        for shard in shards.values():
            job = jobs.get(shard.name)
            if shard.done or job is None or not job.finished:
                continue
            if job.complete and shard.phase == "Succeeded":
                continue
            reason = job.failure_message or "the worker exited before finishing the shard"
            self._finish_items(
                ns, shard.name, state, "failed", f"worker Job failed: {reason}", "worker_failed"
            )

    def _finish_items(
        self, ns: str, shard_name: str, state: RunState, to: str, error: str | None, error_class: str | None
    ) -> None:
        """Settle a shard no worker runs for anymore: its unfinished items become `to`."""
        shard_body = self.kube.get("runshards", ns, shard_name)
        shard = RunShard.model_validate(shard_body)
        items = shard.status.items or [
            ItemResult(id=i.id, row_id=i.row_id, attempt_count=i.attempt_count) for i in shard.spec.items
        ]
        known = {i.id for i in items}
        items += [
            ItemResult(id=i.id, row_id=i.row_id, attempt_count=i.attempt_count)
            for i in shard.spec.items
            if i.id not in known
        ]
        for item in live_items(items):
            if item.status not in TERMINAL_ITEM_STATUSES:
                item.status = to  # type: ignore[assignment]
                item.error = error
                item.error_class = error_class
                item.finished_at = now()
        new_status = RunShardStatus(
            phase="Failed" if to == "failed" else shard_phase(items),
            items=items,
            summary=summarize(items),
            worker=shard.status.worker,
            message=error,
            started_at=shard.status.started_at,
            finished_at=now(),
        )
        patched = self.kube.patch_status("runshards", ns, shard_name, new_status.wire())
        self._remember_shard(state, patched)

    # -- cancel ---------------------------------------------------------------------------------------

    def _cancel(
        self,
        body: dict[str, Any],
        run: Run,
        shards: dict[str, ShardView],
        jobs: dict[str, JobView],
        state: RunState,
    ) -> bool:
        """Delete every Job; once they (and so their pods) are gone, the unfinished items are skipped."""
        ns = run.metadata.namespace
        if jobs:
            for job in jobs.values():
                if not job.deleting:  # asked once; the Job goes when its pods are gone
                    self.kube.delete_job(ns, job.name)
            return False
        # The index may lag behind a deletion: confirm with the API server before touching shards.
        remaining = self.kube.batch.list_namespaced_job(
            ns, label_selector=f"{LABEL_RUN_UID}={run.metadata.uid}"
        ).items
        if remaining:
            for job in remaining:
                self.kube.delete_job(ns, job.metadata.name)
            return False
        for shard in shards.values():
            unfinished = shard.summary.pending + shard.summary.running + shard.summary.retrying
            if unfinished or not shard.done:
                self._finish_items(ns, shard.name, state, "skipped", "canceled", None)
        return True

    # -- failure and status ------------------------------------------------------------------------

    def _fail(
        self, body: dict[str, Any], run: Run, status: RunStatus, state: RunState, failure: RunFailure
    ) -> None:
        status.phase = "failed"
        status.message = failure.message
        status.finished_at = now()
        status.started_at = status.started_at or status.finished_at
        counts = aggregate.ItemCounts()
        status.conditions = aggregate.conditions_for(
            "failed", counts, failure.message, status.conditions, now(), run.metadata.generation
        )
        for cond in status.conditions:
            if cond.type in ("Failed", "Stalled", "Complete"):
                cond.reason = failure.reason
        self._stamp(run, status)
        self._save(run, status, state)
        self.kube.event(body, failure.reason, failure.message, type_="Warning")

    def _stamp(self, run: Run, status: RunStatus) -> None:
        status.kind = run.spec.kind
        status.mode = run.spec.mode
        status.trigger = run.spec.trigger
        status.observed_generation = run.metadata.generation
        base = self.settings.web_base_url.rstrip("/")
        status.web_url = f"{base}/runs/{run.metadata.namespace}/{run.metadata.name}"

    def _write_status(
        self,
        body: dict[str, Any],
        run: Run,
        status: RunStatus,
        shards: list[ShardView],
        jobs: dict[str, JobView],
        state: RunState,
        cleaned_up: bool,
    ) -> None:
        if run.spec.kind == "ingestion":
            # Pages are found one by one: the total is what was found so far.
            status.items_total = max(status.items_total, aggregate.items_seen(shards))
        counts = aggregate.item_counts(shards, status.items_total)
        previous_phase = state.status.phase
        planned = bool(status.rounds)
        phase = aggregate.derive_phase(run.spec, status, counts, jobs, planned, cleaned_up)
        if (
            phase == "running"
            and previous_phase == "queued"
            and not jobs
            and not any(s.execute for s in shards)
        ):
            phase = "queued"
        status.phase = phase
        status.items_pending = counts.pending
        status.items_running = counts.running
        status.items_retrying = counts.retrying
        status.items_succeeded = counts.succeeded
        status.items_failed = counts.failed
        status.items_skipped = counts.skipped
        self._account_credits(run, status, counts, phase in TERMINAL_PHASES, state.round_waiting)
        status.shards = aggregate.shard_counts(shards, jobs)
        status.failed_items = aggregate.failed_sample(shards)
        status.providers = aggregate.provider_summaries(shards)
        if phase in TERMINAL_PHASES:
            status.finished_at = status.finished_at or now()
        else:
            status.finished_at = None
        status.message = None
        status.conditions = aggregate.conditions_for(
            phase, counts, "", status.conditions, now(), run.metadata.generation
        )
        self._stamp(run, status)
        if _comparable(status) == _comparable(state.status):
            return
        phase_changed = phase != previous_phase
        if not phase_changed and time.monotonic() - state.last_write < MIN_STATUS_INTERVAL:
            return
        self._save(run, status, state)
        if phase_changed:
            self._announce(body, previous_phase, phase, counts)

    @staticmethod
    def _unit_cost(run: Run, status: RunStatus) -> Decimal:
        if status.credits_per_item is not None:
            return status.credits_per_item
        return effective_producer(run.spec).cost_per_item

    def _account_credits(
        self, run: Run, status: RunStatus, counts: aggregate.ItemCounts, terminal: bool, round_waiting: bool
    ) -> None:
        """Held, captured and released, derived from the items; settled into the ledger when done."""
        metered = bool(status.metered)
        status.credits_used = counts.credits_used
        unfinished = counts.unfinished
        if run.spec.ingestion is not None:
            # Pages not found yet may still come: hold for every page up to maxPages.
            done = counts.succeeded + counts.failed + counts.skipped
            unfinished = max(unfinished, run.spec.ingestion.max_pages - done)
        status.credits_reserved = ledger.held(self._unit_cost(run, status), unfinished, metered, terminal)
        if not metered:
            status.credits_released = Decimal(0)
            return
        status.credits_released = ledger.released(status.ledger, status.credits_used, status.credits_reserved)
        if terminal:
            status.ledger = ledger.settle(
                status.ledger, status.credits_used, status.credits_released, now(), len(status.rounds) - 1
            )
        waited = any(
            c.type == "InsufficientCredits" and c.status == "True" and c.message.startswith(ROUND_WAIT)
            for c in status.conditions
        )
        if waited and not round_waiting:
            status.conditions = aggregate.set_condition(
                status.conditions,
                "InsufficientCredits",
                False,
                "CreditsAvailable",
                "",
                now(),
                run.metadata.generation,
            )

    def _announce(self, body: dict[str, Any], old: str, new: str, counts: aggregate.ItemCounts) -> None:
        totals = f"{counts.succeeded} succeeded, {counts.failed} failed, {counts.skipped} skipped"
        reason, message, type_ = {
            "running": (
                "Started" if old == "queued" else "Resumed",
                f"run is running ({totals} so far)",
                "Normal",
            ),
            "paused": ("Paused", f"run paused: no shard runs ({totals} so far)", "Normal"),
            "succeeded": ("Succeeded", f"run succeeded: {totals}", "Normal"),
            "completed": ("Completed", f"run completed with failed items: {totals}", "Warning"),
            "canceled": ("Canceled", f"run canceled: {totals}; unfinished items skipped", "Normal"),
            "queued": ("Queued", "run is queued", "Normal"),
            "failed": ("Failed", "run failed", "Warning"),
        }[new]
        self.kube.event(body, reason, message, type_=type_)


def _retryable(item: ItemResult, shard: RunShard) -> bool:
    """Failed items; in a workflow also the steps skipped because an earlier one failed."""
    if item.status == "failed":
        return True
    return (
        shard.spec.sequence == "steps"
        and item.status == "skipped"
        and (item.error or "").startswith("skipped: step")
    )


def _comparable(status: RunStatus) -> dict[str, Any]:
    """The status without timestamps that change on every pass."""
    data = status.wire()
    data["conditions"] = [
        {k: v for k, v in c.items() if k != "lastTransitionTime"} for c in data.get("conditions", [])
    ]
    return data
