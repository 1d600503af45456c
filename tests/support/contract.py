"""The JSON shapes the CLI promises (DESIGN.md), field names exactly: what the tests hold it to."""

RUN_CONTRACT = (
    "id",
    "kind",
    "status",
    "mode",
    "trigger",
    "items_total",
    "items_succeeded",
    "items_failed",
    "items_pending",
    "credits_used",
    "credits_reserved",
    "started_at",
    "finished_at",
    "web_url",
)
ITEM_CONTRACT = ("id", "row_id", "status", "attempt_count", "inputs", "outputs", "error", "credits_used")
