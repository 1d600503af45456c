"""Running one cluster command: connect, call it, and turn every failure into one line and an exit code."""

from __future__ import annotations

import argparse
import functools
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass

from oxygen.cli.errors import (
    EXIT_ERROR,
    EXIT_OK,
    CliError,
    connection_reason,
    describe_api_error,
    is_connection_error,
)
from oxygen.cli.kubeaccess import Target, connect, target_options
from oxygen.cli.resources import Resources
from oxygen.kube.errors import ApiError, api_errors


@dataclass
class Session:
    api: Resources
    json: bool

    @property
    def target(self) -> Target:
        return self.api.target


Handler = Callable[[argparse.Namespace, Session], int]


def cluster_command(handler: Handler) -> Callable[[argparse.Namespace], int]:
    @functools.wraps(handler)
    def run(args: argparse.Namespace) -> int:
        options = target_options(args)
        target: Target | None = None
        try:
            api_client, target = connect(options)
            # api_errors(): a refusal from any call below (also kube.client's) arrives as ApiError.
            with api_client, api_errors():
                return handler(
                    args, Session(Resources(api_client, target, options.connect_timeout), options.json)
                )
        except CliError as err:
            return fail(err.message, err.code)
        except ApiError as err:
            if err.status == 0 and target is not None:
                return fail(unreachable(target, str(err.reason)))
            described = describe_api_error(err)
            return fail(described.message, described.code)
        except BrokenPipeError:
            # The reader went away (`| head`): what it wanted was printed; stay quiet.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            return EXIT_OK
        except Exception as err:
            if is_connection_error(err) and target is not None:
                return fail(unreachable(target, connection_reason(err)))
            if os.environ.get("OXYGEN_DEBUG"):
                raise
            return fail(f"unexpected {type(err).__name__}: {err} (set OXYGEN_DEBUG=1 for the traceback)")

    return run


def positive(text: str) -> int:
    """An argparse type: an integer of at least 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def unreachable(target: Target, reason: str) -> str:
    return f'cannot reach the cluster of context "{target.context}" ({target.server}): {reason}'


def fail(message: str, code: int = EXIT_ERROR) -> int:
    sys.stdout.flush()
    print(f"error: {message}", file=sys.stderr)
    return code
