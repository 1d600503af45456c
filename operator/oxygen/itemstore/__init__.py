"""The PostgreSQL item store: one row per item of a Run (issue 16)."""
