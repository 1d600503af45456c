"""The text of `runs watch`'s progress bar for one run shape. Pure."""

from __future__ import annotations

from typing import Any

BAR_WIDTH = 30


def progress_line(shape: dict[str, Any], elapsed: float) -> str:
    total = int(shape["items_total"])
    done = int(shape["items_succeeded"]) + int(shape["items_failed"]) + int(shape["items_skipped"])
    fraction = done / total if total else (1.0 if shape["status"] in ("succeeded", "completed") else 0.0)
    filled = min(BAR_WIDTH, int(fraction * BAR_WIDTH))
    bar = "#" * filled + "-" * (BAR_WIDTH - filled)
    parts = [
        f"{shape['name']} [{bar}] {fraction * 100:5.1f}% {done}/{total}",
        f"succeeded {shape['items_succeeded']}",
        f"failed {shape['items_failed']}",
    ]
    if shape["items_skipped"]:
        parts.append(f"skipped {shape['items_skipped']}")
    if shape["items_running"] or shape["items_retrying"]:
        parts.append(f"running {shape['items_running']}")
    if shape["items_retrying"]:
        parts.append(f"retrying {shape['items_retrying']}")
    parts.append(f"credits {shape['credits_used']}")
    parts.append(f"{shape['status']} {int(elapsed)}s")
    return " | ".join(parts)
