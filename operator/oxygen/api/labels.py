"""How the operator marks its children: labels to find them again, owner references for GC.

A label value is at most 63 characters and begins and ends with an alphanumeric; a Run's name may
hold 253 (a DNS subdomain). Values derived from names go through `label_value`, which keeps a name
that fits and otherwise keeps a prefix plus a hash of the whole name, so two long names that share
a prefix never share a label.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from oxygen.api.common import API_VERSION, GROUP

LABEL_RUN = f"{GROUP}/run"
LABEL_RUN_UID = f"{GROUP}/run-uid"
LABEL_SHARD = f"{GROUP}/shard"
LABEL_ROUND = f"{GROUP}/round"
# On a shard whose producer was resolved from a Provider: the Provider's controller finds them by it.
LABEL_PROVIDER = f"{GROUP}/provider"
# On such a shard: its share of the Provider's limits, JSON {rps, burst, inFlight, epoch}, written by
# the operator (the single allocator); the worker reads it and cannot write metadata.
ANNOTATION_RATE_SHARE = f"{GROUP}/rate-share"
MANAGED_BY = {"app.kubernetes.io/managed-by": "oxygen-operator"}

MAX_LABEL_VALUE = 63
# A DNS subdomain (object names): at most 253 characters, dot-separated DNS labels.
MAX_SUBDOMAIN = 253
HASH_LENGTH = 10

_LABEL_VALUE = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def name_hash(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()[:HASH_LENGTH]


def label_value(name: str) -> str:
    """`name` when it is a valid label value, else its first characters (ending alphanumeric) + a hash."""
    if len(name) <= MAX_LABEL_VALUE and _LABEL_VALUE.match(name):
        return name
    keep = MAX_LABEL_VALUE - HASH_LENGTH - 1
    prefix = re.sub(r"[^A-Za-z0-9]+$", "", re.sub(r"[^-A-Za-z0-9_.]", "-", name[:keep]))
    prefix = re.sub(r"^[^A-Za-z0-9]+", "", prefix)
    return f"{prefix}-{name_hash(name)}" if prefix else name_hash(name)


def subdomain_name(base: str, suffix: str) -> str:
    """An object name `base + suffix` that is a valid DNS subdomain: `base` is cut, and its cut
    marked with a hash, only when the whole would not fit (suffix: e.g. "-worker")."""
    whole = base + suffix
    if len(whole) <= MAX_SUBDOMAIN and _SUBDOMAIN.match(whole):
        return whole
    keep = MAX_SUBDOMAIN - len(suffix) - HASH_LENGTH - 1
    prefix = base[:keep].rstrip("-.")
    return f"{prefix}-{name_hash(base)}{suffix}" if prefix else f"{name_hash(base)}{suffix}"


def owner_reference(obj: dict[str, Any], controller: bool = True) -> dict[str, Any]:
    return {
        "apiVersion": obj.get("apiVersion", API_VERSION),
        "kind": obj["kind"],
        "name": obj["metadata"]["name"],
        "uid": obj["metadata"]["uid"],
        "controller": controller,
        "blockOwnerDeletion": True,
    }
