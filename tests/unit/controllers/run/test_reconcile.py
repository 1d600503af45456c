"""reconcile.py's top-down pass: which policy runs when, and the order of the writes of a pass.

The reads go to a stub Reader (the bodies come from tests/support/builders.py) and the writes to a
recording stand-in of the kube interface; the real API server is the integration suite's."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from oxygen.api.run import FailedItem, Round, Run, RunStatus
from oxygen.api.runshard import RunShard
from oxygen.api.table import Table
from oxygen.controllers.run import tables
from oxygen.controllers.run.apply import Applier
from oxygen.controllers.run.observe import ShardNotOwned
from oxygen.controllers.run.plan import Sources
from oxygen.controllers.run.reconcile import ACTIVE_INTERVAL, IDLE_INTERVAL, SETTLED_INTERVAL, RunController
from oxygen.controllers.run.types import RunState
from oxygen.credits.gate import CreditSnapshot
from oxygen.credits.ledger import RETIRE_FINALIZER
from oxygen.status.views import JobView, ShardView, shard_view
from oxygen.tables import cells, ingest
from oxygen.tables.errors import TableError
from oxygen.tables.rows import TableRef
from tests.support import builders as b
from tests.support.recording_kube import RecordingKube


class StubReader:
    def __init__(
        self,
        sources: Sources | None = None,
        snapshot: CreditSnapshot | None = None,
        bodies: list[dict[str, Any]] | None = None,
        jobs_left: list[str] | None = None,
    ) -> None:
        self._sources = sources or Sources()
        self.snapshot = snapshot or b.credit_snapshot(None, any_account=False)
        self.bodies = {body["metadata"]["name"]: body for body in bodies or []}
        self.left = jobs_left or []
        self.read: list[str] = []
        self.store = None  # no item store: rounds are planned from the shards

    def sources(self, run: Run) -> Sources:
        return self._sources

    def credits(self, run: Run) -> CreditSnapshot:
        return self.snapshot

    def shards(self, run: Run) -> Iterator[RunShard]:
        for body in self.bodies.values():
            yield RunShard.model_validate(body)

    def shard(self, run: Run, name: str, rows: bool = True) -> tuple[RunShard, dict[str, Any]]:
        self.read.append(name)
        if name not in self.bodies:
            raise ShardNotOwned(name)
        return RunShard.model_validate(self.bodies[name]), self.bodies[name]

    def jobs_left(self, run: Run, shards: Mapping[str, ShardView]) -> list[str]:
        return self.left

    def failed_sample(self, run_uid: str, shards: list[tuple[int, ShardView]]) -> tuple[FailedItem, ...]:
        return ()  # no item store: the shards' own samples


def _controller(reader: StubReader, kube: RecordingKube, **settings: Any) -> RunController:
    controller = RunController(kube, b.settings(**settings))  # type: ignore[arg-type]
    controller.read = reader  # type: ignore[assignment]
    controller.applier = Applier(kube)  # type: ignore[arg-type]
    return controller


def _pass(
    controller: RunController,
    body: dict[str, Any],
    state: RunState,
    shards: list[ShardView] | None = None,
    jobs: list[JobView] | None = None,
) -> float:
    return controller.reconcile(body, [(1, s) for s in shards or []], jobs or [], state)


def _planned(phase: str = "running", **fields: Any) -> RunStatus:
    rounds = [Round(round=0, reason="initial", items=2, shards=1, started_at=b.NOW)]
    return RunStatus(phase=phase, rounds=rounds, items_total=2, **fields)


def test_first_pass_plans_records_then_starts_jobs() -> None:
    kube = RecordingKube()
    body = b.run_body(batchSize=2, parallelism=1)
    reader = StubReader()
    controller = _controller(reader, kube)
    state = RunState.from_body(body)
    reader.bodies = kube.shards  # the shards it creates are what it reads back
    assert _pass(controller, body, state) == ACTIVE_INTERVAL
    assert kube.calls == [
        ("identity", "ServiceAccount"),
        ("identity", "Role"),
        ("identity", "RoleBinding"),
        ("create", "leads-r0-0000"),
        ("create", "leads-r0-0001"),
        ("status:runs", "leads"),  # the plan, recorded before anything executes
        ("event", "Planned"),
        ("job", "leads-r0-0000"),  # parallelism 1
        ("status:runs", "leads"),
        ("event", "Started"),
    ]
    assert state.status.phase == "running"
    assert state.status_writes == 2
    assert state.items_cache is None


def test_a_run_whose_items_cannot_be_read_fails_once() -> None:
    kube = RecordingKube()
    body = b.run_body(itemsFrom={"configMapKeyRef": {"name": "rows", "key": "k"}})
    state = RunState.from_body(body)
    controller = _controller(StubReader(), kube)
    assert _pass(controller, body, state) == IDLE_INTERVAL
    assert kube.calls == [("status:runs", "leads"), ("event", "ItemsSourceNotFound")]
    assert state.status.phase == "failed"
    kube.calls.clear()
    assert _pass(controller, body, state) == IDLE_INTERVAL
    assert kube.calls == []


def test_a_run_naming_a_missing_provider_fails_once_before_anything_is_created() -> None:
    kube = RecordingKube()
    body = b.run_body(producer=b.provider_ref())
    state = RunState.from_body(body)
    controller = _controller(StubReader(Sources(providers={"clearbit": None})), kube)
    assert _pass(controller, body, state) == IDLE_INTERVAL
    assert kube.calls == [("status:runs", "leads"), ("event", "ProviderNotFound")]
    assert state.status.phase == "failed"
    assert state.status.message == 'providers.oxygen.dev "clearbit" not found (spec.producer.providerRef)'
    (failed,) = [c for c in state.status.conditions if c.type == "Failed"]
    assert (failed.status, failed.reason) == ("True", "ProviderNotFound")


def test_a_run_setting_its_own_price_on_an_account_requiring_providers_fails_once() -> None:
    kube = RecordingKube()
    body = b.run_body(producer={"provider": "p", "http": {"url": "http://x/"}, "costPerItem": "0"})
    state = RunState.from_body(body)
    controller = _controller(StubReader(snapshot=b.priced_account("0")), kube)
    assert _pass(controller, body, state) == IDLE_INTERVAL
    assert kube.calls == [("status:runs", "leads"), ("event", "UnpricedProducer")]
    assert state.status.phase == "failed" and not state.status.rounds


def test_a_provider_run_is_planned_with_the_providers_price() -> None:
    kube = RecordingKube()
    body = b.run_body(producer=b.provider_ref())
    state = RunState.from_body(body)
    reader = StubReader(
        Sources(providers={"clearbit": b.provider()}, secrets={"clearbit-key": True}),
        snapshot=b.priced_account("100"),
    )
    reader.bodies = kube.shards
    controller = _controller(reader, kube)
    assert _pass(controller, body, state) == ACTIVE_INTERVAL
    assert state.status.credits_per_item == 2 and state.status.credits_reserved == 6
    (shard,) = kube.shards.values()
    assert shard["spec"]["producer"]["provider"] == "clearbit"
    assert shard["spec"]["producer"]["costPerItem"] == "2"


def test_waiting_for_credits_keeps_the_resolved_items() -> None:
    kube = RecordingKube()
    body = b.run_body(producer={**b.ECHO, "costPerItem": "50"})
    state = RunState.from_body(body)
    controller = _controller(StubReader(snapshot=b.credit_snapshot("10")), kube)
    assert _pass(controller, body, state) == ACTIVE_INTERVAL
    assert kube.calls == [("status:runs", "leads"), ("event", "InsufficientCredits")]
    assert state.status.phase == "queued"
    assert state.items_cache is not None


def test_cancel_deletes_jobs_then_confirms_before_settling() -> None:
    kube = RecordingKube()
    running = b.shard_body(items=["running", ""])
    body = b.run_body(cancel=True, status=_planned())
    reader = StubReader(bodies=[running], jobs_left=["leads-r0-0000"])
    controller = _controller(reader, kube)
    state = RunState.from_body(body)
    view = shard_view(running)
    # The index still shows the Job: delete it; the run is not canceled yet.
    _pass(controller, body, state, [view], [b.job_view("leads-r0-0000", active=1)])
    assert kube.calls[0] == ("delete", "leads-r0-0000")
    assert state.status.phase == "running"
    # The index shows none, but the API server still has it: delete again, settle nothing.
    kube.calls.clear()
    _pass(controller, body, state, [view])
    assert kube.calls[0] == ("delete", "leads-r0-0000")
    assert ("status:runshards", "leads-r0-0000") not in kube.calls
    # Gone: the unfinished items are skipped, then the run says it is canceled.
    reader.left = []
    kube.calls.clear()
    assert _pass(controller, body, state, [view]) == IDLE_INTERVAL
    assert kube.calls == [
        ("status:runshards", "leads-r0-0000"),
        ("status:runs", "leads"),
        ("event", "Canceled"),
    ]
    assert str(state.status.phase) == "canceled"


def test_retry_creates_then_supersedes_then_records() -> None:
    kube = RecordingKube()
    old = b.shard_body(items=["succeeded", "failed"])
    body = b.run_body(retryFailed=1, status=_planned("completed"))
    reader = StubReader(bodies=[old])
    controller = _controller(reader, kube)
    state = RunState.from_body(body)
    _pass(controller, body, state, [shard_view(old)], [b.job_view("leads-r0-0000", complete=True)])
    order = [c for c in kube.calls if c[0] != "identity"]
    assert order[:4] == [
        ("create", "leads-r1-0000"),
        ("status:runshards", "leads-r0-0000"),  # the failed item now points at its new shard
        ("status:runs", "leads"),  # the round recorded
        ("event", "Retrying"),
    ]
    assert state.status.observed_retry_failed == 1
    assert [r.reason for r in state.status.rounds] == ["initial", "retry"]


def test_retry_waiting_for_credits_says_so_with_the_status() -> None:
    kube = RecordingKube()
    old = b.shard_body(items=["failed", "failed"])
    status = _planned("completed", metered=True, credit_account="default")
    body = b.run_body(retryFailed=1, status=status, producer={**b.ECHO, "costPerItem": "10"})
    body["metadata"]["finalizers"] = [RETIRE_FINALIZER]  # put on when round 0 was planned
    reader = StubReader(bodies=[old], snapshot=b.credit_snapshot("5"))
    controller = _controller(reader, kube)
    state = RunState.from_body(body)
    view = shard_view(old)
    _pass(controller, body, state, [view], [b.job_view("leads-r0-0000", complete=True)])
    assert kube.calls == [("status:runs", "leads"), ("event", "InsufficientCredits")]
    assert state.status.observed_retry_failed == 0


def test_promotion_of_a_smoke_test() -> None:
    kube = RecordingKube()
    skipped = b.shard_body(
        index=1, items=["skipped"], execute=False, skip_reason="outside the smoke test sample"
    )
    done = b.shard_body(items=["succeeded"], ids=["1"])
    body = b.run_body(status=_planned("succeeded"))
    reader = StubReader(bodies=[done, skipped])
    controller = _controller(reader, kube)
    state = RunState.from_body(body)
    _pass(controller, body, state, [shard_view(done), shard_view(skipped)])
    assert ("event", "Promoted") in kube.calls
    assert kube.calls.index(("create", "leads-r1-0000")) < kube.calls.index(
        ("status:runshards", "leads-r0-0001")
    )


def test_a_dead_shard_is_settled_and_a_missing_body_is_skipped() -> None:
    kube = RecordingKube()
    dead = b.shard_body(items=["running"])
    body = b.run_body(status=_planned())
    reader = StubReader(bodies=[dead])
    controller = _controller(reader, kube)
    state = RunState.from_body(body)
    waiting = b.shard_view(1, pending=1)  # no body to read: no Job for it
    failed = b.job_view("leads-r0-0000", failed=True, failure_message="BackoffLimitExceeded: x")
    _pass(controller, body, state, [shard_view(dead), waiting], [failed])
    assert ("status:runshards", "leads-r0-0000") in kube.calls
    assert not any(c[0] == "job" for c in kube.calls)
    assert reader.read == ["leads-r0-0000", "leads-r0-0001"]


def test_a_running_run_with_nothing_due_waits_for_its_children_not_the_clock() -> None:
    kube = RecordingKube()
    body = b.run_body(status=_planned())
    controller = _controller(StubReader(), kube)
    state = RunState.from_body(body)
    shards = [b.shard_view(running=2)]
    jobs = [b.job_view("leads-r0-0000", active=1)]
    assert _pass(controller, body, state, shards, jobs) == ACTIVE_INTERVAL  # its status written
    kube.calls.clear()
    assert _pass(controller, body, state, shards, jobs) == SETTLED_INTERVAL
    assert kube.calls == []
    # A change held back by the status rate limit must be looked at again soon.
    assert _pass(controller, body, state, [b.shard_view(running=1, succeeded=1)], jobs) == ACTIVE_INTERVAL
    assert kube.calls == []


def test_pause_suspends_running_jobs() -> None:
    kube = RecordingKube()
    body = b.run_body(paused=True, status=_planned())
    controller = _controller(StubReader(), kube)
    state = RunState.from_body(body)
    _pass(controller, body, state, [b.shard_view(running=2)], [b.job_view("leads-r0-0000", active=1)])
    assert kube.calls[0] == ("suspend", "leads-r0-0000")
    assert not any(c[0] in ("job", "event") for c in kube.calls)  # a pod still runs: not paused yet


@pytest.mark.parametrize(
    ("granted", "abandoned"),
    [
        ("100", False),  # admitted again: the same round is planned the same and takes them over
        ("5", True),  # refused for good: the item goes back, the never-run shard goes
    ],
    ids=["admitted", "refused"],
)
def test_an_unrecorded_round_is_taken_over_or_abandoned(granted: str, abandoned: bool) -> None:
    old = b.shard_body(items=["succeeded", "failed"])
    status = _planned("completed", metered=True, credit_account="default")
    body = b.run_body(retryFailed=1, status=status, producer={**b.ECHO, "costPerItem": "10"})
    body["metadata"]["finalizers"] = [RETIRE_FINALIZER]
    done = [b.job_view("leads-r0-0000", complete=True)]
    # A pass creates round 1 and supersedes the failed item, then its status write fails.
    lost = RecordingKube(fail="status:runs")
    lost.shards["leads-r0-0000"] = old
    reader = StubReader(snapshot=b.credit_snapshot("100", "fail"))
    reader.bodies = lost.shards  # what the stub API server holds
    with pytest.raises(RuntimeError):
        _pass(_controller(reader, lost), body, RunState.from_body(body), [shard_view(old)], done)
    orphan = lost.shards["leads-r1-0000"]
    assert lost.shards["leads-r0-0000"]["status"]["items"][1]["supersededBy"] == "leads-r1-0000"
    # A shard of that lost plan that the next plan of the round does not make (it was planned wider).
    extra = b.shard_body(round_=1, index=1, ids=["9"], items=[""])
    lost.shards["leads-r1-0001"] = extra
    # The next pass: another credit decision over the same shards.
    kube = RecordingKube()
    kube.shards = lost.shards
    reader.snapshot = b.credit_snapshot(granted, "fail")
    state = RunState.from_body(body)
    views = [shard_view(old), shard_view(orphan), shard_view(extra)]
    _pass(_controller(reader, kube), body, state, views, done)
    assert ("delete:runshards", "leads-r1-0001") in kube.calls  # never runs, whatever the decision
    assert ("job", "leads-r1-0001") not in kube.calls
    assert "leads-r1-0001" not in kube.shards
    assert (("delete:runshards", "leads-r1-0000") in kube.calls) == abandoned
    assert (("job", "leads-r1-0000") in kube.calls) != abandoned  # recorded now: it runs
    assert (len(state.status.rounds) == 2) != abandoned
    if abandoned:
        restored = kube.shards["leads-r0-0000"]["status"]["items"][1]
        assert restored["status"] == "failed" and not restored.get("supersededBy")
        assert state.fresh_shards["leads-r0-0000"][1].summary.failed == 1
        assert "leads-r1-0000" not in kube.shards


INLINE = {"provider": "mine", "http": {"url": "https://mine.example/free"}, "costPerItem": "0"}


@pytest.mark.parametrize(
    ("recorded_provider", "promoted"),
    [
        (True, True),  # planned on the Provider: promoted through it, at its price
        (False, False),  # planned before the operator recorded it: the inline producer is refused
    ],
    ids=["keeps-the-provider", "refuses-unpriced"],
)
def test_a_smoke_test_planned_on_a_provider_is_never_promoted_through_an_inline_producer(
    recorded_provider: bool, promoted: bool
) -> None:
    kube = RecordingKube()
    sources = Sources(providers={"clearbit": b.provider()}, secrets={"clearbit-key": True})
    reader = StubReader(sources, snapshot=b.priced_account("100"))
    reader.bodies = kube.shards
    controller = _controller(reader, kube)
    body = b.run_body(producer=b.provider_ref(), mode="smoke_test", smokeTest={"sampleSize": 1})
    state = RunState.from_body(body)
    _pass(controller, body, state)  # round 0: one item executes, two are skipped
    assert state.status.planned_provider == "clearbit"
    if not recorded_provider:
        state.status.planned_provider = None
    for shard in kube.shards.values():  # the sample ran (the skipped shard has its status already)
        if shard["spec"]["execute"]:
            ids = [i["id"] for i in shard["spec"]["items"]]
            shard["status"] = {
                "phase": "Succeeded",
                "items": [{"id": i, "status": "succeeded"} for i in ids],
                "summary": {"succeeded": len(ids)},
            }
    # The tenant edits the run: an inline producer at price 0, and live.
    body = b.run_body(producer=INLINE, mode="live", smokeTest={"sampleSize": 1}, status=state.status)
    views = [shard_view(s) for s in kube.shards.values()]
    before = set(kube.shards)
    for _ in range(2):
        _pass(controller, body, state, views, [b.job_view(v.name, complete=True) for v in views])
        body = b.run_body(producer=INLINE, mode="live", smokeTest={"sampleSize": 1}, status=state.status)
    new = [kube.shards[n] for n in set(kube.shards) - before]
    assert bool(new) == promoted
    for shard in new:
        producer = shard["spec"]["producer"]
        assert producer["http"]["url"] == "https://enrich.example/v2/company"
        assert producer["costPerItem"] == "2"
    refusals = [c for c in kube.calls if c == ("event", "UnpricedProducer")]
    assert len(refusals) == (0 if promoted else 1)  # said once, while the run waits
    waiting = [c for c in state.status.conditions if c.type == "InsufficientCredits" and c.status == "True"]
    assert bool(waiting) != promoted


class FlakyTable:
    """The Table's database as the cells and ingestion passes write it: refuses while `down` says why,
    else records the rows it took."""

    def __init__(self) -> None:
        self.down = 'connection to server at "db" failed: Connection refused'
        self.taken: list[str] = []

    def _take(self, rows: list[str]) -> None:
        if self.down:
            raise TableError("DatabaseUnreachable", self.down)
        self.taken += rows

    def write(self, dsn: str, ref: object, uid: str, name: str, results: list[Any], provider: object) -> None:
        self._take([r.row_id for r in results])

    def upsert(
        self, dsn: str, ns: str, table: str, pg: object, uid: str, name: str, pages: list[Any]
    ) -> None:
        self._take([str(row["id"]) for _, rows in pages for row in rows])


@pytest.fixture
def database(monkeypatch: pytest.MonkeyPatch) -> FlakyTable:
    db = FlakyTable()
    postgres = {"secretRef": {"name": "crm-db", "key": "dsn"}, "table": "public.leads"}
    table = Table.model_validate({"metadata": {"name": "leads"}, "spec": {"postgres": postgres}})
    ref = TableRef(b.NS, "leads", table.spec.postgres, "d")
    monkeypatch.setattr(tables, "target", lambda kube, run: ("dsn", ref))
    monkeypatch.setattr(tables, "table_of", lambda kube, ns, name: ("dsn", table))
    monkeypatch.setattr(cells, "write", db.write)
    monkeypatch.setattr(ingest, "upsert", db.upsert)
    return db


def _finished(kind: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """A run over Table leads whose items all succeeded (a column run's cells or an ingestion's page
    of rows to write), and its one shard."""
    if kind == "column":
        body = b.run_body(status=_planned(), table="leads", column="d", inputs={"n": "${row.n}"})
        body["spec"].pop("items")
        done = b.shard_body(body, items=["succeeded", "succeeded"], outputs={"v": 1})
        for k, item in enumerate(done["status"]["items"]):
            item["rowId"] = f"r{k}"
    else:
        ingestion = {"provider": "search", "url": "http://x/", "query": "q"}
        rounds = [Round(round=0, reason="initial", items=1, shards=1, started_at=b.NOW)]
        status = RunStatus(phase="running", rounds=rounds, items_total=1)
        body = b.run_body(status=status, kind="ingestion", table="leads", ingestion=ingestion)
        rows = {"rows": [{"id": "r0"}, {"id": "r1"}]}
        done = b.shard_body(body, items=["succeeded"], sequence="pages", outputs=rows)
    return body, done


def _phase(state: RunState) -> str:
    return state.status.phase


def _over_a_table(
    kind: str,
) -> tuple[RecordingKube, RunController, dict[str, Any], RunState, list[ShardView]]:
    """A run over a Table whose one shard finished: (kube, controller, body, state, index views)."""
    kube = RecordingKube()
    body, done = _finished(kind)
    kube.shards[done["metadata"]["name"]] = done
    controller = _controller(StubReader(bodies=[done]), kube)
    return kube, controller, body, RunState.from_body(body), [shard_view(done)]


@pytest.mark.parametrize("kind", ["column", "ingestion"])
def test_a_run_over_a_table_holds_its_terminal_phase_until_the_table_has_its_results(
    database: FlakyTable, kind: str
) -> None:
    """A write the database refuses on the pass that would finish the run: the run stays running
    with CellsPending and the database's message, tried again with backoff, and finishes on the pass
    that writes them."""
    kube, controller, body, state, views = _over_a_table(kind)
    assert _pass(controller, body, state, views) == ACTIVE_INTERVAL  # its status written, tried in 1 s
    assert state.status.phase == "running" and state.status.finished_at is None
    (pending,) = [c for c in state.status.conditions if c.type == "CellsPending"]
    assert (pending.status, pending.reason) == ("True", "DatabaseUnreachable")
    assert pending.message == f"finished items not yet written to the Table: {database.down}"
    assert not any(c == ("event", "Succeeded") for c in kube.calls)
    # Nothing else due: the next attempts back off (2 s, 4 s, …, at most tables.MAX_BACKOFF).
    assert _pass(controller, body, state, views) == 2.0
    assert _pass(controller, body, state, views) == 4.0
    assert state.status.phase == "running"
    database.down = ""
    kube.calls.clear()
    assert _pass(controller, body, state, views) == IDLE_INTERVAL
    assert _phase(state) == "succeeded" and state.status.finished_at is not None
    assert database.taken == ["r0", "r1"]
    assert ("event", "Succeeded") in kube.calls
    (written,) = [c for c in state.status.conditions if c.type == "CellsPending"]
    assert (written.status, written.reason) == ("False", "CellsWritten")


def test_a_run_over_a_table_whose_cells_are_written_finishes_without_a_cells_condition(
    database: FlakyTable,
) -> None:
    database.down = ""
    kube = RecordingKube()
    body, done = _finished("column")
    kube.shards[done["metadata"]["name"]] = done
    state = RunState.from_body(body)
    assert (
        _pass(_controller(StubReader(bodies=[done]), kube), body, state, [shard_view(done)]) == IDLE_INTERVAL
    )
    assert state.status.phase == "succeeded" and database.taken == ["r0", "r1"]
    assert not [c for c in state.status.conditions if c.type == "CellsPending"]


@pytest.mark.parametrize("kind", ["column", "ingestion"])
def test_a_refusal_that_does_not_go_away_ends_the_hold(
    database: FlakyTable, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Table deleted, or a value the column rejects on every try: after GIVE_UP_AFTER passes the run
    finishes, and its condition says which cells were not written and why."""
    monkeypatch.setattr(tables, "GIVE_UP_AFTER", 3)
    _, controller, body, state, views = _over_a_table(kind)
    _pass(controller, body, state, views)
    _pass(controller, body, state, views)
    assert _phase(state) == "running"
    assert _pass(controller, body, state, views) == IDLE_INTERVAL
    assert _phase(state) == "succeeded" and database.taken == []
    (held,) = [c for c in state.status.conditions if c.type == "CellsPending"]
    assert (held.status, held.reason) == ("True", "CellsNotWritten")
    assert database.down in held.message and "rows: empty" in held.message
    # A later pass of the finished run (a Job ending, a restart) does not say they were written.
    _pass(controller, body, state, views)
    (still,) = [c for c in state.status.conditions if c.type == "CellsPending"]
    assert (still.status, still.reason) == ("True", "CellsNotWritten")


def test_a_finished_run_does_not_write_its_cells_again(database: FlakyTable) -> None:
    """After a restart nothing is remembered: a succeeded run's pass neither rewrites every cell nor
    turns the run `running` again when the database refuses."""
    kube = RecordingKube()
    body, done = _finished("column")
    kube.shards[done["metadata"]["name"]] = done
    body["status"]["phase"] = "succeeded"
    state = RunState.from_body(body)
    assert (
        _pass(_controller(StubReader(bodies=[done]), kube), body, state, [shard_view(done)]) == IDLE_INTERVAL
    )
    assert state.status.phase == "succeeded" and database.taken == []
    assert not [c for c in state.status.conditions if c.type == "CellsPending"]
