"""The kopf handlers of the operator process as a whole: kopf's settings, the shared runtime, the web server.

Each resource's glue lives in its controller: oxygen.controllers.{run,creditaccount,workflow}.handlers.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import kopf

from oxygen.api.common import GROUP
from oxygen.controllers import runtime
from oxygen.web import start_web

log = logging.getLogger("oxygen.operator")

_web: Any = None


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    settings.posting.enabled = False  # we post our own Events, with reasons users can filter on
    settings.persistence.finalizer = f"{GROUP}/operator"
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix=GROUP)
    settings.watching.server_timeout = 270
    settings.watching.client_timeout = 300
    settings.watching.connect_timeout = 30
    settings.networking.request_timeout = 60
    settings.execution.max_workers = int(os.environ.get("OXYGEN_MAX_WORKERS", "16"))
    # A standby takes over once the active peer's heartbeat is this old (kopf's default is 60 s).
    settings.peering.lifetime = int(os.environ.get("OXYGEN_PEERING_LIFETIME", "10"))
    runtime.settings(memo)
    runtime.kube(memo)


@kopf.on.startup()
async def serve_web(memo: kopf.Memo, **_: Any) -> None:
    """/metrics, /healthz and the run pages (status.webUrl)."""
    global _web
    port = os.environ.get("OXYGEN_METRICS_PORT", "8080")
    if port.lower() in ("", "0", "off", "none"):
        return
    host = os.environ.get("OXYGEN_WEB_HOST", "0.0.0.0")
    try:
        _web = await start_web(host, int(port), runtime.kube(memo).api_client)
    except OSError as err:  # a taken port must not stop the operator; the log says why
        log.error("web server not started on port %s: %s", port, err)


@kopf.on.cleanup()
async def stop_web(**_: Any) -> None:
    if _web is not None:
        await _web.cleanup()
