"""The one error of this package: the database or the table cannot be used; the message says why."""

from __future__ import annotations


class TableError(Exception):
    """`reason` is a condition reason (DatabaseUnreachable, TableNotFound, …), the message the database's."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
