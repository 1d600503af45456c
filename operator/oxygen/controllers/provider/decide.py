"""Decide: a Provider's status from what uses it. Pure.

- `runs`: Runs naming it that have not finished (Workflow steps naming it are not counted);
- `inFlight`: items running now in its unfinished shards;
- `requestsPerSecond`: attempts its shards reported since the last pass, per second of that pass;
- `throttled`: 429 replies its unfinished shards' workers counted (`summary.throttledCalls`);
- `Ready`: False when its header Secret does not exist (shards would not start), else True.
"""

from __future__ import annotations

from dataclasses import dataclass

from oxygen.api.common import Condition
from oxygen.api.provider import ProviderStatus
from oxygen.controllers.provider.observe import Observed, ProviderState
from oxygen.controllers.run.types import Event


@dataclass(frozen=True)
class Decision:
    status: ProviderStatus | None  # None: nothing changed, no write
    events: list[Event]
    attempts: int


def decide(obs: Observed, state: ProviderState) -> Decision:
    shards = obs.shards
    attempts = sum(s.attempts for s in shards)
    rate = state.written.requests_per_second
    if state.attempts is not None and obs.clock > state.at:
        rate = round(max(0, attempts - state.attempts) / (obs.clock - state.at), 2)
    live = [s for s in shards if not s.done]
    status = ProviderStatus(
        runs=sum(1 for r in obs.runs if r.active),
        in_flight=sum(s.running for s in live),
        requests_per_second=rate if live else 0.0,
        throttled=sum(s.throttled_calls for s in live),
        effective_requests_per_second=state.effective,
        observed_generation=obs.provider.metadata.generation,
        conditions=[ready(obs, state.written.conditions)],
    )
    events = []
    before = next((c for c in state.written.conditions if c.type == "Ready"), None)
    after = status.conditions[0]
    if after.status == "False" and (before is None or before.status != "False"):
        events.append(Event(after.reason, after.message, "Warning"))
    if status == state.written:
        return Decision(None, [], attempts)
    return Decision(status, events, attempts)


def ready(obs: Observed, previous: list[Condition]) -> Condition:
    headers = obs.provider.spec.http.headers_from
    if headers is not None and obs.secret is False:
        status, reason = "False", "SecretNotFound"
        message = f'secrets "{headers.secret_ref.name}" not found (spec.http.headersFrom.secretRef)'
    else:
        status, reason, message = "True", "Ready", "runs naming this Provider can start"
    old = next((c for c in previous if c.type == "Ready"), None)
    since = old.last_transition_time if old is not None and old.status == status else obs.now
    return Condition(
        type="Ready",
        status=status,
        reason=reason,
        message=message,
        last_transition_time=since,
        observed_generation=obs.provider.metadata.generation,
    )
