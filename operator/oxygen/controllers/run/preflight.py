"""Preflight: what a run names must exist before anything of it runs; Providers resolved.

Pure. observe.Reader reads what `provider_names` and `secret_refs` say a run uses (the Providers,
whether each Secret exists); `check` fails the run at once, naming the missing object the way the
API server does (`secrets "nope" not found`) and where it is named, instead of letting each worker
die at start and the run end with every item failed for a reason only the pod logs show.

A run that names a Provider executes with the Provider's URL, timeout, header Secret and price:
`resolve` turns each producer with a providerRef into the http producer the shards carry (the worker
is unchanged), and tightens the run's retry to the Provider's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

from oxygen.api.provider import Provider, tightened
from oxygen.api.run import HttpProducer, Producer, Retry, Run, WaterfallStep
from oxygen.api.workflow import Workflow
from oxygen.controllers.run.types import RunFailure

PROVIDERS = "providers.oxygen.dev"


@dataclass(frozen=True)
class Use:
    """A producer a run executes, and where it is declared (for messages)."""

    field: str
    producer: Producer


def uses(run: Run, workflow: Workflow | None) -> list[Use]:
    """The producers the run executes as declared (a workflow's: its steps')."""
    spec = run.spec
    if spec.kind == "workflow":
        if workflow is None:
            return []
        where = f"Workflow {workflow.metadata.name}'s spec.steps"
        return [Use(f"{where}[{s.name}].producer", s.producer) for s in workflow.spec.steps]
    if spec.kind == "ingestion" and spec.ingestion is not None:
        return [Use("spec.ingestion", spec.ingestion.producer())]
    return [Use("spec.producer", spec.producer)] if spec.producer is not None else []


def refs(producer: Producer) -> list[str]:
    """The Providers a producer names: its providerRef, or its waterfall's."""
    if producer.provider_ref is not None:
        return [producer.provider_ref.name]
    return [s.provider_ref.name for s in producer.waterfall or [] if s.provider_ref is not None]


def provider_names(declared: list[Use]) -> list[str]:
    return sorted({name for u in declared for name in refs(u.producer)})


def _secret_field(use: Use) -> str:
    if use.field == "spec.ingestion":
        return "spec.ingestion.headersFrom.secretRef"
    return f"{use.field}.http.headersFrom.secretRef"


def secret_refs(declared: list[Use], providers: Mapping[str, Provider | None]) -> list[tuple[str, str]]:
    """(Secret name, where it is named) for every header Secret the run's pods will reference."""
    out = []
    for use in declared:
        for name in refs(use.producer):
            provider = providers.get(name)
            if provider is not None and provider.spec.http.headers_from is not None:
                where = f"Provider {name}'s spec.http.headersFrom.secretRef"
                out.append((provider.spec.http.headers_from.secret_ref.name, where))
        if use.producer.http is not None and use.producer.http.headers_from is not None:
            out.append((use.producer.http.headers_from.secret_ref.name, _secret_field(use)))
        for k, step in enumerate(use.producer.waterfall or []):
            if step.http is not None and step.http.headers_from is not None:
                where = f"{use.field}.waterfall[{k}].http.headersFrom.secretRef"
                out.append((step.http.headers_from.secret_ref.name, where))
    return out


def check(
    declared: list[Use],
    providers: Mapping[str, Provider | None],
    secrets: Mapping[str, bool | None],
) -> None:
    """Fail the run if a Provider or a Secret it names does not exist (None: could not tell)."""
    for use in declared:
        ref = use.producer.provider_ref
        if ref is not None and providers.get(ref.name) is None:
            raise RunFailure(
                "ProviderNotFound", f'{PROVIDERS} "{ref.name}" not found ({use.field}.providerRef)'
            )
        for k, step in enumerate(use.producer.waterfall or []):
            if step.provider_ref is not None and providers.get(step.provider_ref.name) is None:
                raise RunFailure(
                    "ProviderNotFound",
                    f'{PROVIDERS} "{step.provider_ref.name}" not found '
                    f"({use.field}.waterfall[{k}].providerRef)",
                )
    for name, where in secret_refs(declared, providers):
        if secrets.get(name) is False:
            raise RunFailure("SecretNotFound", f'secrets "{name}" not found ({where})')


def resolve(
    producer: Producer, providers: Mapping[str, Provider | None], retry: Retry | None = None
) -> Producer:
    """The producer a shard carries: a providerRef becomes the Provider's http call and price; a
    waterfall's each, and its costPerItem (the estimate's unit) is the sum of its steps' prices."""
    if producer.waterfall is not None:
        steps = [_resolve_step(step, providers, retry or Retry()) for step in producer.waterfall]
        return producer.model_copy(
            update={"waterfall": steps, "cost_per_item": sum((s.cost_per_item for s in steps), Decimal(0))}
        )
    ref = producer.provider_ref
    if ref is None:
        return producer
    provider = providers.get(ref.name)
    if provider is None:
        raise RunFailure("ProviderNotFound", f'{PROVIDERS} "{ref.name}" not found')
    http = provider.spec.http
    return Producer(
        provider=ref.name,
        http=HttpProducer(url=http.url, timeout_seconds=http.timeout_seconds, headers_from=http.headers_from),
        cost_per_item=provider.spec.price,
        max_output_bytes=producer.max_output_bytes,
        concurrency=producer.concurrency,
    )


def _resolve_step(
    step: WaterfallStep, providers: Mapping[str, Provider | None], retry: Retry
) -> WaterfallStep:
    ref = step.provider_ref
    if ref is None:
        return step.model_copy(update={"retry": retry})
    provider = providers.get(ref.name)
    if provider is None:
        raise RunFailure("ProviderNotFound", f'{PROVIDERS} "{ref.name}" not found')
    http = provider.spec.http
    return WaterfallStep(
        provider=ref.name,
        http=HttpProducer(url=http.url, timeout_seconds=http.timeout_seconds, headers_from=http.headers_from),
        cost_per_item=provider.spec.price,
        retry=retry,
    )


def retry(run_retry: Retry, declared: list[Use], providers: Mapping[str, Provider | None]) -> Retry:
    """The run's retry, tightened by every Provider it uses (a Run may not widen a Provider's)."""
    out = run_retry
    for use in declared:
        for name in refs(use.producer):
            provider = providers.get(name)
            if provider is not None:
                out = tightened(out, provider.spec.retry)
    return out


def unpriced(declared: list[Use]) -> list[str]:
    """Where the run calls something at a price it set itself (not a Provider's; builtins call nothing)."""
    return [
        u.field
        for u in declared
        if u.producer.provider_ref is None
        and (
            u.producer.http is not None
            or u.producer.command is not None
            or any(s.provider_ref is None for s in u.producer.waterfall or [])
        )
    ]
