"""Deleted runs, pure: fold a run being deleted into its account's `status.retired`, once.

A metered Run carries RETIRE_FINALIZER (the Run controller puts it on when it first records credits),
so it cannot go away before its account has its figures. The account's pass folds every such run
that is being deleted into `retired` (keyed by uid), writes the status, and only then releases the
finalizer. A crash between the two leaves the uid in `retired.latest`: the next pass does not count
the run again (ledger.account_totals skips its live share too) and just releases the finalizer.
Whatever the deleted run still held is released. A run deleted mid-flight is folded only once it is
settled (ledger.settled): the Run controller first stops it like a cancel (its Jobs deleted and gone,
its shards settled) and writes its final credits with the `Settled` condition, so calls its workers
made after its last status write are captured, not lost. The finalizer needs the operator running
(as any operator's finalizer): with the operator gone, a deleted metered Run waits for it.

At most FOLD_PER_PASS runs are folded per pass, far fewer than `latest` lists: a run folded in and
not yet let go stays listed (so never counted twice) until a later pass releases it, even when
many runs are deleted at once.
"""

from __future__ import annotations

from collections.abc import Iterable

from oxygen.api.creditaccount import MAX_RETIRED_LISTED, Retired, RetiredRun
from oxygen.credits.ledger import RunShare

FOLD_PER_PASS = 10


def folded_uids(retired: Retired) -> set[str]:
    return {r.uid for r in retired.latest}


def fold(retired: Retired, shares: Iterable[RunShare], limit: int = FOLD_PER_PASS) -> Retired:
    """`retired` with the runs being deleted under the finalizer folded in (each uid once; the
    `limit` earliest deleted this pass, the rest later).

    A listed run that still exists is never dropped from `latest` (that would count it again): only
    as many are folded as the list has room for beside them, and only gone runs fall off its end.
    """
    out = retired.model_copy(deep=True)
    shares = list(shares)
    present = {s.uid for s in shares}
    done = folded_uids(out)
    room = MAX_RETIRED_LISTED - sum(1 for r in out.latest if r.uid in present)
    # A run still stopping (its Jobs may still call providers) is folded once its status is final.
    waiting = [s for s in shares if s.deleted_at and s.held_for_account and s.settled and s.uid not in done]
    added: list[RetiredRun] = []
    for share in sorted(waiting, key=lambda s: (s.deleted_at, s.name))[: max(0, min(limit, room))]:
        released = share.released + share.reserved  # what it still held is no longer held
        entry = RetiredRun(
            name=share.name,
            uid=share.uid,
            reserved=share.captured + released,
            captured=share.captured,
            released=released,
            deleted_at=share.deleted_at,
        )
        out.runs += 1
        out.reserved += entry.reserved
        out.captured += entry.captured
        out.released += entry.released
        added.insert(0, entry)
    latest = [*added, *out.latest]
    while len(latest) > MAX_RETIRED_LISTED:  # the oldest gone run falls off
        drop = max(i for i, r in enumerate(latest) if r.uid not in present)
        del latest[drop]
    out.latest = latest
    return out


def releasable(retired: Retired, shares: Iterable[RunShare]) -> list[str]:
    """Runs being deleted whose figures `retired` holds: their finalizer may go (names, sorted)."""
    done = folded_uids(retired)
    return sorted(s.name for s in shares if s.deleted_at and s.held_for_account and s.uid in done)
