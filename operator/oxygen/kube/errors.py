"""The API server's refusals as our own exception, so callers outside `oxygen.kube` never import the
Kubernetes client to tell a 404 from a 409."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager

from kubernetes.client.exceptions import ApiException

# What the API server answers for a resource type it does not serve (vs. an object that does not exist).
UNKNOWN_RESOURCE = "could not find the requested resource"


class ApiError(Exception):
    """A request the API server refused (status ≥ 400), or one that never got an HTTP answer (status 0)."""

    def __init__(self, status: int, reason: str, message: str, body: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        # The server's own sentence (its Status.message), else "<status> <reason>".
        self.message = message
        self.body = body

    @property
    def not_found(self) -> bool:
        """The object does not exist (a 404 for an unknown resource type is not this)."""
        return self.status == 404 and not self.unknown_resource

    @property
    def unknown_resource(self) -> bool:
        return self.status == 404 and UNKNOWN_RESOURCE in (self.body or self.message)

    @property
    def conflict(self) -> bool:
        """409: AlreadyExists on create, a moved resourceVersion on update."""
        return self.status == 409


def api_error(err: ApiException) -> ApiError:
    body = err.body
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    body = body if isinstance(body, str) else ""
    message = ""
    if body:
        try:
            status = json.loads(body)
        except ValueError:
            status = None
        if isinstance(status, dict) and status.get("message"):
            message = str(status["message"])
    code = int(err.status or 0)
    reason = str(err.reason or "")
    return ApiError(code, reason, message or f"{code} {reason}".strip(), body)


@contextmanager
def api_errors() -> Iterator[None]:
    """Raise the client's ApiException from the block as ApiError."""
    try:
        yield
    except ApiException as err:
        raise api_error(err) from err
