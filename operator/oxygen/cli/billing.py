"""`oxygen billing ledger`: grants from CreditAccounts and each run's reserved/captured/released entries.

A deleted run's charges stay: its account keeps them (status.retired), one row per movement for each
of the latest deleted runs and one for the earlier ones together, so every type still sums to the
account's totals.

Credits arrive with the CreditAccount resource; until the cluster serves it the ledger is empty
(not an error), so scripts written now keep working when it lands.
"""

from __future__ import annotations

import argparse
from decimal import Decimal
from typing import Any

from oxygen.api.common import credits_str
from oxygen.cli.command import Session, cluster_command
from oxygen.cli.errors import EXIT_OK
from oxygen.cli.output import print_listing
from oxygen.cli.shapes import grant_rows, run_ledger_rows, sort_ledger

RETIRED_TYPES = ("reserved", "captured", "released")

LEDGER_COLUMNS = ("AT", "ACCOUNT", "TYPE", "AMOUNT", "RUN", "REASON")


def register(
    groups: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    billing = groups.add_parser("billing", parents=[common], help="credits")
    sub = billing.add_subparsers(dest="command", metavar="<command>", required=True)
    ledger = sub.add_parser(
        "ledger", parents=[common], help="the credit ledger: granted, reserved, captured, released"
    )
    ledger.add_argument("--account", help="only this credit account")
    ledger.set_defaults(handler=cluster_command(ledger_command))


def ledger_rows(session: Session, account: str | None) -> list[dict[str, Any]]:
    api = session.api
    served = api.served_resources()
    if "creditaccounts" not in served:
        return []
    accounts_scope = api.scope() if served["creditaccounts"] else None
    rows: list[dict[str, Any]] = []
    folded: set[str] = set()
    for credit_account in api.iter_objects("creditaccounts", accounts_scope):
        rows.extend(grant_rows(credit_account))
        rows.extend(retired_rows(credit_account))
        retired = (credit_account.get("status") or {}).get("retired") or {}
        folded.update(str(r.get("uid")) for r in retired.get("latest") or [])
    for run in api.iter_objects("runs", api.scope()):
        if (run.get("metadata") or {}).get("uid") not in folded:  # being deleted, already counted
            rows.extend(run_ledger_rows(run))
    if account is not None:
        rows = [r for r in rows if r["account"] == account]
    return sort_ledger(rows)


def retired_rows(account: dict[str, Any]) -> list[dict[str, Any]]:
    """Deleted runs' movements, from their account: the latest one by one, the earlier ones summed."""
    name = (account.get("metadata") or {}).get("name")
    retired = (account.get("status") or {}).get("retired") or {}
    latest = retired.get("latest") or []
    rows = []
    for run in latest:
        for kind in RETIRED_TYPES:
            if Decimal(run.get(kind) or 0):
                rows.append(
                    _retired_row(
                        name, kind, run.get(kind), run.get("name"), run.get("deletedAt"), "run deleted"
                    )
                )
    earlier = int(retired.get("runs") or 0) - len(latest)
    if earlier > 0:
        oldest = min((r.get("deletedAt") or "" for r in latest), default="") or None
        for kind in RETIRED_TYPES:
            rest = Decimal(retired.get(kind) or 0) - sum(
                (Decimal(r.get(kind) or 0) for r in latest), Decimal(0)
            )
            if rest:
                rows.append(
                    _retired_row(
                        name, kind, credits_str(rest), None, oldest, f"{earlier} earlier deleted runs"
                    )
                )
    return rows


def _retired_row(account: Any, kind: str, amount: Any, run: Any, at: Any, reason: str) -> dict[str, Any]:
    return {
        "account": account,
        "run": run,
        "type": kind,
        "amount": str(amount),
        "at": at,
        "reason": reason,
        "id": None,
    }


def ledger_command(args: argparse.Namespace, session: Session) -> int:
    rows = ledger_rows(session, args.account)
    print_listing(
        rows,
        session.json,
        "ledger entries",
        LEDGER_COLUMNS,
        lambda rs: [(r["at"], r["account"], r["type"], r["amount"], r["run"], r["reason"]) for r in rs],
    )
    return EXIT_OK
