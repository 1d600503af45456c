"""The Run controller: observe (observe.py) → decide (one module per policy) → apply (apply.py).

reconcile.py is the top-down pass; handlers.py the kopf glue. The decide modules are pure: plan.py
(the initial round), credits.py, rounds.py (retry and promotion), jobs.py, cancel.py, status.py;
deletion.py stops a metered Run deleted mid-flight before its account folds it in.
"""
