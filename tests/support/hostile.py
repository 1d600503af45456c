"""Hostile Run manifests for fuzzing (hypothesis strategies): wrong types, huge numbers and strings,
unicode, nulls, names at length limits, costs like `1e999`, `NaN`, `-1`, inputs nested deep.

Most fields are drawn either valid or hostile, so that many manifests pass the API server's schema
and reach the operator. Nothing drawn makes a worker touch the network or the machine: URLs point
at a closed loopback port and commands are harmless; `mode` is mostly dry_run (nothing executes),
so a few hundred Runs plan and finish without a worker process each.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

# Strings that other parsers read as numbers, or that sit at a bound.
TRICKY_TEXT = [
    "1e999",
    "NaN",
    "-1",
    "Infinity",
    "-0",
    "0x10",
    "1.0000000000000000000000000000001",
    "9" * 300,
    "999999999999999999.999999999",
    "0.000000001",
    "",
    " ",
    "null",
    "${inputs.x}",
    "${steps.a.outputs.b}",
    "\u0000",
    "\u202e\u200b",
    "🦄" * 40,
    "ä" * 300,
]
TRICKY_NUMBERS = [0, -1, 2**31, 2**63 - 1, -(2**63), 2**64, 10**30, 1e308, -1e308, 1e-300, 0.5]


def nested(levels: int, leaf: Any = 1) -> Any:
    value = leaf
    for i in range(levels):
        value = [value] if i % 2 else {"k": value}
    return value


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.sampled_from(TRICKY_NUMBERS),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(TRICKY_TEXT),
    st.text(max_size=30),
    st.integers(min_value=2000, max_value=40_000).map(lambda n: "x" * n),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)
deep_values = st.sampled_from([1, 8, 33, 200, 1200, 5000]).map(nested)
inputs = st.one_of(
    st.dictionaries(st.text(max_size=20), json_values, max_size=6),
    st.builds(lambda v: {"deep": v}, deep_values),
    json_values,  # not an object: the schema refuses most
)


def hostile(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """A field drawn valid most of the time, else anything."""
    return st.one_of(valid, valid, valid, scalars, json_values)


def names() -> st.SearchStrategy[str]:
    """Run names: mostly valid DNS subdomains, many at the 63- and 253-character edges."""
    label = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?", fullmatch=True)
    joined = st.lists(label, min_size=1, max_size=12).flatmap(
        lambda parts: st.sampled_from(["-", "."]).map(lambda sep: sep.join(parts))
    )
    edge = st.integers(min_value=55, max_value=253).flatmap(
        lambda n: st.sampled_from(["-", ".", "y"]).map(lambda c: ("n" * 62 + c + "z" * 300)[:n])
    )
    return st.one_of(joined, edge, st.text(min_size=1, max_size=80))


costs = st.one_of(
    st.sampled_from(["0", "1", "0.25", "999999999999999999.999999999", "0.000000001"]),
    st.sampled_from(TRICKY_TEXT),
    scalars,
)
urls = st.sampled_from(
    [
        "http://127.0.0.1:9/x",
        "http://[::1]:9/x",
        "http://localhost:9",
        "http://127.0.0.1:99999/x",
        "http://",
        "ftp://127.0.0.1/x",
        "http://127.0.0.1:0/",
        "http://127.0.0.1:9/" + "p" * 3000,  # longer than the schema's 2048
        "http://user:pw@127.0.0.1:9/x?q=1#f",
    ]
)
producers = st.fixed_dictionaries(
    {"provider": hostile(st.sampled_from(["echo", "p", "a" * 63, "a" * 64, "-x", "x.y_z"]))},
    optional={
        "builtin": hostile(st.just("echo")),
        "http": hostile(
            st.fixed_dictionaries(
                {"url": urls},
                optional={
                    "timeoutSeconds": hostile(st.sampled_from([0.1, 1, 3600, 3601, 0, -1])),
                    "headersFrom": hostile(st.just({"secretRef": {"name": "nope"}})),
                },
            )
        ),
        "command": hostile(st.sampled_from([["true"], ["false"], ["/nonexistent"], []])),
        "costPerItem": costs,
        "maxOutputBytes": hostile(st.sampled_from([64, 63, 262144, 262145])),
    },
)
items = st.lists(
    st.fixed_dictionaries(
        {"inputs": inputs}, optional={"rowId": hostile(st.text(max_size=300))}
    ),
    min_size=0,
    max_size=5,
)
specs = st.fixed_dictionaries(
    {
        "mode": st.sampled_from(["dry_run"] * 6 + ["live", "smoke_test", "DRY", ""]),
        "items": hostile(items),
        "producer": hostile(producers),
    },
    optional={
        "kind": hostile(st.sampled_from(["column", "workflow", "ingestion"])),
        "trigger": hostile(st.sampled_from(["user", "schedule", "event", "webhook"])),
        "itemsFrom": hostile(st.just({"configMapKeyRef": {"name": "nope", "key": "rows.jsonl"}})),
        "workflowRef": hostile(st.just({"name": "nope"})),
        "ingestion": hostile(
            st.fixed_dictionaries(
                {"provider": st.just("p"), "url": urls, "query": hostile(st.text(max_size=20))},
                optional={"costPerPage": costs, "maxPages": hostile(st.sampled_from([1, 10000, 10001]))},
            )
        ),
        "inputs": inputs,
        "batchSize": hostile(st.sampled_from([1, 100, 10000, 10001, 0])),
        "parallelism": hostile(st.sampled_from([1, 4, 1000, 1001, 0])),
        "retry": hostile(
            st.fixed_dictionaries(
                {},
                optional={
                    "maxAttempts": hostile(st.sampled_from([1, 100, 101, 0])),
                    "backoffSeconds": hostile(st.sampled_from([0, 0.5, 3600, 3601, -1])),
                },
            )
        ),
        "smokeTest": hostile(st.fixed_dictionaries({"sampleSize": hostile(st.sampled_from([1, 0, 2**40]))})),
        "creditAccount": hostile(st.sampled_from(["default", "nope", "a" * 300, "Ünï"])),
        "paused": hostile(st.booleans()),
        "cancel": hostile(st.booleans()),
        "retryFailed": hostile(st.sampled_from([0, 1, 2**62, -1])),
        "table": hostile(st.text(max_size=20)),
        "column": hostile(st.text(max_size=20)),
    },
)


def manifest(name: str, spec: Any) -> dict[str, Any]:
    return {"apiVersion": "oxygen.dev/v1alpha1", "kind": "Run", "metadata": {"name": name}, "spec": spec}


runs = st.builds(manifest, names(), specs)
