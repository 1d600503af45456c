"""Producers against a real loopback provider and real small commands."""

from __future__ import annotations

import socket
import sys
import threading
import time
from decimal import Decimal

import pytest

from oxygen.api.run import HttpProducer as HttpSpec
from oxygen.api.run import Producer
from oxygen.execution.producers import (
    CallAbandoned,
    CommandProducer,
    EchoProducer,
    HttpProducer,
    ItemCall,
    PermanentError,
    RetryableError,
    headers_from_env,
    make_producer,
    parse_retry_after,
)
from tests.support.calls import call_once
from tests.support.provider import (
    REDACTED,
    Provider,
    Reply,
    always,
    bad_request,
    echo,
    malformed,
    rate_limited,
    with_credits,
    with_latency,
)

CALL = ItemCall(run_name="r1", run_uid="uid-1", item_id="i-7", row_id="row-7", inputs={"q": "x"}, attempt=2)


def http(provider: Provider, timeout: float = 5.0, headers: dict[str, str] | None = None) -> HttpProducer:
    return HttpProducer(url=provider.url, timeout_seconds=timeout, headers=headers or {})


def test_echo_returns_inputs_without_cost() -> None:
    result = call_once(EchoProducer(), CALL)
    assert result.outputs == {"q": "x"}
    assert result.cost is None


def test_http_posts_the_item_with_a_stable_idempotency_key() -> None:
    with Provider(echo({"answer": 42})) as provider:
        result = call_once(http(provider), CALL)
        again = call_once(http(provider), ItemCall("r1", "uid-1", "i-7", "row-7", {"q": "x"}, attempt=3))
    assert result.outputs == {"q": "x", "answer": 42}
    assert result.cost is None
    assert again.outputs == result.outputs
    first, second = provider.calls
    assert first.body == {
        "run": "r1",
        "item": {"id": "i-7", "rowId": "row-7", "inputs": {"q": "x"}},
        "attempt": 2,
    }
    assert (first.item_id, first.row_id, first.attempt, first.status) == ("i-7", "row-7", 2, 200)
    assert first.idempotency_key == second.idempotency_key == "uid-1/i-7"
    assert first.headers["Content-Type"] == "application/json"
    assert second.attempt == 3


def test_http_accepts_any_json_value_as_outputs() -> None:
    with Provider(lambda item_id, attempt, body: Reply(body=["a", 1])) as provider:
        assert call_once(http(provider), CALL).outputs == ["a", 1]


def test_http_reported_cost_is_exact() -> None:
    with Provider(with_credits("0.1")) as provider:
        result = call_once(http(provider), CALL)
    assert result.cost == Decimal("0.1")
    assert str(result.cost) == "0.1"


@pytest.mark.parametrize("value", ["-1", "abc", "1e3", "NaN", ""])
def test_http_invalid_cost_header_is_permanent(value: str) -> None:
    with Provider(with_credits(value)) as provider, pytest.raises(PermanentError) as caught:
        call_once(http(provider), CALL)
    assert caught.value.error_class == "malformed_response"


def test_http_5xx_is_retryable() -> None:
    with Provider(always(503, "down for maintenance")) as provider, pytest.raises(RetryableError) as caught:
        call_once(http(provider), CALL)
    assert caught.value.error_class == "http_5xx"
    assert caught.value.retry_after is None
    assert "503" in caught.value.message
    assert "down for maintenance" in caught.value.message


def test_http_429_carries_retry_after() -> None:
    with Provider(rate_limited(7, failures=1)) as provider:
        with pytest.raises(RetryableError) as caught:
            call_once(http(provider), CALL)
        assert call_once(http(provider), CALL).outputs == {"q": "x"}
    assert caught.value.error_class == "http_429"
    assert caught.value.retry_after == 7


def test_http_4xx_is_permanent_with_the_providers_message_truncated() -> None:
    with (
        Provider(bad_request("field q is required " + "x" * 2000)) as provider,
        pytest.raises(PermanentError) as caught,
    ):
        call_once(http(provider), CALL)
    assert caught.value.error_class == "http_4xx"
    assert "field q is required" in caught.value.message
    assert len(caught.value.message) <= 520


def test_http_malformed_body_is_permanent() -> None:
    with Provider(malformed()) as provider, pytest.raises(PermanentError) as caught:
        call_once(http(provider), CALL)
    assert caught.value.error_class == "malformed_response"
    assert "upstream exploded" in caught.value.message


def test_http_timeout_is_retryable_and_bounded() -> None:
    with Provider(with_latency(5)) as provider:
        began = time.monotonic()
        with pytest.raises(RetryableError) as caught:
            call_once(http(provider, timeout=0.2), CALL)
        assert time.monotonic() - began < 2
    assert caught.value.error_class == "timeout"


def test_http_connection_refused_is_retryable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    producer = HttpProducer(url=f"http://127.0.0.1:{port}/x", timeout_seconds=2)
    with pytest.raises(RetryableError) as caught:
        call_once(producer, CALL)
    assert caught.value.error_class == "connection"


def test_secret_headers_from_env_are_sent_and_not_logged() -> None:
    env = {"OXYGEN_HEADER_Authorization": "Bearer s3cret\n", "OXYGEN_HEADER_X-Team": "growth", "PATH": "/bin"}
    spec = Producer(provider="p", http=HttpSpec(url="http://127.0.0.1:1/x"))
    with Provider(required_headers={"Authorization": "Bearer s3cret"}) as provider:
        producer = make_producer(spec.model_copy(update={"http": HttpSpec(url=provider.url)}), env=env)
        assert call_once(producer, CALL).outputs == {"q": "x"}
        with pytest.raises(PermanentError) as caught:
            call_once(http(provider), CALL)
    assert caught.value.error_class == "http_4xx"
    ok = provider.calls[0]
    assert ok.headers["Authorization"] == REDACTED
    assert ok.headers["X-Team"] == "growth"
    assert "s3cret" not in repr(provider.calls)


def test_header_env_rejects_bad_names_without_echoing_values() -> None:
    assert headers_from_env({"OTHER": "x"}) == {}
    with pytest.raises(ValueError) as caught:
        headers_from_env({"OXYGEN_HEADER_Bad Name": "s3cret"})
    assert "s3cret" not in str(caught.value)
    with pytest.raises(ValueError):
        headers_from_env({"OXYGEN_HEADER_Idempotency-Key": "x"})
    with pytest.raises(ValueError):
        headers_from_env({"OXYGEN_HEADER_X-A": "a\r\nInjected: 1"})


def test_parse_retry_after() -> None:
    assert parse_retry_after("3") == 3
    assert parse_retry_after("1.5") == 1.5
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:10 GMT", now=1445412480.0) == pytest.approx(10)
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412490.0) == 0


def python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def test_command_gets_the_item_on_stdin_and_returns_stdout_json() -> None:
    script = "import json,sys; c=json.load(sys.stdin); print(json.dumps({'got': c}))"
    result = call_once(CommandProducer(python(script)), CALL)
    assert result.outputs == {"got": CALL.payload()}
    assert result.cost is None


def test_command_exit_75_is_retryable() -> None:
    script = "import sys; sys.stderr.write('busy, later'); sys.exit(75)"
    with pytest.raises(RetryableError) as caught:
        call_once(CommandProducer(python(script)), CALL)
    assert caught.value.error_class == "command_tempfail"
    assert "busy, later" in caught.value.message


def test_command_failure_is_permanent_with_stderr_tail() -> None:
    script = "import sys; sys.stderr.write('noise\\n' * 500 + 'the real reason'); sys.exit(3)"
    with pytest.raises(PermanentError) as caught:
        call_once(CommandProducer(python(script)), CALL)
    assert caught.value.error_class == "command_failed"
    assert caught.value.message.endswith("the real reason")
    assert "exit 3" in caught.value.message
    assert len(caught.value.message) <= 560


def test_command_non_json_stdout_is_malformed() -> None:
    with pytest.raises(PermanentError) as caught:
        call_once(CommandProducer(python("print('hello')")), CALL)
    assert caught.value.error_class == "malformed_response"


def test_command_missing_binary_is_permanent() -> None:
    with pytest.raises(PermanentError) as caught:
        call_once(CommandProducer(["/nonexistent/oxygen-producer"]), CALL)
    assert caught.value.error_class == "command_failed"


def test_command_timeout_kills_it() -> None:
    began = time.monotonic()
    with pytest.raises(RetryableError) as caught:
        call_once(CommandProducer(python("import time; time.sleep(30)"), timeout_seconds=0.3), CALL)
    assert caught.value.error_class == "timeout"
    assert time.monotonic() - began < 5


def test_command_cancel_ends_it_quickly() -> None:
    cancel = threading.Event()
    producer = CommandProducer(python("import time; time.sleep(30)"), cancel=cancel)
    threading.Timer(0.2, cancel.set).start()
    began = time.monotonic()
    with pytest.raises(CallAbandoned):
        call_once(producer, CALL)
    assert time.monotonic() - began < 5


def test_make_producer_picks_the_declared_kind() -> None:
    assert isinstance(make_producer(Producer(provider="p", builtin="echo")), EchoProducer)
    assert isinstance(make_producer(Producer(provider="p", command=["true"])), CommandProducer)
    made = make_producer(Producer(provider="p", http=HttpSpec(url="http://x:1/", timeout_seconds=3)), env={})
    assert isinstance(made, HttpProducer)
    assert made.timeout_seconds == 3
    with pytest.raises(ValueError):
        make_producer(Producer(provider="p"))


def test_a_workflow_step_sees_only_its_own_header_secret() -> None:
    from oxygen.execution.producers import step_env, step_header_prefix

    env = {
        "PATH": "/bin",
        "OXYGEN_HEADER_Shard-Wide": "a",
        step_header_prefix("1") + "X-Key": "one",
        step_header_prefix("2") + "X-Key": "two",
    }
    assert step_env(env, "1") == {"PATH": "/bin", "OXYGEN_HEADER_X-Key": "one"}
    assert step_env(env, "3") == {"PATH": "/bin"}
