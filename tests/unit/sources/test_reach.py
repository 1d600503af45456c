"""reach.py: the addresses the operator never fetches from, however they are written or resolved."""

from __future__ import annotations

import pytest

from oxygen.sources import errors, reach, url
from tests.support.file_server import FileServer


@pytest.mark.parametrize(
    ("address", "refused"),
    [
        ("169.254.169.254", True),
        ("::ffff:169.254.169.254", True),
        ("64:ff9b::a9fe:a9fe", True),  # NAT64 of 169.254.169.254
        ("fd00:ec2::254", True),
        ("fe80::1%eth0", True),
        ("0.0.0.0", True),
        ("::", True),
        ("224.0.0.1", True),
        ("127.0.0.1", False),
        ("::1", False),
        ("10.1.2.3", False),
        ("203.0.113.7", False),
    ],
)
def test_refused_addresses(address: str, refused: bool) -> None:
    assert (reach.refused(address) is not None) is refused


def test_the_peer_connected_to_is_checked_not_only_the_first_resolution(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # DNS rebinding: the name looked harmless when checked, and connects to a refused address.
    with FileServer({"/rows.jsonl": (200, b'{"inputs": {}}\n')}) as server:
        monkeypatch.setattr(reach, "refused_host", lambda host: None)
        monkeypatch.setattr(
            reach, "refused", lambda a: f"{a}, a test's refused address" if a == "127.0.0.1" else None
        )
        with pytest.raises(
            errors.SourceError, match=r"connected to 127\.0\.0\.1, a test.s refused address"
        ) as err:
            list(url.stream(f"{server.url}/rows.jsonl", "jsonl"))
    assert err.value.reason == errors.UNREACHABLE
