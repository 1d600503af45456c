"""`oxygen billing ledger`: grants from CreditAccounts and each run's reserved/captured/released entries.

Credits arrive with the CreditAccount resource; until the cluster serves it the ledger is empty
(not an error), so scripts written now keep working when it lands.
"""

from __future__ import annotations

import argparse
from typing import Any

from oxygen.cli.command import Session, cluster_command
from oxygen.cli.errors import EXIT_OK
from oxygen.cli.output import print_listing
from oxygen.cli.shapes import grant_rows, run_ledger_rows, sort_ledger

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
    for credit_account in api.iter_objects("creditaccounts", accounts_scope):
        rows.extend(grant_rows(credit_account))
    for run in api.iter_objects("runs", api.scope()):
        rows.extend(run_ledger_rows(run))
    if account is not None:
        rows = [r for r in rows if r["account"] == account]
    return sort_ledger(rows)


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
