"""Credits in a Run's status: the gate's decision noted, waiting for credits, the ledger accounting.

Pure. The decision itself is credits.gate.decide, taken by reconcile.py under the account's lock.
"""

from __future__ import annotations

from decimal import Decimal

from oxygen.api.run import Run, RunStatus, effective_producer
from oxygen.controllers.run.types import Event, Observed, Resolved, RunFailure
from oxygen.credits import ledger
from oxygen.credits.gate import CreditSnapshot, Decision
from oxygen.status import run as aggregate

# The message prefix of an InsufficientCredits condition set by a later round (retry, promotion).
ROUND_WAIT = "a new round waits for credits"


def unit_cost(run: Run, status: RunStatus) -> Decimal:
    if status.credits_per_item is not None:
        return status.credits_per_item
    return effective_producer(run.spec).cost_per_item


def require_priced(resolved: Resolved, snapshot: CreditSnapshot) -> None:
    """An account with requireProviders refuses a run that sets its own price (a tenant
    writing `costPerItem: "0"` would otherwise run for free): the run fails, reason UnpricedProducer."""
    account = snapshot.account
    if account is None or not account.spec.require_providers or not resolved.unpriced:
        return
    raise RunFailure(
        "UnpricedProducer",
        f"CreditAccount {snapshot.name!r} requires priced Providers (requireProviders), but "
        f"{', '.join(resolved.unpriced)} calls out at a price the run sets itself: "
        "name a Provider (producer.providerRef)",
    )


def unpriced_message(account: str, unpriced: tuple[str, ...] | list[str]) -> str:
    return (
        f"CreditAccount {account!r} requires priced Providers, but {', '.join(unpriced)} "
        "calls out at a price the run sets itself: name a Provider (producer.providerRef)"
    )


def refuse_unpriced(
    obs: Observed, status: RunStatus, snapshot: CreditSnapshot, unpriced: list[str], what: str
) -> list[Event] | None:
    """A later round that would call an unpriced producer under an account that requires priced
    Providers waits (condition, one Event) until the spec names a Provider again; None: it may run."""
    account = snapshot.account
    if account is None or not account.spec.require_providers or not unpriced:
        return None
    message = unpriced_message(snapshot.name, unpriced)
    status.conditions = aggregate.set_condition(
        status.conditions,
        "InsufficientCredits",
        True,
        "UnpricedProducer",
        f"{ROUND_WAIT} ({what}): {message}",
        obs.now,
        obs.run.metadata.generation,
    )
    said = any(
        c.type == "InsufficientCredits" and c.status == "True" and c.reason == "UnpricedProducer"
        for c in obs.written.conditions
    )
    return [] if said else [Event("UnpricedProducer", f"{what} refused: {message}", "Warning")]


def waiting(status: RunStatus) -> bool:
    return any(c.type == "InsufficientCredits" and c.status == "True" for c in status.conditions)


def note(run: Run, status: RunStatus, decision: Decision, now: str) -> None:
    """Record the gate's decision: metered or not, and (metered) whether credits suffice."""
    status.metered = decision.metered
    status.credit_account = decision.account
    gen = run.metadata.generation
    status.conditions = aggregate.set_condition(
        status.conditions,
        "Metered",
        decision.metered,
        "Metered" if decision.metered else "Unmetered",
        decision.message,
        now,
        gen,
    )
    if decision.metered:
        status.conditions = aggregate.set_condition(
            status.conditions,
            "InsufficientCredits",
            not decision.allowed,
            decision.reason or "CreditsAvailable",
            decision.message,
            now,
            gen,
        )


def refused(obs: Observed, status: RunStatus, decision: Decision, what: str) -> list[Event]:
    """A later round waits for credits: say so once (condition + Event), try again next pass."""
    status.conditions = aggregate.set_condition(
        status.conditions,
        "InsufficientCredits",
        True,
        "InsufficientCredits",
        f"{ROUND_WAIT} ({what}): {decision.message}",
        obs.now,
        obs.run.metadata.generation,
    )
    if waiting(obs.written):
        return []
    return [Event("InsufficientCredits", f"{what} waits for credits: {decision.message}", "Warning")]


def account(
    obs: Observed, status: RunStatus, counts: aggregate.ItemCounts, terminal: bool, round_waiting: bool
) -> None:
    """Held, captured and released, derived from the items; settled into the ledger when done."""
    run = obs.run
    metered = bool(status.metered)
    status.credits_used = counts.credits_used
    unfinished = counts.unfinished
    if run.spec.ingestion is not None:
        # Pages not found yet may still come: hold for every page up to maxPages.
        done = counts.succeeded + counts.failed + counts.skipped
        unfinished = max(unfinished, run.spec.ingestion.max_pages - done)
    status.credits_reserved = ledger.held(unit_cost(run, status), unfinished, metered, terminal)
    if not metered:
        status.credits_released = Decimal(0)
        return
    status.credits_released = ledger.released(status.ledger, status.credits_used, status.credits_reserved)
    if terminal:
        status.ledger = ledger.settle(
            status.ledger, status.credits_used, status.credits_released, obs.now, len(status.rounds) - 1
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
            obs.now,
            run.metadata.generation,
        )
