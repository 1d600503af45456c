"""Resolving a Run's items from inline rows or a ConfigMap key (JSONL or CSV); the same row parsing
streams a file line by line (oxygen.sources.url)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator
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
        return list(iter_csv(io.StringIO(text), key))
    if lowered.endswith((".jsonl", ".ndjson", ".json")) or text.lstrip().startswith("{"):
        return list(iter_jsonl(text.splitlines(), key))
    return list(iter_csv(io.StringIO(text), key))


def iter_rows(lines: Iterable[str], fmt: str, key: str) -> Iterator[PlannedItem]:
    """Rows of a stream of text lines, one item at a time: `fmt` is "jsonl" or "csv"."""
    return iter_jsonl(lines, key) if fmt == "jsonl" else iter_csv(lines, key)


def iter_jsonl(lines: Iterable[str], key: str) -> Iterator[PlannedItem]:
    count = 0
    for number, line in enumerate(lines, start=1):
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
        yield PlannedItem(item_id(count), None if row_id is None else str(row_id), inputs)
        count += 1


def iter_csv(lines: Iterable[str], key: str) -> Iterator[PlannedItem]:
    """CSV from lines that keep their line ends (a file object), so quoted newlines survive."""
    reader = csv.reader(lines)
    try:
        header = next(reader)
    except StopIteration:
        return
    if not header or any(not h.strip() for h in header):
        raise ItemsSourceError(f"{key} line 1: the CSV header has an empty column name")
    count = 0
    for row in reader:
        if not row:
            continue
        if len(row) != len(header):
            raise ItemsSourceError(
                f"{key} line {reader.line_num}: {len(row)} fields, the header has {len(header)}"
            )
        record = dict(zip(header, row, strict=True))
        row_id = record.pop("rowId", None)
        yield PlannedItem(item_id(count), row_id, record)
        count += 1
