"""Label values and object names derived from a Run's name are always valid, however long the name."""

from __future__ import annotations

import re

import pytest

from oxygen.api.labels import HASH_LENGTH, label_value, name_hash, subdomain_name
from oxygen.execution.jobs import worker_account

LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
# The name of issue 20: a `-` at position 63, 253 characters in all.
ISSUE_NAME = ("n-0050" + "y" * 56 + "-" + "z" * 253)[:253]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("leads", "leads"),
        ("a" * 63, "a" * 63),
        ("run.with.dots", "run.with.dots"),
        ("a" * 64, "a" * 52 + "-" + name_hash("a" * 64)),
        ("a" * 62 + "-b", "a" * 52 + "-" + name_hash("a" * 62 + "-b")),
        (ISSUE_NAME, "n-0050" + "y" * 46 + "-" + name_hash(ISSUE_NAME)),
        ("a" * 51 + "-.b" + "c" * 20, "a" * 51 + "-" + name_hash("a" * 51 + "-.b" + "c" * 20)),
        ("-" * 70, name_hash("-" * 70)),
    ],
)
def test_label_value(name: str, expected: str) -> None:
    assert label_value(name) == expected
    assert len(expected) <= 63 and LABEL_VALUE.match(expected)


def test_long_names_sharing_a_prefix_get_distinct_labels() -> None:
    assert label_value("x" * 70 + "a") != label_value("x" * 70 + "b")
    assert len(name_hash("x")) == HASH_LENGTH


@pytest.mark.parametrize(
    "name",
    ["leads", "a" * 246, "a" * 247, "a" * 239 + "." + "b" * 13, "a" * 239 + "-" + "b" * 13, ISSUE_NAME],
)
def test_worker_account_is_a_dns_subdomain(name: str) -> None:
    account = worker_account(name)
    assert len(account) <= 253 and SUBDOMAIN.match(account)
    assert account.endswith("-worker")
    if len(name) + len("-worker") <= 253:
        assert account == name + "-worker"


def test_subdomain_name_keeps_what_fits() -> None:
    assert subdomain_name("leads", "-worker") == "leads-worker"
    assert subdomain_name("a" * 250, "-worker") == "a" * 235 + "-" + name_hash("a" * 250) + "-worker"
