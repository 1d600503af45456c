"""How the operator marks its children: labels to find them again, owner references for GC."""

from typing import Any

from oxygen.api.common import API_VERSION, GROUP

LABEL_RUN = f"{GROUP}/run"
LABEL_RUN_UID = f"{GROUP}/run-uid"
LABEL_SHARD = f"{GROUP}/shard"
LABEL_ROUND = f"{GROUP}/round"
# On a shard whose producer was resolved from a Provider: the Provider's controller finds them by it.
LABEL_PROVIDER = f"{GROUP}/provider"
MANAGED_BY = {"app.kubernetes.io/managed-by": "oxygen-operator"}


def owner_reference(obj: dict[str, Any], controller: bool = True) -> dict[str, Any]:
    return {
        "apiVersion": obj.get("apiVersion", API_VERSION),
        "kind": obj["kind"],
        "name": obj["metadata"]["name"],
        "uid": obj["metadata"]["uid"],
        "controller": controller,
        "blockOwnerDeletion": True,
    }
