"""Exit codes and the one-line messages that replace tracebacks."""

from __future__ import annotations

import ssl

from urllib3.exceptions import (
    ConnectTimeoutError,
    HTTPError,
    MaxRetryError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
    SSLError,
)

from oxygen.kube.errors import ApiError

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2  # argparse's own code, kept for every usage problem
EXIT_NOT_FOUND = 3

KNOWN_CAUSES = (
    "connection refused",
    "name or service not known",
    "no route to host",
    "network is unreachable",
    "connection reset",
    "remote end closed",
)


class CliError(Exception):
    """A failure the user can act on: `message` is printed as is, after "error: "."""

    def __init__(self, message: str, code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class NotFound(CliError):
    def __init__(self, message: str) -> None:
        super().__init__(message, EXIT_NOT_FOUND)


def describe_api_error(err: ApiError) -> CliError:
    message = err.message
    if err.status in (401, 403):
        return CliError(f"{'unauthorized' if err.status == 401 else 'forbidden'}: {message}")
    if err.status == 404:
        # A bare 404 on a collection means the resource type itself is unknown to the server.
        if err.unknown_resource:
            return NotFound(f"{message} (are the oxygen.dev CRDs installed?)")
        return NotFound(message)
    if err.status == 0:
        return CliError(f"request to the API server failed: {err.reason}")
    return CliError(message)


def connection_reason(err: BaseException) -> str:
    """A short cause for an unreachable server: "connection refused", "timed out", "TLS …"."""
    cause: BaseException = err.reason if isinstance(err, MaxRetryError) and err.reason else err
    text = str(cause)
    # NewConnectionError subclasses ConnectTimeoutError: read its text before calling it a timeout.
    if isinstance(cause, NewConnectionError | ProtocolError | ConnectionError):
        lowered = text.lower()
        for known in KNOWN_CAUSES:
            if known in lowered:
                return known
        if "name resolution" in lowered or "nodename nor servname" in lowered:
            return "host name not resolved"
    if isinstance(cause, ConnectTimeoutError | ReadTimeoutError | TimeoutError):
        return "timed out"
    if isinstance(cause, SSLError | ssl.SSLError):
        return f"TLS handshake failed ({cause})"
    return text or type(cause).__name__


def is_connection_error(err: BaseException) -> bool:
    return isinstance(err, HTTPError | ConnectionError | TimeoutError)
