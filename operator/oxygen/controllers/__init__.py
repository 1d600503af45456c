"""One package per resource the operator controls: kopf glue, observe, pure decisions, apply."""
