"""What every controller of the process shares, kept in kopf's memo: the settings and the API client.

Built once, by whichever startup handler runs first (kopf copies the operator's memo into each
object's memo, so daemons find them there).
"""

from __future__ import annotations

from typing import Any

from oxygen import metrics
from oxygen.kube.client import Kube, load_api_client, with_pool
from oxygen.settings import OperatorSettings

API_CONNECTIONS = 32


def settings(memo: Any) -> OperatorSettings:
    if not isinstance(memo.get("settings"), OperatorSettings):
        memo.settings = OperatorSettings.from_env()
    value: OperatorSettings = memo.settings
    return value


def kube(memo: Any) -> Kube:
    if not isinstance(memo.get("kube"), Kube):
        # The Run controller's workers and kopf's executor call from as many threads at once.
        memo.kube = Kube(metrics.instrument_api_client(with_pool(load_api_client(), API_CONNECTIONS)))
    value: Kube = memo.kube
    return value
