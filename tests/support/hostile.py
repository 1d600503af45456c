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
objects = st.dictionaries(st.text(max_size=20), json_values, max_size=6)
inputs = st.one_of(
    objects,
    objects,
    objects,
    st.builds(lambda v: {"deep": v}, deep_values),
    json_values,  # not an object: the schema refuses most
)


def hostile(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """A nested field: valid, else anything (the top-level fields are spoiled by `spoil`)."""
    return st.one_of(valid, valid, valid, scalars)


def names() -> st.SearchStrategy[str]:
    """Run names: mostly valid DNS subdomains, many at the 63- and 253-character edges."""
    label = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?", fullmatch=True)
    joined = st.lists(label, min_size=1, max_size=12).flatmap(
        lambda parts: st.sampled_from(["-", "."]).map(lambda sep: sep.join(parts))
    )
    edge = st.integers(min_value=55, max_value=253).flatmap(
        lambda n: st.sampled_from(["-", ".", "y"]).map(lambda c: ("n" * 62 + c + "z" * 300)[:n])
    )
    return st.one_of(joined, joined, joined, edge, edge, edge, st.text(min_size=1, max_size=80))


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
extras = {
    "costPerItem": costs,
    "maxOutputBytes": st.sampled_from([64, 262144, 16384, 63, 262145]),
}
provider_names = st.sampled_from(["echo", "p", "a" * 63, "x.y_z", "echo", "p", "a" * 64, "-x"])
http = st.fixed_dictionaries(
    {"url": urls},
    optional={
        "timeoutSeconds": hostile(st.sampled_from([0.1, 1, 3600, 3601, 0, -1])),
        "headersFrom": hostile(st.just({"secretRef": {"name": "nope"}})),
    },
)
# One way to call (as the schema wants), or any mix of them.
ways = st.one_of(
    st.just({"builtin": "echo"}),
    st.builds(lambda h: {"http": h}, http),
    st.sampled_from([["true"], ["false"], ["/nonexistent"]]).map(lambda c: {"command": c}),
    st.fixed_dictionaries(
        {},
        optional={
            "builtin": hostile(st.just("echo")),
            "http": hostile(http),
            "command": hostile(st.sampled_from([["true"], []])),
        },
    ),
)
producers = st.builds(
    lambda name, way, more: {"provider": name, **way, **more},
    provider_names,
    ways,
    st.fixed_dictionaries({}, optional=extras),
)
items = st.lists(
    st.fixed_dictionaries(
        {"inputs": inputs}, optional={"rowId": st.one_of(*[st.text(max_size=253)] * 3, st.text(min_size=254))}
    ),
    min_size=0,
    max_size=5,
)
valid_specs = st.fixed_dictionaries(
    {
        "mode": st.sampled_from(["dry_run"] * 8 + ["live", "smoke_test"]),
        "items": items,
        "producer": producers,
    },
    optional={
        "kind": st.sampled_from(["column"] * 4 + ["workflow", "ingestion"]),
        "trigger": st.sampled_from(["user", "schedule", "event", "webhook"]),
        "workflowRef": st.just({"name": "nope"}),
        "ingestion": st.fixed_dictionaries(
            {"provider": st.just("p"), "url": urls, "query": st.text(max_size=20)},
            optional={"costPerPage": costs, "maxPages": st.sampled_from([1, 10000])},
        ),
        "inputs": objects,
        "batchSize": st.sampled_from([1, 100, 10000]),
        "parallelism": st.sampled_from([1, 4, 1000]),
        "retry": st.fixed_dictionaries(
            {},
            optional={
                "maxAttempts": st.sampled_from([1, 100]),
                "backoffSeconds": st.sampled_from([0, 0.5, 3600]),
            },
        ),
        "smokeTest": st.fixed_dictionaries({"sampleSize": st.sampled_from([1, 2**40])}),
        "creditAccount": st.sampled_from(["default", "nope", "a" * 300, "Ünï"]),
        "paused": st.booleans(),
        "cancel": st.booleans(),
        "retryFailed": st.sampled_from([0, 1, 2**62]),
        "table": st.text(max_size=20),
        "column": st.text(max_size=20),
    },
)


FIELDS = [
    "kind",
    "mode",
    "items",
    "producer",
    "itemsFrom",
    "inputs",
    "batchSize",
    "parallelism",
    "retry",
    "creditAccount",
    "paused",
    "retryFailed",
    "smokeTest",
    "ingestion",
]


def spoil(spec: dict[str, Any], spoilers: list[tuple[str, Any]]) -> dict[str, Any]:
    """Top-level fields replaced by anything: none or one per manifest, so many pass the schema."""
    return {**spec, **dict(spoilers)}


ITEMS_FROM = {"configMapKeyRef": {"name": "nope", "key": "rows.jsonl"}}
sourced = st.one_of(
    valid_specs,
    valid_specs,
    valid_specs.map(
        lambda spec: {**{k: v for k, v in spec.items() if k != "items"}, "itemsFrom": ITEMS_FROM}
    ),
)
specs = st.builds(
    spoil,
    sourced,
    st.lists(st.tuples(st.sampled_from(FIELDS), st.one_of(scalars, json_values)), max_size=1),
)


def manifest(name: str, spec: Any) -> dict[str, Any]:
    return {"apiVersion": "oxygen.dev/v1alpha1", "kind": "Run", "metadata": {"name": name}, "spec": spec}


runs = st.builds(manifest, names(), specs)
