"""Secrets stay out of status: redaction of echoed header values, and each step's own environment."""

from __future__ import annotations

import json
import sys
from decimal import Decimal

import pytest

from oxygen.api.run import HttpProducer as HttpSpec
from oxygen.api.run import Producer, Retry
from oxygen.api.runshard import RunShard, RunShardSpec, RunShardStatus, ShardItem
from oxygen.execution.headers import run_env, secret_values, step_env, step_header_prefix
from oxygen.execution.producers import (
    HttpProducer,
    ItemCall,
    PermanentError,
    make_producer,
)
from oxygen.execution.redaction import REDACTED, Redactor
from oxygen.execution.worker import ShardExecutor
from tests.support.calls import call_once
from tests.support.header_echo import HeaderEcho

SECRET = "sk-live-7f3a9c21e0"
CALL = ItemCall(run_name="r", run_uid="u", item_id="0", row_id=None, inputs={}, attempt=1)


def test_long_values_are_replaced_anywhere_short_ones_only_whole() -> None:
    redactor = Redactor([SECRET, "abc", "Bearer tok-0123456789\n", "  "])
    assert redactor.text(f"key={SECRET}; again {SECRET}") == f"key={REDACTED}; again {REDACTED}"
    assert redactor.text("abc") == REDACTED
    assert redactor.text("abcdef") == "abcdef"
    # The credential of "<scheme> <credential>" is found without its scheme; the scheme word is not.
    assert redactor.text("invalid token tok-0123456789") == f"invalid token {REDACTED}"
    assert redactor.text("Bearer scheme required") == "Bearer scheme required"
    assert Redactor([]).text(SECRET) == SECRET
    assert not Redactor(["", " \n"])


def test_nested_json_outputs_are_redacted_in_keys_strings_and_numbers() -> None:
    redactor = Redactor([SECRET, "424242"])
    outputs = {
        "echo": {"X-Api-Key": SECRET, SECRET: 1},
        "list": [f"prefix {SECRET} suffix", {"deep": [SECRET]}],
        "pin": 424242,
        "flag": True,
        "n": 7,
    }
    cleaned = redactor.json(outputs)
    text = json.dumps(cleaned)
    assert SECRET not in text and "424242" not in text
    assert cleaned["echo"] == {"X-Api-Key": REDACTED, REDACTED: 1}
    assert cleaned["list"][0] == f"prefix {REDACTED} suffix"
    assert (cleaned["pin"], cleaned["flag"], cleaned["n"]) == (REDACTED, True, 7)


def test_clip_redacts_before_cutting_so_no_fragment_survives() -> None:
    redactor = Redactor([SECRET])
    text = "x" * 485 + SECRET
    assert SECRET[:5] not in redactor.clip(text, 500)
    assert redactor.clip(text, 500).endswith(REDACTED)
    cut = redactor.clip("x" * 495 + SECRET, 500)
    assert len(cut) == 500 and SECRET[:4] not in cut
    assert redactor.clip("short", 500) == "short"


def test_an_http_400_echoing_the_headers_is_redacted_in_the_error() -> None:
    with HeaderEcho() as echo:
        producer = HttpProducer(url=echo.url("bad"), timeout_seconds=5, headers={"X-Api-Key": SECRET})
        with pytest.raises(PermanentError) as caught:
            call_once(producer, CALL)
        assert echo.seen("X-Api-Key") == {SECRET}
    assert caught.value.error_class == "http_4xx"
    assert SECRET not in caught.value.message
    assert f"X-Api-Key={REDACTED}" in caught.value.message


def shard(producer: Producer, items: list[ShardItem], *, steps: bool = False) -> RunShard:
    spec = RunShardSpec(
        run_name="r",
        run_uid="u",
        round=0,
        index=0,
        producer=producer,
        retry=Retry(max_attempts=1, backoff_seconds=0.01),
        items=items,
        sequence="steps" if steps else "independent",
        context={"inputs": {}, "steps": {}} if steps else None,
    )
    return RunShard(spec=spec, status=RunShardStatus())


def test_the_executor_writes_no_echoed_secret_to_outputs_or_errors() -> None:
    env = {"OXYGEN_HEADER_X-Api-Key": SECRET + "\n", "PATH": "/bin"}
    flushed: list[RunShardStatus] = []
    with HeaderEcho() as echo:
        ok = Producer(provider="p", http=HttpSpec(url=echo.url("ok")), cost_per_item=Decimal(0))
        bad = Producer(provider="p", http=HttpSpec(url=echo.url("bad")), cost_per_item=Decimal(0))
        for spec in (ok, bad):
            executor = ShardExecutor(
                shard(spec, [ShardItem(id="0"), ShardItem(id="1")]),
                make_producer(spec, env=env),
                flushed.append,
                redactor=Redactor(secret_values(env)),
            )
            executor.run()
        assert echo.seen("X-Api-Key") == {SECRET}
    final_ok, final_bad = flushed[-2], flushed[-1]
    assert [i.status for i in final_ok.items] == ["succeeded", "succeeded"]
    assert final_ok.items[0].outputs["echo"]["X-Api-Key"] == REDACTED
    assert [i.status for i in final_bad.items] == ["failed", "failed"]
    assert REDACTED in (final_bad.items[0].error or "")
    for status in flushed:
        assert SECRET not in json.dumps(status.wire())


def test_a_command_step_sees_only_its_own_header_variables() -> None:
    env = {
        "PATH": "/usr/bin:/bin",
        "OXYGEN_HEADER_X-Run": "run-level-secret",
        step_header_prefix("0") + "X-Key": "step-zero-secret",
        step_header_prefix("1") + "X-Key": "step-one-secret",
        step_header_prefix("10") + "X-Key": "step-ten-secret",
    }
    printer = Producer(
        provider="p",
        command=[
            sys.executable,
            "-c",
            "import json,os,sys; sys.stdin.read(); print(json.dumps(dict(os.environ)))",
        ],
    )
    seen = call_once(make_producer(printer, env=step_env(env, "1")), CALL).outputs
    assert seen["OXYGEN_HEADER_X-Key"] == "step-one-secret"
    assert not {"step-zero-secret", "run-level-secret", "step-ten-secret"} & set(seen.values())
    assert not [k for k in seen if "HEADER" in k and k != "OXYGEN_HEADER_X-Key"]
    # The run's own producer keeps the run's headers and none of any step's.
    assert call_once(make_producer(printer, env=run_env(env)), CALL).outputs.get("OXYGEN_HEADER_X-Run") == (
        "run-level-secret"
    )
    assert not {"step-zero-secret", "step-one-secret"} & set(
        call_once(make_producer(printer, env=run_env(env)), CALL).outputs.values()
    )
