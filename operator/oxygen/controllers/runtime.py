"""What every controller of the process shares, kept in kopf's memo: the settings and the API client.

Built once, by whichever startup handler runs first (kopf copies the operator's memo into each
object's memo, so daemons find them there).
"""

from __future__ import annotations

from typing import Any

from oxygen import metrics
from oxygen.kube.client import Kube, load_api_client
from oxygen.settings import OperatorSettings


def settings(memo: Any) -> OperatorSettings:
    if not isinstance(memo.get("settings"), OperatorSettings):
        memo.settings = OperatorSettings.from_env()
    value: OperatorSettings = memo.settings
    return value


def kube(memo: Any) -> Kube:
    if not isinstance(memo.get("kube"), Kube):
        memo.kube = Kube(metrics.instrument_api_client(load_api_client()))
    value: Kube = memo.kube
    return value
