"""provider_gone.py: which runs lose their Provider, and how the deletion is said."""

from __future__ import annotations

from typing import Any

import pytest

from oxygen.api.run import RunStatus
from oxygen.controllers.run import provider_gone
from tests.support import builders as b

INLINE = {"provider": "inline", "http": {"url": "http://x/"}}


@pytest.mark.parametrize(
    ("spec", "phase", "resolved", "known", "suspects"),
    [
        ({"producer": b.provider_ref()}, "running", True, set(), ["clearbit"]),
        ({"producer": b.provider_ref()}, "running", True, {"clearbit"}, []),
        ({"producer": b.provider_ref()}, "paused", True, {"other"}, ["clearbit"]),
        ({"producer": b.provider_ref()}, "queued", True, set(), ["clearbit"]),
        # Never resolved: planning says ProviderNotFound instead.
        ({"producer": b.provider_ref()}, "queued", False, set(), []),
        # Finished runs keep their outcome.
        ({"producer": b.provider_ref()}, "succeeded", True, set(), []),
        ({"producer": b.provider_ref()}, "completed", True, set(), []),
        ({"producer": b.provider_ref()}, "failed", True, set(), []),
        ({"producer": b.provider_ref()}, "canceled", True, set(), []),
        # A cancel is already stopping it.
        ({"producer": b.provider_ref(), "cancel": True}, "running", True, set(), []),
        # An inline producer names no Provider.
        ({"producer": INLINE}, "running", True, set(), []),
    ],
)
def test_suspects(
    spec: dict[str, Any], phase: str, resolved: bool, known: set[str], suspects: list[str]
) -> None:
    status = RunStatus.model_validate({"phase": phase})
    assert provider_gone.suspects(b.run(**spec), status, resolved, known) == suspects


@pytest.mark.parametrize(
    ("gone", "message", "item_error"),
    [
        (
            ["clearbit"],
            'providers.oxygen.dev "clearbit" was deleted while the run used it; its unfinished items failed',
            "provider clearbit was deleted",
        ),
        (
            ["a", "b"],
            'providers.oxygen.dev "a", "b" was deleted while the run used it; its unfinished items failed',
            "provider a, b was deleted",
        ),
    ],
)
def test_the_failure_names_the_provider(gone: list[str], message: str, item_error: str) -> None:
    failure = provider_gone.decide(gone)
    assert failure is not None
    assert (failure.reason, failure.message) == ("ProviderDeleted", message)
    assert provider_gone.item_error(gone) == item_error


def test_nothing_gone_no_failure() -> None:
    assert provider_gone.decide([]) is None
