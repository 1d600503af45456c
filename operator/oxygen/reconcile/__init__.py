"""kopf glue (handlers.py) over the reconcilers (runs.py)."""
