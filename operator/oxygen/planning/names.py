"""Deterministic child names: a restarted operator computes the same names and never duplicates."""

from __future__ import annotations

import hashlib
import re

_SHARD_SUFFIX = re.compile(r"-r(\d+)-\d{4,}$")

# A Job's name is copied into its pods' `job-name` label, whose values are limited to 63 characters.
MAX_NAME = 63


def shard_name(run_name: str, round_: int, index: int) -> str:
    """`<run>-r<round>-<index>`; a run name too long for that is cut and marked `<cut>-<digest>-`.

    The mark ends with `-` (so `…-<digest>--r0-0000`): a Run's name never ends with `-`, so no
    short run's shard name can be a long run's (a tenant cannot name a Run to take another run's
    shards, nor collide with them by chance). Short run names are unchanged."""
    suffix = f"-r{round_}-{index:04d}"
    if len(run_name) + len(suffix) <= MAX_NAME:
        return run_name + suffix
    digest = hashlib.sha256(run_name.encode()).hexdigest()[:8]
    keep = MAX_NAME - len(suffix) - len(digest) - 2
    return f"{run_name[:keep].rstrip('-.')}-{digest}-{suffix}"


def round_of(shard: str) -> int | None:
    """The round a shard name belongs to, read from its end (the run's own name may hold `-r2-`)."""
    match = _SHARD_SUFFIX.search(shard)
    return int(match.group(1)) if match else None
