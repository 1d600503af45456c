"""`oxygen worker`: executes one RunShard inside its Job pod."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from oxygen.execution.pod import EXIT_ERROR, run_worker
from oxygen.execution.privacy import keep_environment_private
from oxygen.execution.worker import DEFAULT_FLUSH_INTERVAL, DEFAULT_STOP_GRACE_SECONDS


def register(groups: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    worker = groups.add_parser(
        "worker",
        help="execute one RunShard's items (runs inside the shard's Job pod)",
        description="Execute one RunShard's items and write their status back. Exit codes: 0 done "
        "(item failures included), 143 stopped by SIGTERM (the Job replaces the pod), 1 API error.",
    )
    worker.add_argument("--namespace", help="the RunShard's namespace (default: $OXYGEN_NAMESPACE)")
    worker.add_argument("--shard", help="the RunShard's name (default: $OXYGEN_SHARD)")
    worker.add_argument(
        "--flush-interval",
        type=float,
        default=DEFAULT_FLUSH_INTERVAL,
        help=f"seconds between status writes (default {DEFAULT_FLUSH_INTERVAL:g})",
    )
    worker.add_argument(
        "--stop-grace",
        type=float,
        default=DEFAULT_STOP_GRACE_SECONDS,
        help="on SIGTERM, seconds the in-flight call may still take before it is abandoned "
        f"(default {DEFAULT_STOP_GRACE_SECONDS:g})",
    )
    worker.set_defaults(handler=worker_command)


def worker_command(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s", stream=sys.stderr
    )
    # Read here, not at parser build time, so the value is the pod's environment when it runs.
    namespace = args.namespace or os.environ.get("OXYGEN_NAMESPACE")
    shard = args.shard or os.environ.get("OXYGEN_SHARD")
    if not namespace or not shard:
        logging.getLogger("oxygen.worker").error(
            "oxygen worker needs --namespace and --shard (or OXYGEN_NAMESPACE and OXYGEN_SHARD)"
        )
        return EXIT_ERROR
    # Before any step runs: a `command` step must not read the other steps' Secrets from our /proc.
    keep_environment_private()
    return run_worker(
        namespace, shard, flush_interval=args.flush_interval, stop_grace_seconds=args.stop_grace
    )
