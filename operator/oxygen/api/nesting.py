"""How deep free-form JSON (item inputs) may nest, checked without recursion.

The API server accepts JSON nested up to 10,000 levels, and `x-kubernetes-preserve-unknown-fields`
data is invisible to CRD validation rules, so it cannot refuse deep inputs itself. Python walks
nested data recursively (copies, serializers, templates), so the operator refuses inputs deeper than
MAX_INPUT_DEPTH before anything walks them: the run fails with the path of the offending value.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

MAX_INPUT_DEPTH = 32


def too_deep(value: Any, limit: int = MAX_INPUT_DEPTH) -> str | None:
    """The JSON path (below `value`) of the first container nested deeper than `limit`, else None.

    Depth counts containers: `{}` and `[]` are 1, `{"a": [1]}` is 2, a scalar is 0.
    """
    stack: list[tuple[Any, int, str]] = [(value, 1, "")]
    while stack:
        node, depth, path = stack.pop()
        if isinstance(node, dict):
            children: Iterable[tuple[str, Any]] = ((f"{path}.{k}", v) for k, v in node.items())
        elif isinstance(node, list):
            children = ((f"{path}[{i}]", v) for i, v in enumerate(node))
        else:
            continue
        if depth > limit:
            return path
        stack.extend((child, depth + 1, where) for where, child in children)
    return None


def deep_input(named: Iterable[tuple[str, Any]], limit: int = MAX_INPUT_DEPTH) -> str | None:
    """The message for the first of `named` (where, value) that nests too deep, else None."""
    for where, value in named:
        path = too_deep(value, limit)
        if path is not None:
            return (
                f"{where} nests deeper than {limit} levels (at {where}{path[:120]}"
                f"{'…' if len(path) > 120 else ''}); flatten the inputs"
            )
    return None


def run_inputs(body: dict[str, Any]) -> list[tuple[str, Any]]:
    """The free-form parts of a Run's spec, named by their path (read from the raw body)."""
    spec = body.get("spec")
    if not isinstance(spec, dict):
        return []
    named: list[tuple[str, Any]] = [("spec.inputs", spec.get("inputs"))]
    items = spec.get("items")
    if isinstance(items, list):
        named += [
            (f"spec.items[{i}].inputs", item.get("inputs"))
            for i, item in enumerate(items)
            if isinstance(item, dict)
        ]
    return named
