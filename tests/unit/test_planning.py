"""Planning: items from their source, batches, deterministic names, rounds."""

from __future__ import annotations

import re

import pytest

from oxygen.api.run import RunSpec
from oxygen.api.runshard import RunShardSpec
from oxygen.planning.items import ItemsSourceError, PlannedItem, parse_rows
from oxygen.planning.names import MAX_NAME, round_of, shard_name
from oxygen.planning.rounds import SKIP_SMOKE, initial_groups, shard_bodies, skipped_status
from oxygen.planning.shards import batches

RUN = {
    "apiVersion": "oxygen.dev/v1alpha1",
    "kind": "Run",
    "metadata": {"name": "r", "namespace": "ns", "uid": "u"},
}


def spec(**kw: object) -> RunSpec:
    return RunSpec.model_validate({"items": [], "producer": {"provider": "p", "builtin": "echo"}, **kw})


def items(n: int) -> list[PlannedItem]:
    return [PlannedItem(str(i), f"r{i}", {"n": i}) for i in range(n)]


def test_shard_names_are_deterministic_and_fit_a_label() -> None:
    assert shard_name("enrich", 0, 3) == "enrich-r0-0003"
    long = "x" * 120
    name = shard_name(long, 2, 17)
    assert len(name) <= MAX_NAME
    assert name == shard_name(long, 2, 17)
    assert name.endswith("-r2-0017")
    assert shard_name("x" * 119 + "y", 2, 17) != name


# A DNS subdomain, what the API server accepts as a Run's (and a RunShard's) name.
SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


@pytest.mark.parametrize(
    ("run", "round_", "index"),
    [
        ("x" * 120, 2, 17),
        ("a" + "-" * 100 + "b", 0, 0),  # the cut ends in dashes, stripped
        ("team.a." + "y" * 80, 11, 12345),
        ("z" * 56, 0, 0),  # one character too long for the plain name
    ],
    ids=["long", "dashes-at-the-cut", "dots", "just-too-long"],
)
def test_a_long_runs_shard_name_is_no_short_runs(run: str, round_: int, index: int) -> None:
    name = shard_name(run, round_, index)
    suffix = f"-r{round_}-{index:04d}"
    assert len(name) <= MAX_NAME and name.endswith(suffix) and round_of(name) == round_
    # The only Run whose plain shard name this could be is the part before the suffix: not a name.
    plain = name.removesuffix(suffix)
    assert plain.endswith("-") and not SUBDOMAIN.match(plain)
    assert SUBDOMAIN.match(name)  # still a valid object name


def test_short_run_names_keep_their_shard_names() -> None:
    assert shard_name("enrich", 0, 3) == "enrich-r0-0003"
    assert shard_name("y" * 55, 1, 2) == "y" * 55 + "-r1-0002"  # exactly MAX_NAME


def test_jsonl_rows_and_malformed_line_number() -> None:
    rows = parse_rows('{"rowId": "a", "inputs": {"x": 1}}\n\n{"inputs": {"x": 2}}\n', "rows.jsonl")
    assert [(r.id, r.row_id, r.inputs) for r in rows] == [("0", "a", {"x": 1}), ("1", None, {"x": 2})]
    with pytest.raises(ItemsSourceError, match=r"rows\.jsonl line 3: not valid JSON"):
        parse_rows('{"inputs": {}}\n{"inputs": {}}\n{"inputs": \n', "rows.jsonl")
    with pytest.raises(ItemsSourceError, match="line 1: unknown field"):
        parse_rows('{"row": 1}\n', "rows.jsonl")


def test_csv_rows_use_rowid_column_and_check_width() -> None:
    rows = parse_rows("rowId,company\nr1,Acme\nr2,Globex\n", "rows.csv")
    assert [(r.row_id, r.inputs) for r in rows] == [
        ("r1", {"company": "Acme"}),
        ("r2", {"company": "Globex"}),
    ]
    with pytest.raises(ItemsSourceError, match=r"rows\.csv line 3: 3 fields, the header has 2"):
        parse_rows("rowId,company\nr1,Acme\nr2,Globex,extra\n", "rows.csv")


def test_batches_by_count_and_by_bytes() -> None:
    assert [len(b) for b in batches(items(250), 50)] == [50] * 5
    big = [PlannedItem(str(i), None, {"blob": "x" * 1000}) for i in range(10)]
    sized = batches(big, 100, max_bytes=3500)
    assert [len(b) for b in sized] == [3, 3, 3, 1]


def test_smoke_test_executes_the_sample_and_records_the_rest_skipped() -> None:
    groups = initial_groups(spec(mode="smoke_test", smokeTest={"sampleSize": 5}), items(40))
    assert [(len(g.items), g.execute) for g in groups] == [(5, True), (35, False)]
    bodies = shard_bodies(RUN, spec(mode="smoke_test", batchSize=10), 0, groups)
    assert [b["metadata"]["name"] for b in bodies] == [f"r-r0-{i:04d}" for i in range(5)]
    assert [b["spec"]["execute"] for b in bodies] == [True, False, False, False, False]
    status = skipped_status(RunShardSpec.model_validate(bodies[1]["spec"]))
    assert status.summary.skipped == 10
    assert status.phase == "Succeeded"
    assert status.message == SKIP_SMOKE


def test_dry_run_executes_nothing() -> None:
    groups = initial_groups(spec(mode="dry_run"), items(3))
    assert [g.execute for g in groups] == [False]


def test_round_is_read_from_the_end_of_a_shard_name() -> None:
    from oxygen.planning.names import round_of

    assert round_of("sync-r2-accounts-r1-0000") == 1
    assert round_of(shard_name("sync-r2-accounts", 3, 12)) == 3
    assert round_of("not-a-shard") is None
