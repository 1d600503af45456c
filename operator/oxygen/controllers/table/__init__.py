"""The Table controller: observe (observe.py) → decide (decide.py) → apply (apply.py).

handlers.py is the kopf glue: a daemon per Table that connects with its Secret's DSN every few seconds
and writes what it finds (rows, columns and how filled they are, Ready) into the Table's status. A
database or table it cannot reach is a condition and an Event, never a crash.
"""
