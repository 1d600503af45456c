"""Resolving a Run's items from inline rows or a ConfigMap key (JSONL or CSV)."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from typing import Any

from oxygen.api.run import Producer, RunItem


class ItemsSourceError(ValueError):
    """The items source cannot be used; the message names the problem (and the line)."""


@dataclass(frozen=True)
class PlannedItem:
    id: str
    row_id: str | None
    inputs: dict[str, Any]
    # Workflow steps only: the step's name, its producer and its templated inputs.
    step: str | None = None
    producer: Producer | None = None
    inputs_template: dict[str, Any] | None = None


def item_id(index: int) -> str:
    """Stable within the run: the item's position in its source."""
    return str(index)


def from_inline(rows: list[RunItem]) -> list[PlannedItem]:
    return [PlannedItem(item_id(i), row.row_id, row.inputs) for i, row in enumerate(rows)]


def parse_rows(text: str, key: str) -> list[PlannedItem]:
    """JSONL (a {"rowId", "inputs"} object per line) or CSV (header row; `rowId` column if present)."""
    lowered = key.lower()
    if lowered.endswith(".csv"):
        return _parse_csv(text, key)
    if lowered.endswith((".jsonl", ".ndjson", ".json")) or text.lstrip().startswith("{"):
        return _parse_jsonl(text, key)
    return _parse_csv(text, key)


def _parse_jsonl(text: str, key: str) -> list[PlannedItem]:
    items: list[PlannedItem] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise ItemsSourceError(f"{key} line {number}: not valid JSON ({err.msg})") from None
        if not isinstance(row, dict):
            raise ItemsSourceError(f"{key} line {number}: expected a JSON object, got {type(row).__name__}")
        inputs = row.get("inputs", {})
        if not isinstance(inputs, dict):
            raise ItemsSourceError(f"{key} line {number}: `inputs` must be an object")
        unknown = set(row) - {"rowId", "inputs"}
        if unknown:
            raise ItemsSourceError(
                f"{key} line {number}: unknown field(s) {', '.join(sorted(unknown))} "
                '(a line is {"rowId": ..., "inputs": {...}})'
            )
        row_id = row.get("rowId")
        items.append(PlannedItem(item_id(len(items)), None if row_id is None else str(row_id), inputs))
    return items


def _parse_csv(text: str, key: str) -> list[PlannedItem]:
    reader = csv.reader(io.StringIO(text))
    try:
        header = next(reader)
    except StopIteration:
        return []
    if not header or any(not h.strip() for h in header):
        raise ItemsSourceError(f"{key} line 1: the CSV header has an empty column name")
    items: list[PlannedItem] = []
    for row in reader:
        if not row:
            continue
        if len(row) != len(header):
            raise ItemsSourceError(
                f"{key} line {reader.line_num}: {len(row)} fields, the header has {len(header)}"
            )
        record = dict(zip(header, row, strict=True))
        row_id = record.pop("rowId", None)
        items.append(PlannedItem(item_id(len(items)), row_id, record))
    return items
