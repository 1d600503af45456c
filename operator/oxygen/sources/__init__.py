"""Items sources that stream: a PostgreSQL query (`spec.itemsFrom.postgres`, postgres.py) and a JSONL
or CSV file over HTTP(S) (`spec.itemsFrom.url`, url.py); `open_items` (open.py) picks the one a run
names.

Each yields the `PlannedItem`s planning uses, one at a time: a source is never held whole in memory
(the caller decides where the items go: the item store, or RunShard specs up to the ceiling in
ceiling.py). Whatever stops a source (a bad query, a missing table, an unreachable database, a 404, a
malformed line) raises `errors.SourceError` carrying the database's or the server's own message, which
fails that run only.
"""
