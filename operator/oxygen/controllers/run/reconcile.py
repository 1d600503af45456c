"""The Run controller's pass, top-down: observe → decide (one policy module each) → apply.

Called from the Run controller's work queue (handlers.py) when the Run or one of its children
changed, and again after the interval a pass returns: about once a second while something is due
(a status write held back by its rate limit, a replacement Job, a cancel confirming, credits
awaited), every SETTLED_INTERVAL while a running run waits on its workers (their writes wake it
sooner), never for a finished run. It plans rounds into RunShards, starts at most
`parallelism` shard Jobs, suspends them for pause, removes them for cancel, starts retry and
promotion rounds, and writes the Run's status only when it changed. All decisions come from what is
stored in the API server, so a restarted operator picks up exactly where the last one stopped.

Most passes write once (the status, at the end). Some must write earlier in the pass, because the
later steps depend on it surviving a crash: a planned round is recorded in the status before its
Jobs start (the plan is durable before anything executes), and a credit decision is recorded before
the account's lock is released (the next decision must see it). Each step re-observes after writing.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Container, Iterator
from typing import Any

from oxygen.api.nesting import deep_input
from oxygen.api.run import TERMINAL_PHASES, RunStatus
from oxygen.controllers.run import (
    cancel,
    credits,
    guard,
    jobs,
    plan,
    provider_gone,
    rounds,
    store_rounds,
    tables,
)
from oxygen.controllers.run import status as run_status
from oxygen.controllers.run.apply import Applier
from oxygen.controllers.run.guard import DaemonMemory
from oxygen.controllers.run.observe import Reader, ShardNotOwned, now, observe
from oxygen.controllers.run.types import Event, Observed, Plan, RunFailure, RunState
from oxygen.credits import gate
from oxygen.credits.gate import AccountLocks, Decision
from oxygen.itemstore.store import ItemStore
from oxygen.kube.client import ApiException, Kube
from oxygen.planning import rounds as planning_rounds
from oxygen.planning.items import PlannedItem
from oxygen.settings import OperatorSettings
from oxygen.status.run import item_counts, set_condition
from oxygen.status.views import JobView, ShardView
from oxygen.timefmt import epoch

log = logging.getLogger("oxygen.controllers.run")

ACTIVE_INTERVAL = 1.0
IDLE_INTERVAL = 10.0
# A pass that found nothing due: the next is a safety net (the children's events wake the run).
SETTLED_INTERVAL = 30.0
# A Provider the index lacks is confirmed by a read at most this often per run.
PROVIDER_READ_INTERVAL = 5.0


def _inputs(item: PlannedItem) -> tuple[tuple[str, Any], ...]:
    return (
        (f"item {item.id!r} inputs", item.inputs),
        (f"item {item.id!r} step inputs", item.inputs_template),
    )


def _checked(items: Iterator[PlannedItem]) -> Iterator[PlannedItem]:
    """The items as they stream, each checked as the planned list is (a too-deep one fails the run:
    raised inside the COPY, it leaves no row)."""
    for item in items:
        too_deep = deep_input(_inputs(item))
        if too_deep is not None:
            raise RunFailure("InputsTooDeep", too_deep)
        yield item


class RunController:
    def __init__(self, kube: Kube, settings: OperatorSettings) -> None:
        self.settings = settings
        self.kube = kube  # Tables' cells and ingested rows (tables.py) read their Table through it
        store = ItemStore(settings.item_store) if settings.item_store else None
        self.read = Reader(kube, store)
        self.applier = Applier(kube, store)
        self.locks = AccountLocks()

    def guarded(
        self,
        body: dict[str, Any],
        indexed_shards: list[tuple[int, ShardView]],
        indexed_jobs: list[JobView],
        memory: DaemonMemory,
        providers: Container[str] | None = None,
    ) -> float:
        """One pass over whatever the Run holds (its daemon's only entry); see guard.py.
        `providers`: the names of the Providers in the Run's namespace (None: not known)."""
        meta = body.get("metadata") or {}
        where = f"run {meta.get('namespace')}/{meta.get('name')}"
        if memory.state is None:
            memory.state = guard.state_of(body)
        state = memory.state
        if state.status.phase == "failed":
            return IDLE_INTERVAL
        wait = memory.retry_at - time.monotonic()
        if wait > 0:  # backing off: a change to the Run (our own Stalled write too) must not hurry it
            return wait
        try:
            if memory.failure is not None and memory.last_good is not None:
                stopping = memory.last_good
                return self._fail_planned(stopping, indexed_shards, indexed_jobs, state, memory.failure)
            taken = guard.snapshot(body, planned=bool(state.status.rounds))
            if isinstance(taken, RunFailure):
                raise taken
            interval = self.reconcile(taken, indexed_shards, indexed_jobs, state, providers)
            if state.status.rounds:  # kept to stop the run with; its shards carry the inputs
                memory.last_good = guard.without_inputs(taken)
        except Exception as err:
            if guard.run_gone(err, str(meta.get("name"))):
                log.debug("%s: deleted while its pass ran", where)
                return IDLE_INTERVAL
            try:
                failure = guard.as_failure(err)
                if failure is None or memory.failure is not None:
                    delay = guard.backoff(memory, err, where)
                    self._stall(body, state, memory, err)
                    return delay
                log.info("%s failed: %s: %s", where, failure.reason, failure.message)
                if state.status.rounds and memory.last_good is None:  # a restarted daemon
                    memory.last_good = guard.parseable(body)
                if state.status.rounds and memory.last_good is not None:
                    # Planned: its Jobs may be working. Stop it as a deleted Provider does.
                    memory.failure = failure
                    return self._fail_planned(memory.last_good, indexed_shards, indexed_jobs, state, failure)
                self.reject(body, state, failure)
                return IDLE_INTERVAL
            except Exception as second:  # the API server refused even that: try again later
                return guard.backoff(memory, second, where)
        memory.errors = 0
        memory.stalled_message = None
        return interval

    def _fail_planned(
        self,
        body: dict[str, Any],
        indexed_shards: list[tuple[int, ShardView]],
        indexed_jobs: list[JobView],
        state: RunState,
        failure: RunFailure,
    ) -> float:
        """Fail a planned run: its Jobs deleted, its unfinished items failed with the message, its
        credits accounted, then the failed phase (one pass at a time until the Jobs are gone)."""

        def look() -> Observed:
            return observe(body, indexed_shards, indexed_jobs, state)

        status = state.status.model_copy(deep=True)
        return self._stop_failed(look(), look, status, state, failure, failure.message)

    def reject(self, body: dict[str, Any], state: RunState, failure: RunFailure) -> None:
        """Fail the run from its raw body (its spec may be one the models refuse): status, one Event."""
        generation = int((body.get("metadata") or {}).get("generation") or 0)
        failed = run_status.mark_failed(state.status.model_copy(deep=True), failure, now(), generation)
        self.applier.apply(failed, body, state)

    def _stall(self, body: dict[str, Any], state: RunState, memory: DaemonMemory, err: Exception) -> None:
        """Say on the Run that it is stuck and why (once per distinct message)."""
        message = guard.stalled_message(err)
        if memory.stalled_message == message:
            return
        generation = int((body.get("metadata") or {}).get("generation") or 0)
        status = state.status.model_copy(deep=True)
        status.conditions = set_condition(
            status.conditions, "Stalled", True, "ReconcileError", message, now(), generation
        )
        memory.stalled_message = message
        self.applier.apply(Plan(status=status), body, state)

    def reconcile(
        self,
        body: dict[str, Any],
        indexed_shards: list[tuple[int, ShardView]],
        indexed_jobs: list[JobView],
        state: RunState,
        providers: Container[str] | None = None,
    ) -> float:
        """One pass; returns how long to wait before the next one."""

        def look() -> Observed:
            sample = self.read.failed_sample(str(body["metadata"]["uid"]), indexed_shards)
            return observe(body, indexed_shards, indexed_jobs, state, sample)

        obs = look()
        run = obs.run
        status = state.status.model_copy(deep=True)
        if status.phase == "failed":
            return IDLE_INTERVAL
        gone = self._providers_gone(obs, status, state, providers)
        if gone:
            return self._provider_deleted(obs, look, status, state, gone)
        # Canceled before it started: nothing to plan, nothing to clean up.
        if not status.rounds and not run.spec.cancel:
            try:
                self._plan_initial(obs, status, state)
            except RunFailure as failure:
                self.applier.apply(
                    run_status.failed(obs, status, failure, self.settings.web_base_url), body, state
                )
                return IDLE_INTERVAL
            if not status.rounds:
                return ACTIVE_INTERVAL  # waiting for credits
            obs = look()
        elif not status.rounds and state.items_cache is not None and state.items_cache[1].stored is not None:
            # Canceled while it waited for credits: the rows staged for its round 0 go.
            assert self.applier.store is not None
            self.applier.store.abandon_round(run.metadata.uid, 0)
            state.items_cache = None

        cleaned_up = True
        round_waiting = False
        deaths: list[jobs.DeadShard] = []
        pending: list[Event] = []  # said with the status write that records them
        if run.spec.cancel and status.phase != "canceled":
            cleaned_up = self._cancel(obs, state)
            obs = look()
        elif not run.spec.cancel and status.phase != "canceled":
            if rounds.wants_retry(run, status):
                round_waiting |= self._retry(obs, status, state, pending)
                obs = look()
            if run.spec.mode == "live" and any(
                not s.execute and s.summary.skipped for s in obs.shards.values()
            ):
                round_waiting |= self._promote(obs, status, state, pending)
                obs = look()
            deaths = jobs.dead(obs.shards, obs.jobs, epoch(obs.now) or 0.0)
            for death in deaths:
                self._after_death(obs, state, death)
            self._drive_jobs(look(), state)
            obs = look()

        # Before the status write, from the same shards: a run that says it finished has its cells
        # (an ingestion its rows) written; while some cannot be, it holds its terminal phase.
        cells: tables.CellSync | tables.IngestSync | None = None
        # A run that finished had its cells written (or gave up): a later pass (after a restart, with
        # nothing remembered) does not write them all again, nor hold the run on a database refusal.
        finished = state.status.phase in TERMINAL_PHASES and status.phase in TERMINAL_PHASES
        if not finished and run.spec.rows_table is not None:
            if state.cells is None:
                state.cells = tables.CellSync()
            cells = state.cells
            tables.sync(self.kube, run, obs.shards, state.cells, getattr(self.read, "store", None))
        elif not finished and run.spec.kind == "ingestion" and run.spec.table:
            if state.cells is None:
                state.cells = tables.IngestSync()
            cells = state.cells
            tables.sync_ingestion(self.kube, run, obs.shards, state.cells)
        unwritten = cells.pending if cells is not None else None
        final = run_status.observed(
            obs, status, cleaned_up, round_waiting, self.settings.web_base_url, pending, unwritten
        )
        self.applier.apply(final, body, state)
        if state.status.phase in TERMINAL_PHASES:
            return IDLE_INTERVAL
        # Nothing due: no write held back or made, no dead shard waiting, no cancel or round pending.
        held_back = run_status.comparable(status) != run_status.comparable(state.status)
        due = final.status is not None or held_back or deaths or pending or round_waiting or not cleaned_up
        interval = ACTIVE_INTERVAL if due or run.spec.cancel else SETTLED_INTERVAL
        # Cells the database refused are tried again, sooner than the safety net, backing off.
        return min(interval, cells.backoff) if cells is not None and unwritten is not None else interval

    # -- the initial round ----------------------------------------------------------------------

    def _plan_initial(self, obs: Observed, status: RunStatus, state: RunState) -> None:
        """Resolve the items, hold their estimated cost against the account, then create round 0.

        With an item store a column run's items stream from their source into the store first (one
        COPY, never a list: plan.resolve hands back an unread iterator, Applier.stage_items writes it);
        the plan is then made from the count alone ("round 0 is in the store, N items"), after the COPY
        and before any shard, so the credit decision sees the exact count as it does without a store."""
        run = obs.run
        generation = run.metadata.generation
        store = self.applier.store
        if state.items_cache is None or state.items_cache[0] != generation:
            earlier = state.items_cache[1] if state.items_cache is not None else None
            if store is not None and earlier is not None and earlier.stored is not None:
                store.abandon_round(run.metadata.uid, 0)  # staged for an earlier spec while it waited
            resolved = plan.resolve(run, self.read.sources(run), store=store is not None)
            if resolved.source is not None:
                of = functools.partial(planning_rounds.stored_status, run.spec)
                count = self.applier.stage_items(obs.body, _checked(resolved.source), of)
                resolved = plan.stored(resolved, count)
            else:
                plan.within_ceiling(len(resolved.items), store is not None)
                # Rows from a ConfigMap are user input too: the same bound as inline inputs.
                too_deep = deep_input(named for i in resolved.items for named in _inputs(i))
                if too_deep is not None:
                    raise RunFailure("InputsTooDeep", too_deep)
            state.items_cache = (generation, resolved)
        resolved = state.items_cache[1]
        estimate = plan.estimate(run, resolved)
        try:
            # The decision and the status recording it are one step under the account's lock. With no
            # account (unmetered, or waiting for one) the run holds nothing another decision could see:
            # no lock, so the runs of a namespace are planned in parallel, not one at a time.
            snapshot = self.read.credits(run)
            if snapshot.account is None:
                credits.require_priced(resolved, snapshot)
                decision = gate.decide(snapshot, run.metadata.uid, estimate)
                initial = plan.initial(obs, status, resolved, decision, self.settings)
                self.applier.apply(initial, obs.body, state)
            else:
                with self.locks.hold(run.metadata.namespace, run.spec.credit_account):
                    snapshot = self.read.credits(run)
                    credits.require_priced(resolved, snapshot)
                    decision = gate.decide(snapshot, run.metadata.uid, estimate)
                    initial = plan.initial(obs, status, resolved, decision, self.settings)
                    self.applier.apply(initial, obs.body, state)
        except RunFailure:
            if store is not None and resolved.stored is not None:
                # The run fails before round 0 is recorded: its staged rows go (no Run without shards
                # keeps rows; the finalizer would delete them with the Run anyway).
                store.abandon_round(run.metadata.uid, 0)
                state.items_cache = None
            raise
        if status.rounds:
            state.items_cache = None

    # -- later rounds ---------------------------------------------------------------------------

    def _admit(
        self, obs: Observed, status: RunStatus, found: rounds.Collected, what: str, pending: list[Event]
    ) -> tuple[bool, Decision | None]:
        """Call under the account's lock: may the new round call its producer (True: it waits, an
        unpriced producer under an account that requires Providers), and may the run hold what its
        items cost (the decision; None when unmetered or nothing moves)?"""
        run = obs.run
        if not found.moved or found.first is None:
            return False, None
        snapshot = self.read.credits(run)
        unpriced = rounds.unpriced(run, status, found.first)
        refusal = credits.refuse_unpriced(obs, status, snapshot, unpriced, what)
        if refusal is not None:
            pending += refusal
            return True, None
        if not status.metered:
            return False, None
        return False, gate.decide(snapshot, run.metadata.uid, rounds.cost(run, status, found))

    def _start_round(
        self,
        obs: Observed,
        status: RunStatus,
        state: RunState,
        found: rounds.Collected,
        reason: rounds.Reason,
    ) -> int:
        """New shards, then the old items superseded (one holder at a time); the caller records the round."""
        if not found.moved or found.first is None:
            return 0
        run = obs.run
        new = rounds.start(obs.body, run, status, found, reason, self.settings, obs.now)
        self.applier.apply(new.shards, obs.body, state)
        # Shards an earlier, unrecorded plan of this round left beyond this plan's: they never ran
        # and must not once the round is recorded (their items are in this plan's shards now).
        planned = {s.body["metadata"]["name"] for s in new.shards.shards}
        left = [
            (v.name, v.uid) for v in obs.shards.values() if v.round == found.round and v.name not in planned
        ]
        if left:
            self.applier.apply(Plan(delete_shards=sorted(left)), obs.body, state)
        for name in sorted(found.holders):
            shard, _ = self.read.shard(run, name)
            superseded = rounds.supersede(shard, new.new_home, found.round)
            if superseded is not None:
                self.applier.apply(Plan(shard_status=[(name, superseded.wire())]), obs.body, state)
        return len(found.moved)

    def _retry(self, obs: Observed, status: RunStatus, state: RunState, pending: list[Event]) -> bool:
        """Retry the failed items in a new round; True when the round waits for credits."""
        if store_rounds.applies(self.read.store, obs):
            return store_rounds.start(self, obs, status, state, pending, "retry")
        run = obs.run
        with self.locks.hold(run.metadata.namespace, run.spec.credit_account):
            found = rounds.collect(status, self.read.shards(run), rounds.retryable)
            unpriced, decision = self._admit(obs, status, found, "retry", pending)
            if unpriced:
                return True
            refused = decision is not None and not decision.allowed
            if refused and decision is not None and decision.on_insufficient == "queue":
                pending += credits.refused(obs, status, decision, "retry")
                return True
            if refused:
                self._abandon(obs, state, found)
            count = 0 if refused else self._start_round(obs, status, state, found, "retry")
            status.observed_retry_failed = run.spec.retry_failed
            status.observed_generation = run.metadata.generation
            commit = Plan(status=status, events=rounds.retry_events(run, count, decision))
            self.applier.apply(commit, obs.body, state)
        return False

    def _abandon(self, obs: Observed, state: RunState, found: rounds.Collected) -> None:
        """A round refused for good whose shards an earlier pass created (its recording failed):
        the moved items go back to their holders, then the never-run shards go."""
        for name in sorted(found.holders):
            shard, _ = self.read.shard(obs.run, name)
            restored = rounds.restore(shard, found.round)
            if restored is not None:
                self.applier.apply(Plan(shard_status=[(name, restored.wire())]), obs.body, state)
        orphans = [(v.name, v.uid) for v in obs.shards.values() if v.round >= found.round]
        if orphans:
            self.applier.apply(Plan(delete_shards=sorted(orphans)), obs.body, state)

    def _promote(self, obs: Observed, status: RunStatus, state: RunState, pending: list[Event]) -> bool:
        """Execute what the smoke test or dry run skipped; True when the round waits for credits."""
        if store_rounds.applies(self.read.store, obs):
            return store_rounds.start(self, obs, status, state, pending, "promotion")
        run = obs.run
        with self.locks.hold(run.metadata.namespace, run.spec.credit_account):
            found = rounds.collect(status, self.read.shards(run), rounds.skipped_by_mode)
            unpriced, decision = self._admit(obs, status, found, "promotion", pending)
            if unpriced:
                return True
            if decision is not None and not decision.allowed:
                pending += credits.refused(obs, status, decision, "promotion")
                return True
            count = self._start_round(obs, status, state, found, "promotion")
            if count:
                status.credits_estimated += credits.unit_cost(run, status) * count
                status.observed_generation = run.metadata.generation
                self.applier.apply(
                    Plan(status=status, events=rounds.promotion_events(count)), obs.body, state
                )
        return False

    # -- Jobs, dead shards, cancel ----------------------------------------------------------------

    def _drive_jobs(self, obs: Observed, state: RunState) -> None:
        run = obs.run
        recorded = len(obs.written.rounds)
        decision = jobs.drive(run, obs.shards, obs.jobs, self.settings.max_parallelism, recorded=recorded)
        self.applier.apply(jobs.manifests(run, decision, [], self.settings.worker), obs.body, state)
        # One shard body at a time: each can hold ~1 MiB of results.
        for name in decision.start:
            try:
                shard = self.read.shard(run, name, rows=False)
            except ShardNotOwned as err:
                log.warning("%s: no Job started", err)
                continue
            start = jobs.JobsDecision([], [], [name])
            self.applier.apply(jobs.manifests(run, start, [shard], self.settings.worker), obs.body, state)

    def _after_death(self, obs: Observed, state: RunState, death: jobs.DeadShard) -> None:
        """A shard whose Job died: a replacement Job when one is due, or its items settled."""
        if death.action == "wait":
            return
        try:
            shard, body = self.read.shard(obs.run, death.shard)
        except ShardNotOwned as err:
            log.warning("%s: not settled", err)
            return
        step = jobs.after_death(obs.run, shard, body, death, self.settings.worker, obs.now)
        self.applier.apply(step, obs.body, state)

    def _settle(
        self, obs: Observed, state: RunState, name: str, to: str, error: str | None, error_class: str | None
    ) -> None:
        """A shard no worker runs for anymore: its unfinished items become `to`."""
        try:
            shard, _ = self.read.shard(obs.run, name)
        except ShardNotOwned as err:
            log.warning("%s: not settled", err)
            return
        settled = jobs.settle(shard, to, error, error_class, obs.now)
        self.applier.apply(Plan(shard_status=[(name, settled.wire())]), obs.body, state)

    def _cancel(
        self, obs: Observed, state: RunState, to: str = "skipped", error: str = cancel.CANCELED
    ) -> bool:
        """Delete every Job; once they (and so their pods) are gone, the unfinished items become `to`
        (skipped for a cancel)."""
        decision = cancel.cancel(obs.jobs)
        if not decision.confirm:
            self.applier.apply(Plan(delete_jobs=decision.delete_jobs), obs.body, state)
            return False
        left, settle = cancel.confirmed(self.read.jobs_left(obs.run, obs.shards), obs.shards)
        if left:
            self.applier.apply(Plan(delete_jobs=left), obs.body, state)
            return False
        for name in settle:
            self._settle(obs, state, name, to, error, None)
        return True

    # -- a Provider deleted mid-run (provider_gone.py) --------------------------------------------

    def _providers_gone(
        self, obs: Observed, status: RunStatus, state: RunState, providers: Container[str] | None
    ) -> list[str]:
        """The Providers the run uses that are gone: the index's word, confirmed by a read."""
        if providers is None:
            return []
        resolved = bool(status.rounds) or state.items_cache is not None
        suspects = provider_gone.suspects(obs.run, status, resolved, providers)
        if not suspects or obs.clock - state.provider_read_at < PROVIDER_READ_INTERVAL:
            return []
        state.provider_read_at = obs.clock
        ns = obs.run.metadata.namespace
        gone = []
        for name in suspects:
            try:
                self.read.kube.get("providers", ns, name)
            except ApiException as err:
                if err.status != 404:
                    raise
                gone.append(name)
        return gone

    def _provider_deleted(
        self, obs: Observed, look: Callable[[], Observed], status: RunStatus, state: RunState, gone: list[str]
    ) -> float:
        """Stop the run like a cancel (its unfinished items fail), then fail it naming the Provider."""
        failure = provider_gone.decide(gone)
        assert failure is not None
        state.provider_read_at = 0.0  # the next pass goes on at once, not after the read interval
        return self._stop_failed(obs, look, status, state, failure, provider_gone.item_error(gone))

    def _stop_failed(
        self,
        obs: Observed,
        look: Callable[[], Observed],
        status: RunStatus,
        state: RunState,
        failure: RunFailure,
        item_error: str,
    ) -> float:
        """Stop the run like a cancel (its unfinished items fail with `item_error`), then fail it."""
        if status.rounds:
            if not self._cancel(obs, state, "failed", item_error):
                return ACTIVE_INTERVAL
            obs = look()
            # The items' counts and the credits settled (terminal) as for any finished run.
            run_status.observed(obs, status, True, False, self.settings.web_base_url)
            counts = item_counts(list(obs.shards.values()), status.items_total)
            credits.account(obs, status, counts, True, False)
        state.items_cache = None
        self.applier.apply(
            run_status.failed(obs, status, failure, self.settings.web_base_url), obs.body, state
        )
        return IDLE_INTERVAL
