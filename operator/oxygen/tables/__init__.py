"""Tables on PostgreSQL: what a Table's database holds (rows, columns, cells), read and written.

Only this package (with oxygen.itemstore, oxygen.sources and the dev cluster) imports psycopg. The
cells' side tables live in the Table's own database, schema `oxygen` (schema.py), so selecting the
rows that need a run (an empty or failed cell) is one query joining the user's table to them.
"""
