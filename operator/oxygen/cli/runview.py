"""How runs are shown: the run shape as JSON, or kubectl's columns."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from oxygen.cli.output import age, print_json, print_listing, render_table
from oxygen.cli.shapes import run_shape

RUN_COLUMNS = ("NAME", "PHASE", "MODE", "TOTAL", "SUCCEEDED", "FAILED", "CREDITS", "AGE")


def run_row(shape: dict[str, Any], with_namespace: bool) -> list[Any]:
    row = [
        shape["name"],
        shape["status"],
        shape["mode"],
        shape["items_total"],
        shape["items_succeeded"],
        shape["items_failed"],
        shape["credits_used"],
        age(shape["created_at"]),
    ]
    return [shape["namespace"], *row] if with_namespace else row


Shape = Callable[[Mapping[str, Any]], dict[str, Any]]


def print_runs(
    runs: Iterable[dict[str, Any]], as_json: bool, with_namespace: bool, shape: Shape = run_shape
) -> None:
    """`shape`: run_shape, or one that adds extras after its fields."""
    headers = ("NAMESPACE", *RUN_COLUMNS) if with_namespace else RUN_COLUMNS
    print_listing(
        [shape(r) for r in runs],
        as_json,
        "runs",
        headers,
        lambda shapes: [run_row(s, with_namespace) for s in shapes],
    )


def print_run(run: dict[str, Any], as_json: bool, shape: Shape = run_shape) -> None:
    shaped = shape(run)
    if as_json:
        print_json(shaped)
        return
    sys.stdout.write(render_table(RUN_COLUMNS, [run_row(shaped, False)]))
    if shaped["message"]:
        print(f"message: {shaped['message']}")
