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

from oxygen.api.provider import Provider, tightened
from oxygen.api.run import HttpProducer, Producer, Retry, Run
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


def provider_names(declared: list[Use]) -> list[str]:
    names = [u.producer.provider_ref.name for u in declared if u.producer.provider_ref is not None]
    return sorted(set(names))


def _secret_field(use: Use) -> str:
    if use.field == "spec.ingestion":
        return "spec.ingestion.headersFrom.secretRef"
    return f"{use.field}.http.headersFrom.secretRef"


def secret_refs(declared: list[Use], providers: Mapping[str, Provider | None]) -> list[tuple[str, str]]:
    """(Secret name, where it is named) for every header Secret the run's pods will reference."""
    refs = []
    for use in declared:
        ref = use.producer.provider_ref
        if ref is not None:
            provider = providers.get(ref.name)
            if provider is not None and provider.spec.http.headers_from is not None:
                where = f"Provider {ref.name}'s spec.http.headersFrom.secretRef"
                refs.append((provider.spec.http.headers_from.secret_ref.name, where))
        elif use.producer.http is not None and use.producer.http.headers_from is not None:
            refs.append((use.producer.http.headers_from.secret_ref.name, _secret_field(use)))
    return refs


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
    for name, where in secret_refs(declared, providers):
        if secrets.get(name) is False:
            raise RunFailure("SecretNotFound", f'secrets "{name}" not found ({where})')


def resolve(producer: Producer, providers: Mapping[str, Provider | None]) -> Producer:
    """The producer a shard carries: a providerRef becomes the Provider's http call and price."""
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
    )


def retry(run_retry: Retry, declared: list[Use], providers: Mapping[str, Provider | None]) -> Retry:
    """The run's retry, tightened by every Provider it uses (a Run may not widen a Provider's)."""
    out = run_retry
    for use in declared:
        ref = use.producer.provider_ref
        provider = providers.get(ref.name) if ref is not None else None
        if provider is not None:
            out = tightened(out, provider.spec.retry)
    return out


def unpriced(declared: list[Use]) -> list[str]:
    """Where the run calls something at a price it set itself (not a Provider's; builtins call nothing)."""
    return [
        u.field
        for u in declared
        if u.producer.provider_ref is None and (u.producer.http is not None or u.producer.command is not None)
    ]
