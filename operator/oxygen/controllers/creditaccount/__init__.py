"""The CreditAccount controller: the account's status is derived from its runs' statuses.

handlers (kopf glue) → observe (the account and its runs' shares, from memory) → decide (pure: the
status to write, Events) → apply (the only API caller). The operator is the single writer; workers
never touch accounts.
"""
