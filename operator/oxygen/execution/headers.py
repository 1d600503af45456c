"""Request headers from the pod's environment, and which of them each producer may see.

A Run's header Secret arrives as `OXYGEN_HEADER_<Header-Name>` variables; a workflow step's as
`OXYGEN_STEP<id>_HEADER_<Header-Name>` (one envFrom per step). Values are secrets: nothing here logs
them, and `secret_values` is what the worker redacts from everything it writes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final

HEADER_ENV_PREFIX: Final = "OXYGEN_HEADER_"
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_RESERVED_HEADERS = frozenset({"content-type", "content-length", "idempotency-key", "host"})


def step_header_prefix(item_id: str) -> str:
    """Where a workflow step's own header Secret lands in the pod's environment (one per step, so
    one provider's credentials never reach another's requests)."""
    return f"OXYGEN_STEP{item_id}_HEADER_"


def waterfall_header_prefix(index: int) -> str:
    """Where a waterfall provider's header Secret lands (one per provider, in the run's own env)."""
    return f"OXYGEN_WATERFALL{index}_HEADER_"


def _is_header_variable(key: str) -> bool:
    return key.startswith(HEADER_ENV_PREFIX) or (
        key.startswith(("OXYGEN_STEP", "OXYGEN_WATERFALL")) and "_HEADER_" in key
    )


def waterfall_headers(env: Mapping[str, str], index: int) -> dict[str, str]:
    """The request headers of waterfall provider `index`: its own, no other provider's."""
    prefix = waterfall_header_prefix(index)
    return headers_from_env(
        {HEADER_ENV_PREFIX + k[len(prefix) :]: v for k, v in env.items() if k.startswith(prefix)}
    )


def step_env(env: Mapping[str, str], item_id: str) -> dict[str, str]:
    """The environment a step's producer sees: its own headers under the usual prefix, no others.

    The pod carries every step's header Secret (one envFrom each); this is what keeps a `command`
    step from reading another step's credentials out of its environment.
    """
    prefix = step_header_prefix(item_id)
    out = {k: v for k, v in env.items() if not _is_header_variable(k)}
    out.update({HEADER_ENV_PREFIX + k[len(prefix) :]: v for k, v in env.items() if k.startswith(prefix)})
    return out


def run_env(env: Mapping[str, str]) -> dict[str, str]:
    """The environment of the run's own producer: its headers (`OXYGEN_HEADER_*`, a waterfall's
    providers' `OXYGEN_WATERFALL<k>_HEADER_*`), no step's."""
    return {
        k: v
        for k, v in env.items()
        if k.startswith((HEADER_ENV_PREFIX, "OXYGEN_WATERFALL")) or not _is_header_variable(k)
    }


def secret_values(env: Mapping[str, str]) -> list[str]:
    """Every header value in `env`, of whichever step: what a worker must never write to status."""
    return [value for key, value in env.items() if _is_header_variable(key)]


def headers_from_env(env: Mapping[str, str]) -> dict[str, str]:
    """Extra request headers from `OXYGEN_HEADER_<Header-Name>` variables.

    Values are secrets: nothing here logs them. Invalid names, and values that would break the
    header framing, are rejected by name only.
    """
    headers: dict[str, str] = {}
    for key, raw in env.items():
        if not key.startswith(HEADER_ENV_PREFIX):
            continue
        name = key[len(HEADER_ENV_PREFIX) :]
        # Secret values from files usually end with a newline the header must not carry.
        value = raw.strip()
        if not _TOKEN.match(name) or name.lower() in _RESERVED_HEADERS:
            raise ValueError(f"env {key}: {name!r} is not a header name the worker may set")
        if "\r" in value or "\n" in value:
            raise ValueError(f"env {key}: the value contains a line break")
        headers[name] = value
    return headers
