"""The Provider's global limits, shared out over the shards using it (the operator is the one allocator).

Each pass (every second while a shard of the Provider is active):
- the effective rate: `rateLimit.requestsPerSecond`, cut to 70 % when shards report new 429s (at most once
  per `CUT_COOLDOWN_SECONDS`, the time a cut takes to reach the workers; never below 1/s), and raised
  by 5 % of the declared rate after each `RECOVER_AFTER_SECONDS` without new 429s;
- each active shard's share of that rate, of `burst` and of `maxInFlight`: a run gets its concurrency's
  part of the whole (one run alone gets all of it, two alike about half each), split evenly over its
  active shards; burst and in-flight in whole numbers by largest remainder, summing to exactly the
  Provider's (so a shard may get 0 in-flight when more shards than `maxInFlight` are active: it waits);
- the shares that changed go out as the shard annotation `oxygen.dev/rate-share`: lowered ones first,
  raised ones (a new shard's first share first) only within what the shares in force leave free,
  counting a lowered share at its old rate until its worker reports the new epoch in status
  (`status.rateShareEpoch`, or `RAISE_AFTER_SECONDS` passed), so the sum stays within the limit
  while shards come and go.
`allocate` is pure but for the AllocatorState it advances; `ShareWriter` makes the writes.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Final

from oxygen.api.common import GROUP, VERSION
from oxygen.api.labels import ANNOTATION_RATE_SHARE
from oxygen.api.provider import ProviderSpec, ProviderStatus
from oxygen.controllers.provider.observe import ShardUse
from oxygen.execution.ratelimit import Share
from oxygen.kube.client import Kube

CUT_FACTOR: Final = 0.7
CUT_COOLDOWN_SECONDS: Final = 3.0
RECOVER_STEP: Final = 0.05
RECOVER_AFTER_SECONDS: Final = 10.0
MIN_TOTAL_RPS: Final = 1.0
# Raises wait until the workers of lowered shares report the lowered epoch in status, at most this long.
RAISE_AFTER_SECONDS: Final = 5.0


@dataclass
class AllocatorState:
    effective: float | None = None
    # Sum of the shards' throttled calls at the last pass (None: not yet seen; the first pass is a base).
    throttled_seen: int | None = None
    last_cut: float = -math.inf
    calm_since: float = 0.0
    # Lowered shares not yet acknowledged by their workers: shard name -> (the epoch written, the
    # rate it may still run at, when); forgotten after RAISE_AFTER_SECONDS.
    lowering: dict[str, tuple[int, float, float]] = field(default_factory=dict)
    epoch: int = 0
    # The shares written, by shard name (the index may lag a write by a moment).
    written: dict[str, Share] = field(default_factory=dict)

    @classmethod
    def resumed(cls, status: ProviderStatus, clock: float) -> AllocatorState:
        """After an operator restart: go on from the rate last shared out (a cut a provider's 429s
        forced is not undone by the restart); it recovers from there as usual, from now."""
        return cls(effective=status.effective_requests_per_second, calm_since=clock)


def active(shards: list[ShardUse]) -> list[ShardUse]:
    return [s for s in shards if s.started and not s.done]


def effective_rate(
    spec: ProviderSpec, shards: list[ShardUse], state: AllocatorState, clock: float
) -> float | None:
    """The rate shared out now; advances the adaptive part of `state`."""
    if spec.rate_limit is None:
        state.effective = None
        return None
    declared = spec.rate_limit.requests_per_second
    rate = min(declared, state.effective if state.effective is not None else declared)
    throttled = sum(s.throttled_calls for s in shards)
    new = 0 if state.throttled_seen is None else max(0, throttled - state.throttled_seen)
    state.throttled_seen = throttled
    if new > 0:
        if clock - state.last_cut >= CUT_COOLDOWN_SECONDS:
            rate = max(min(MIN_TOTAL_RPS, declared), rate * CUT_FACTOR)
            state.last_cut = clock
        state.calm_since = clock
    elif rate < declared and clock - state.calm_since >= RECOVER_AFTER_SECONDS:
        rate = min(declared, rate + RECOVER_STEP * declared)
        state.calm_since = clock
    state.effective = round(rate, 3)
    return state.effective


def apportion(total: int, parts: dict[str, float]) -> dict[str, int]:
    """`total` in whole numbers by `parts` (fractions summing to 1), largest remainder first: the sum
    is exactly `total`, so some shards may get 0 when there are more of them than units."""
    exact = {name: total * part for name, part in parts.items()}
    out = {name: math.floor(x) for name, x in exact.items()}
    left = total - sum(out.values())
    for name in sorted(exact, key=lambda n: (out[n] - exact[n], n))[: max(0, left)]:
        out[name] += 1
    return out


def targets(spec: ProviderSpec, shards: list[ShardUse], rate: float | None) -> dict[str, Share]:
    """Each active shard's share (epoch 0: stamped when written)."""
    runs: dict[str, list[ShardUse]] = defaultdict(list)
    for shard in active(shards):
        runs[shard.run_uid].append(shard)
    weights = {uid: max(s.concurrency for s in group) for uid, group in runs.items()}
    whole = sum(weights.values())
    parts = {shard.name: weights[uid] / whole / len(group) for uid, group in runs.items() for shard in group}
    bursts = apportion(spec.rate_limit.burst if spec.rate_limit is not None else len(parts), parts)
    in_flight = None if spec.max_in_flight is None else apportion(spec.max_in_flight, parts)
    return {
        name: Share(
            rps=None if rate is None else round(rate * part, 3),
            burst=bursts[name],
            in_flight=None if in_flight is None else in_flight[name],
            epoch=0,
        )
        for name, part in parts.items()
    }


def lowers(target: Share, current: Share | None) -> bool:
    """Whether writing `target` over `current` lowers some limit (a first share never does)."""
    if current is None:
        return False

    def below(new: float | None, old: float | None) -> bool:
        return new is not None and (old is None or new < old)

    return (
        below(target.rps, current.rps)
        or target.burst < current.burst
        or below(target.in_flight, current.in_flight)
    )


def allocate(
    spec: ProviderSpec, shards: list[ShardUse], state: AllocatorState, clock: float
) -> list[tuple[str, Share]]:
    """The annotation writes of this pass, in order (lowered shares first)."""
    rate = effective_rate(spec, shards, state, clock)
    wanted = targets(spec, shards, rate)
    state.written = {name: share for name, share in state.written.items() if name in wanted}
    current = {s.name: state.written.get(s.name, s.share) for s in shards if s.name in wanted}
    changed = {name: t for name, t in wanted.items() if not t.same_limits(current.get(name))}
    if not changed:
        return []
    lowered = {name: t for name, t in changed.items() if lowers(t, current.get(name))}
    acknowledged = {s.name: s.share_seen or 0 for s in shards}
    state.lowering = {
        n: (epoch, rps, at)
        for n, (epoch, rps, at) in state.lowering.items()
        if n in wanted and acknowledged.get(n, 0) < epoch and clock - at < RAISE_AFTER_SECONDS
    }
    # The rate each shard may still be running at: its share, or a higher one not yet acknowledged.
    in_force = {n: (c.rps or 0.0) if (c := current.get(n)) is not None else 0.0 for n in wanted}
    for name, (_, rps, _) in state.lowering.items():
        in_force[name] = max(in_force[name], rps)
    epoch = max([state.epoch, *(s.share.epoch for s in shards if s.share is not None)])
    writes: list[tuple[str, Share]] = []

    def write(name: str, target: Share) -> None:
        nonlocal epoch
        epoch += 1
        share = Share(rps=target.rps, burst=target.burst, in_flight=target.in_flight, epoch=epoch)
        writes.append((name, share))
        state.written[name] = share

    for name, target in lowered.items():
        before = current.get(name)
        write(name, target)
        state.lowering[name] = (epoch, in_force[name] if before is not None else 0.0, clock)
    # Raises (first shares before the others) only within what the shares in force leave free.
    for name, target in sorted(changed.items(), key=lambda kv: current.get(kv[0]) is not None):
        if name in lowered:
            continue
        after = sum(in_force.values()) - in_force[name] + (target.rps or 0.0)
        if rate is not None and target.rps is not None and after > rate + 1e-6:
            continue
        write(name, target)
        in_force[name] = target.rps or 0.0
    state.epoch = epoch
    return writes


class ShareWriter:
    def __init__(self, kube: Kube) -> None:
        self.kube = kube

    def write(self, namespace: str, writes: list[tuple[str, Share]]) -> None:
        for name, share in writes:
            patch = {"metadata": {"annotations": {ANNOTATION_RATE_SHARE: share.wire()}}}
            try:
                self.kube.custom.patch_namespaced_custom_object(
                    GROUP, VERSION, namespace, "runshards", name, patch
                )
            except Exception as exc:
                if getattr(exc, "status", None) != 404:  # a finished run's shard may be gone already
                    raise
