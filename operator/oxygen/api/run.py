"""The Run resource: what a user declares, and the status the operator reports."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Literal

from pydantic import ConfigDict, Field, model_validator

from oxygen.api.common import Condition, Credits, CreditTotal, HttpUrl, Inputs, Json, Model, ObjectMeta

RunKind = Literal["column", "workflow", "ingestion"]
RunMode = Literal["smoke_test", "dry_run", "live"]
Trigger = Literal["user", "schedule", "event", "webhook"]
RunPhase = Literal["queued", "running", "completed", "succeeded", "failed", "paused", "canceled"]
ItemStatus = Literal["pending", "running", "succeeded", "failed", "retrying", "skipped"]

TERMINAL_PHASES: frozenset[str] = frozenset({"completed", "succeeded", "failed", "canceled"})
TERMINAL_ITEM_STATUSES: frozenset[str] = frozenset({"succeeded", "failed", "skipped"})
ITEM_STATUSES: tuple[ItemStatus, ...] = ("pending", "running", "retrying", "succeeded", "failed", "skipped")

# Producer outputs are capped per item so a shard stays far below etcd's object limit.
DEFAULT_MAX_OUTPUT_BYTES = 16 * 1024


class RunItem(Model):
    """One inline row."""

    row_id: str | None = Field(default=None, max_length=253)
    inputs: Inputs = Field(default_factory=dict)


class ConfigMapKeyRef(Model):
    name: str = Field(min_length=1)
    key: str = Field(min_length=1)


class SecretKeySelector(Model):
    """One key of a Secret in the run's namespace (its writer must be allowed to `get` it)."""

    name: str = Field(min_length=1, max_length=253)
    key: str = Field(min_length=1, max_length=253)


class PostgresItems(Model):
    """Every row of `query` is an item: `rowIdColumn` gives its rowId, the other columns its inputs by name.

    The Secret's key holds a libpq connection string (`postgresql://user:pass@host:5432/db`); the query
    runs read-only through a server-side cursor, fetched in chunks (oxygen/sources/postgres.py)."""

    secret_ref: SecretKeySelector
    query: str = Field(min_length=1, max_length=64 * 1024)
    row_id_column: str = Field(default="row_id", min_length=1, max_length=63)


class UrlItems(Model):
    """A JSONL or CSV file over HTTP(S), streamed line by line: the rows of a ConfigMap key, elsewhere.

    Without `format`, a path ending in `.csv` is CSV and anything else JSONL."""

    url: HttpUrl
    format: Literal["jsonl", "csv"] | None = None

    def row_format(self) -> Literal["jsonl", "csv"]:
        if self.format is not None:
            return self.format
        path = self.url.split("?", 1)[0].split("#", 1)[0]
        return "csv" if path.lower().endswith(".csv") else "jsonl"


class ItemsFrom(Model):
    """Where a column run's rows come from: exactly one of a ConfigMap key (JSONL: one {"rowId",
    "inputs"} per line; or CSV with a header row), a PostgreSQL query, or a file over HTTP(S)."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "[has(self.configMapKeyRef), has(self.postgres), has(self.url)]"
                    ".filter(x, x).size() == 1",
                    "message": "itemsFrom needs exactly one of configMapKeyRef, postgres or url",
                }
            ]
        }
    )

    config_map_key_ref: ConfigMapKeyRef | None = None
    postgres: PostgresItems | None = None
    url: UrlItems | None = None

    @model_validator(mode="after")
    def _one_source(self) -> ItemsFrom:
        if sum(x is not None for x in (self.config_map_key_ref, self.postgres, self.url)) != 1:
            raise ValueError("itemsFrom needs exactly one of configMapKeyRef, postgres or url")
        return self

    @property
    def streamed(self) -> bool:
        """Read through a stream (oxygen.sources), never whole: a database query or a URL."""
        return self.config_map_key_ref is None


class SecretRef(Model):
    name: str = Field(min_length=1)


class HeadersFrom(Model):
    """Each key of the Secret becomes a request header; values are never copied anywhere."""

    secret_ref: SecretRef


class HttpProducer(Model):
    url: HttpUrl
    timeout_seconds: float = Field(default=10, gt=0, le=3600)
    headers_from: HeadersFrom | None = None


class ProviderRef(Model):
    name: str = Field(min_length=1, max_length=253, pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")


def _no_default(schema: dict[str, Any]) -> None:
    """The API server must not fill the field in: a rule tells an omitted one from a written one."""
    schema.pop("default", None)


class WaterfallStep(Model):
    """One provider of a waterfall: a Provider by name, resolved at planning into its http call and
    price (provider, http, costPerItem), which is what the shards carry."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "has(self.providerRef) != has(self.http)",
                    "message": "a waterfall step needs exactly one of providerRef or http",
                },
                {
                    "rule": "!has(self.providerRef) || (!has(self.provider) && !has(self.costPerItem))",
                    "message": "a waterfall step with providerRef takes the Provider's name and price",
                },
                {
                    "rule": "has(self.providerRef) || has(self.provider)",
                    "message": "a waterfall step needs provider (its summary name) unless it names a "
                    "providerRef",
                },
            ]
        }
    )

    provider_ref: ProviderRef | None = None
    provider: str | None = Field(
        default=None, min_length=1, max_length=63, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
    )
    http: HttpProducer | None = None
    cost_per_item: Credits = Field(default=Decimal(0), json_schema_extra=_no_default)
    # Set at planning: the shard's retry, which this provider's calls get before the next is tried.
    retry: Retry | None = None

    @property
    def name(self) -> str:
        if self.provider_ref is not None:
            return self.provider_ref.name
        return self.provider or "unknown"

    @model_validator(mode="after")
    def _one_way_to_call(self) -> WaterfallStep:
        if (self.provider_ref is None) == (self.http is None):
            raise ValueError("a waterfall step needs exactly one of providerRef or http")
        return self


class Cache(Model):
    """Never pay twice: an item whose provider and inputs match a successful call of the namespace
    within `ttlSeconds` takes that call's outputs without calling or charging (column runs over a
    Table; see controllers/run/tables.py)."""

    ttl_seconds: int = Field(ge=1, le=10 * 365 * 86400)


class Producer(Model):
    """Which provider is called per item, and how: exactly one of providerRef, http, builtin, command,
    waterfall."""

    # With providerRef the Provider (admin-owned) says where, with which Secret and at what price:
    # the operator resolves it into an http producer when it plans the run (controllers/run/plan.py).

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "[has(self.providerRef), has(self.http), has(self.builtin), has(self.command), "
                    "has(self.waterfall)].filter(x, x).size() == 1",
                    "message": "producer needs exactly one of providerRef, http, builtin, command "
                    "or waterfall",
                },
                {
                    "rule": "has(self.provider) || has(self.providerRef) || has(self.waterfall)",
                    "message": "producer needs provider (its summary name) unless it names a providerRef "
                    "or a waterfall",
                },
                {
                    "rule": "has(self.waterfall) || !has(self.until)",
                    "message": "until is only for a waterfall",
                },
                {
                    "rule": "!has(self.providerRef) || !has(self.provider) "
                    "|| self.provider == self.providerRef.name",
                    "message": "with providerRef, provider is the Provider's name (or omitted)",
                },
                {
                    "rule": "!has(self.providerRef) || !has(self.costPerItem)",
                    "message": "a producer with providerRef is charged the Provider's price: "
                    "costPerItem is not allowed",
                },
            ]
        }
    )

    # The name in summaries and metrics; with providerRef, the Provider's name.
    provider: str | None = Field(
        default=None, min_length=1, max_length=63, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
    )
    provider_ref: ProviderRef | None = None
    http: HttpProducer | None = None
    builtin: Literal["echo"] | None = None
    command: list[str] | None = Field(default=None, min_length=1, max_length=64)
    # Providers called in order per item until one answers non-empty (execution/waterfall.py).
    waterfall: list[WaterfallStep] | None = Field(default=None, min_length=1, max_length=8)
    # nonEmpty (the default): stop at the first answer that is not null, {} or [].
    until: Literal["nonEmpty"] | None = None
    # Omitted means 0 (inline producers); never set with providerRef (the Provider's price applies).
    cost_per_item: Credits = Field(default=Decimal(0), json_schema_extra=_no_default)
    max_output_bytes: int = Field(default=DEFAULT_MAX_OUTPUT_BYTES, ge=64, le=256 * 1024)
    # Items of one shard in flight at once in its pod; unset: 16 for http, 1 for command and builtin.
    concurrency: int | None = Field(default=None, ge=1, le=1024)
    # Reuse successful calls with the same inputs (the Provider's cache applies when this is unset).
    cache: Cache | None = None

    @property
    def name(self) -> str:
        """The provider's name in summaries and metrics."""
        if self.provider_ref is not None:
            return self.provider_ref.name
        if self.waterfall is not None:
            return self.provider or "waterfall"
        return self.provider or "unknown"

    @model_validator(mode="after")
    def _one_way_to_call(self) -> Producer:
        # The CRD's rule above, for producers built in Python (the API server checks stored ones).
        ways = [self.provider_ref, self.http, self.builtin, self.command, self.waterfall]
        if sum(way is not None for way in ways) != 1:
            raise ValueError("producer needs exactly one of providerRef, http, builtin, command or waterfall")
        return self


class WorkflowRef(Model):
    name: str = Field(min_length=1)


class Ingestion(Model):
    """A provider's search results, page by page: each page is an item, found by the cursor before it."""

    provider: str = Field(min_length=1, max_length=63, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    url: HttpUrl
    query: str
    page_size: int = Field(default=100, ge=1, le=10000)
    max_pages: int = Field(default=10, ge=1, le=10000)
    timeout_seconds: float = Field(default=30, gt=0, le=3600)
    headers_from: HeadersFrom | None = None
    cost_per_page: Credits = Decimal(0)
    max_output_bytes: int = Field(default=256 * 1024, ge=64, le=512 * 1024)

    def producer(self) -> Producer:
        return Producer(
            provider=self.provider,
            http=HttpProducer(
                url=self.url, timeout_seconds=self.timeout_seconds, headers_from=self.headers_from
            ),
            cost_per_item=self.cost_per_page,
            max_output_bytes=self.max_output_bytes,
        )


class Retry(Model):
    max_attempts: int = Field(default=3, ge=1, le=100)
    backoff_seconds: float = Field(default=1, ge=0, le=3600)


WaterfallStep.model_rebuild()
Producer.model_rebuild()


class SmokeTest(Model):
    sample_size: int = Field(default=5, ge=1)


class RunSpec(Model):
    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "self.kind != 'column' || [has(self.items), has(self.itemsFrom), "
                    "has(self.table) && has(self.inputs)].filter(x, x).size() == 1",
                    "message": "exactly one of items or itemsFrom is required (or table with inputs: "
                    "the rows of a Table)",
                },
                {
                    "rule": "self.kind != 'column' || !has(self.table) || !has(self.inputs) "
                    "|| has(self.items) || has(self.itemsFrom) || has(self.column)",
                    "message": "a column run over a Table needs column",
                },
                {
                    "rule": "self.kind != 'column' || has(self.producer)",
                    "message": "a column run needs a producer",
                },
                {
                    "rule": "self.kind != 'workflow' || has(self.workflowRef)",
                    "message": "a workflow run needs workflowRef",
                },
                {
                    "rule": "self.kind != 'ingestion' || has(self.ingestion)",
                    "message": "an ingestion run needs ingestion",
                },
                {
                    "rule": "!has(oldSelf.cancel) || !oldSelf.cancel || (has(self.cancel) && self.cancel)",
                    "message": "cancel cannot be undone",
                },
                {
                    "rule": "!has(oldSelf.retryFailed) || (has(self.retryFailed) "
                    "&& self.retryFailed >= oldSelf.retryFailed)",
                    "message": "retryFailed is a counter: it can only go up",
                },
            ]
        }
    )

    kind: RunKind = "column"
    mode: RunMode = "live"
    trigger: Trigger = "user"
    table: str | None = None
    column: str | None = None
    items: list[RunItem] | None = None
    items_from: ItemsFrom | None = None
    producer: Producer | None = None
    workflow_ref: WorkflowRef | None = None
    inputs: Inputs | None = None
    ingestion: Ingestion | None = None
    batch_size: int = Field(default=100, ge=1, le=10000)
    parallelism: int = Field(default=4, ge=1, le=1000)
    # `default: {}` lets the API server fill the nested defaults for a manifest that omits these.
    retry: Retry = Field(default_factory=Retry, json_schema_extra={"default": {}})
    smoke_test: SmokeTest = Field(default_factory=SmokeTest, json_schema_extra={"default": {}})
    credit_account: str = "default"
    paused: bool = False
    cancel: bool = False
    retry_failed: int = Field(default=0, ge=0)
    # A column run over a Table: which rows it runs, "empty" (the default: the cell is empty or
    # failed), "all", or {"where": "<SQL boolean on the row>"} (checked at planning).
    rows: Json | None = None

    @property
    def rows_table(self) -> str | None:
        """The Table whose rows a column run fills (spec.table with templated inputs, no items)."""
        if self.kind != "column" or self.table is None or self.inputs is None:
            return None
        if self.items is not None or self.items_from is not None:
            return None
        return self.table

    @model_validator(mode="after")
    def _what_the_kind_needs(self) -> RunSpec:
        # The CRD's rules above (oldSelf ones aside): a Run the models accept is one the API server
        # accepts, so a pass never meets a column run without a producer.
        sources = [self.items is not None, self.items_from is not None, None not in (self.table, self.inputs)]
        if self.kind == "column" and sum(sources) != 1:
            raise ValueError(
                "exactly one of items or itemsFrom is required (or table with inputs: the rows of a Table)"
            )
        if self.rows_table is not None and self.column is None:
            raise ValueError("a column run over a Table needs column")
        if self.kind == "column" and self.producer is None:
            raise ValueError("a column run needs a producer")
        if self.kind == "workflow" and self.workflow_ref is None:
            raise ValueError("a workflow run needs workflowRef")
        if self.kind == "ingestion" and self.ingestion is None:
            raise ValueError("an ingestion run needs ingestion")
        return self


def effective_producer(spec: RunSpec) -> Producer:
    """The producer a run's shards carry (a workflow's steps override it per item)."""
    if spec.producer is not None:
        return spec.producer
    if spec.ingestion is not None:
        return spec.ingestion.producer()
    return Producer(provider="workflow", builtin="echo")


class ShardCounts(Model):
    total: int = 0
    active: int = 0
    succeeded: int = 0
    failed: int = 0


class FailedItem(Model):
    id: str
    row_id: str | None = None
    error: str = ""
    attempt_count: int = 0


class ProviderSummary(Model):
    provider: str
    items_succeeded: int = 0
    items_failed: int = 0
    credits_used: CreditTotal = Decimal(0)
    attempts: int = 0
    latency_seconds_sum: float = 0.0
    # Waterfall runs: items this provider answered non-empty (its `attempts` are the calls made to it).
    hits: int = 0
    # Items that took a cached call's outputs instead of calling it.
    cached: int = 0


class Round(Model):
    """One execution round: the first (round 0), a promotion, or a retry of the failed items."""

    round: int
    reason: Literal["initial", "promotion", "retry"]
    items: int
    shards: int
    started_at: str


class LedgerEntry(Model):
    """A movement of this run's credits: held at a round's start, captured and released at settling."""

    type: Literal["reserved", "captured", "released"]
    amount: CreditTotal
    at: str
    round: int = 0


class RunStatus(Model):
    phase: RunPhase = "queued"
    kind: RunKind | None = None
    mode: RunMode | None = None
    trigger: Trigger | None = None
    items_total: int = 0
    items_succeeded: int = 0
    items_failed: int = 0
    items_pending: int = 0
    items_running: int = 0
    items_retrying: int = 0
    items_skipped: int = 0
    # Items that took a cached call's outputs (spec.producer.cache): neither called nor charged.
    items_cached: int = 0
    credits_used: CreditTotal = Decimal(0)
    credits_reserved: CreditTotal = Decimal(0)
    credits_estimated: CreditTotal = Decimal(0)
    credits_released: CreditTotal = Decimal(0)
    # What each item holds while unfinished (a workflow: its most expensive step), fixed at planning.
    credits_per_item: CreditTotal | None = None
    # The Provider a column run's producer was resolved from at planning: every later round calls
    # it (at its price), whatever producer the spec names by then.
    planned_provider: str | None = Field(default=None, max_length=253)
    # The account the run is metered against; unset while undecided or when unmetered.
    credit_account: str | None = None
    metered: bool | None = None
    ledger: list[LedgerEntry] = Field(default_factory=list, max_length=100)
    started_at: str | None = None
    finished_at: str | None = None
    web_url: str | None = None
    message: str | None = None
    observed_generation: int = 0
    observed_retry_failed: int = 0
    conditions: list[Condition] = Field(default_factory=list)
    shards: ShardCounts = Field(default_factory=ShardCounts)
    failed_items: list[FailedItem] = Field(default_factory=list, max_length=50)
    providers: list[ProviderSummary] = Field(default_factory=list)
    rounds: list[Round] = Field(default_factory=list)


class Run(Model):
    api_version: str = "oxygen.dev/v1alpha1"
    kind: str = "Run"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: RunSpec
    status: RunStatus = Field(default_factory=RunStatus)
