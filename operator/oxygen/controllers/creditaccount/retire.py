"""Deleted runs, pure: fold a run being deleted into its account's `status.retired`, once.

A metered Run carries RETIRE_FINALIZER (the Run controller puts it on when it first records credits),
so it cannot go away before its account has its figures. The account's pass folds every such run
that is being deleted into `retired` (keyed by uid), writes the status, and only then releases the
finalizer. A crash between the two leaves the uid in `retired.latest`: the next pass does not count
the run again (ledger.account_totals skips its live share too) and just releases the finalizer.
Whatever the deleted run still held is released: its Jobs go with it.
"""

from __future__ import annotations

from collections.abc import Iterable

from oxygen.api.creditaccount import MAX_RETIRED_LISTED, Retired, RetiredRun
from oxygen.credits.ledger import RunShare


def folded_uids(retired: Retired) -> set[str]:
    return {r.uid for r in retired.latest}


def fold(retired: Retired, shares: Iterable[RunShare]) -> Retired:
    """`retired` with every run being deleted under the finalizer folded in (each uid once)."""
    out = retired.model_copy(deep=True)
    done = folded_uids(out)
    for share in sorted(shares, key=lambda s: (s.deleted_at, s.name)):
        if not share.deleted_at or not share.held_for_account or share.uid in done:
            continue
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
        out.latest = [entry, *out.latest][:MAX_RETIRED_LISTED]
        done.add(share.uid)
    return out


def releasable(retired: Retired, shares: Iterable[RunShare]) -> list[str]:
    """Runs being deleted whose figures `retired` holds: their finalizer may go (names, sorted)."""
    done = folded_uids(retired)
    return sorted(s.name for s in shares if s.deleted_at and s.held_for_account and s.uid in done)
