"""The operator's bound on how deep inputs nest, measured without recursion."""

from __future__ import annotations

from typing import Any

import pytest

from oxygen.api.nesting import MAX_INPUT_DEPTH, deep_input, run_inputs, too_deep


def nested(levels: int, leaf: Any = 1, in_list: bool = False) -> Any:
    value = leaf
    for _ in range(levels):
        value = [value] if in_list else {"a": value}
    return value


@pytest.mark.parametrize(
    ("value", "limit", "path"),
    [
        (1, 0, None),
        ({}, 0, ""),
        ({}, 1, None),
        ({"a": [1]}, 1, ".a"),
        ({"a": [1]}, 2, None),
        ({"a": [{"b": {}}]}, 2, ".a[0]"),
        (nested(MAX_INPUT_DEPTH), MAX_INPUT_DEPTH, None),
        (nested(MAX_INPUT_DEPTH + 1, in_list=True), MAX_INPUT_DEPTH, "[0]" * MAX_INPUT_DEPTH),
    ],
)
def test_too_deep(value: Any, limit: int, path: str | None) -> None:
    assert too_deep(value, limit) == path


def test_ten_thousand_levels_are_measured_without_recursion() -> None:
    assert too_deep(nested(10_000)) == ".a" * MAX_INPUT_DEPTH


def test_the_message_names_the_item() -> None:
    body = {"spec": {"items": [{"inputs": {}}, {"inputs": nested(40)}], "inputs": {"x": 1}}}
    message = deep_input(run_inputs(body))
    assert message is not None
    assert message.startswith("spec.items[1].inputs nests deeper than 32 levels (at spec.items[1].inputs.a.a")
    assert deep_input(run_inputs({"spec": {"items": "not a list"}})) is None
