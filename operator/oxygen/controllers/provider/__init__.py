"""The Provider controller: observe (observe.py) → decide (decide.py) → apply (apply.py).

handlers.py is the kopf glue: indexes of the runs and shards that use each Provider, and a daemon per
Provider that writes what it observes into the Provider's status (runs, in flight, rate, Ready).
"""
