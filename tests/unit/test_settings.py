"""oxygen.settings: the operator's settings from its environment, read once, with clear errors."""

from __future__ import annotations

import pytest

from oxygen.execution.jobs import DEFAULT_WORKER_RESOURCES
from oxygen.settings import OperatorSettings, SettingsError


def test_defaults() -> None:
    settings = OperatorSettings.from_env({})
    assert settings.web_base_url == "http://localhost:8083"
    assert settings.max_parallelism == 100
    assert settings.worker.resources == DEFAULT_WORKER_RESOURCES
    assert settings.worker.active_deadline_seconds == 24 * 3600
    assert settings.worker.service_account is None
    assert settings.worker.backoff_limit == 6


def test_environment_overrides() -> None:
    settings = OperatorSettings.from_env(
        {
            "OXYGEN_WEB_BASE_URL": "https://runs.example",
            "OXYGEN_MAX_PARALLELISM": "8",
            "OXYGEN_WORKER_IMAGE": "img:1",
            "OXYGEN_WORKER_RESOURCES": '{"limits": {"memory": "1Gi"}}',
            "OXYGEN_WORKER_NODE_SELECTOR": '{"pool": "batch"}',
            "OXYGEN_WORKER_TOLERATIONS": '[{"key": "batch"}]',
            "OXYGEN_WORKER_SERVICE_ACCOUNT": "shared-worker",
            "OXYGEN_WORKER_DEADLINE_SECONDS": "600",
            "OXYGEN_WORKER_BACKOFF_LIMIT": "0",
        }
    )
    assert settings.web_base_url == "https://runs.example"
    assert settings.max_parallelism == 8
    worker = settings.worker
    assert (worker.image, worker.service_account, worker.active_deadline_seconds) == (
        "img:1",
        "shared-worker",
        600,
    )
    assert worker.resources == {"limits": {"memory": "1Gi"}}
    assert worker.node_selector == {"pool": "batch"}
    assert worker.tolerations == [{"key": "batch"}]
    assert worker.backoff_limit == 0


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"OXYGEN_MAX_PARALLELISM": "many"}, "OXYGEN_MAX_PARALLELISM"),
        ({"OXYGEN_MAX_PARALLELISM": "0"}, "OXYGEN_MAX_PARALLELISM"),
        ({"OXYGEN_WORKER_RESOURCES": "{limits"}, "OXYGEN_WORKER_RESOURCES"),
        ({"OXYGEN_WORKER_BACKOFF_LIMIT": "-1"}, "OXYGEN_WORKER_BACKOFF_LIMIT"),
    ],
)
def test_bad_values_are_named(env: dict[str, str], named: str) -> None:
    with pytest.raises(SettingsError, match=named):
        OperatorSettings.from_env(env)
