"""The calls the operator, worker and CLI make, over the official client, with plain-dict bodies.

Every create is idempotent (AlreadyExists is success: names are deterministic), every delete
tolerates NotFound, and status writes are merge patches of the status subresource only, so a
user's concurrent spec edit is never overwritten.
"""

from __future__ import annotations

import base64
import builtins
import hashlib
import json
import logging
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import (
    ApiException as ApiException,
)  # re-exported: the refusal type callers catch

from oxygen.api.common import GROUP, VERSION
from oxygen.timefmt import rfc3339

log = logging.getLogger("oxygen.kube")

# A PartialObjectMetadata answer: name, uid, labels, never an object's data.
METADATA_ONLY = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"


def load_api_client(kubeconfig: Path | str | None = None, context: str | None = None) -> Any:
    """A client from an explicit kubeconfig, $KUBECONFIG/~/.kube/config, or in-cluster credentials."""
    if kubeconfig is not None:
        return config.new_client_from_config(config_file=str(kubeconfig), context=context)
    try:
        # $KUBECONFIG as it is now: the client library reads it once, when it is imported, so a
        # value set later (`oxygen operator --kubeconfig`) would otherwise be ignored.
        current = os.environ.get("KUBECONFIG") or None
        return config.new_client_from_config(config_file=current, context=context)
    except config.ConfigException:
        config.load_incluster_config()
        return client.ApiClient()


def with_pool(api_client: Any, size: int) -> Any:
    """`api_client` keeping up to `size` connections (one per thread that may call at once). The
    client library keeps 10 on two cores and drops the rest after each call: each later call from a
    busy operator's threads paid a new TLS handshake."""
    cfg = api_client.configuration
    if (cfg.connection_pool_maxsize or 0) < size:
        cfg.connection_pool_maxsize = size
        api_client.rest_client = client.rest.RESTClientObject(cfg)
    return api_client


class OwnershipConflict(Exception):
    """An object the operator would create exists and belongs to someone else."""

    def __init__(self, kind: str, name: str, namesake: bool) -> None:
        owner = (
            "a deleted run of the same name (its garbage collection is pending)"
            if namesake
            else "nothing of this run"
        )
        super().__init__(f"{kind} {name!r} already exists and is owned by {owner}")
        self.kind = kind
        self.name = name
        self.namesake = namesake


# (connect, read) seconds: a hung API call must not hold a reconcile pass forever.
DEFAULT_TIMEOUT = (10.0, 60.0)


def _default_timeout(api_client: Any, timeout: tuple[float, float]) -> None:
    """Give every request of this client a timeout unless the call sets its own."""
    rest = api_client.rest_client
    if getattr(rest, "_oxygen_default_timeout", None) is not None:
        return
    request = rest.request

    def with_timeout(*args: Any, **kwargs: Any) -> Any:
        if kwargs.get("_request_timeout") is None:
            kwargs["_request_timeout"] = timeout
        return request(*args, **kwargs)

    rest.request = with_timeout
    rest._oxygen_default_timeout = timeout


def now() -> str:
    return rfc3339()


class Kube:
    """Thread-safe: the generated client pools connections; one instance per process is enough."""

    def __init__(self, api_client: Any, timeout: tuple[float, float] = DEFAULT_TIMEOUT) -> None:
        self.api_client = api_client
        _default_timeout(api_client, timeout)
        self.core = client.CoreV1Api(api_client)
        self.batch = client.BatchV1Api(api_client)
        self.rbac = client.RbacAuthorizationV1Api(api_client)
        self.custom = client.CustomObjectsApi(api_client)
        self._event_lock = threading.Lock()

    # -- custom objects --------------------------------------------------------------------

    def get(self, plural: str, namespace: str, name: str) -> dict[str, Any]:
        result: dict[str, Any] = self.custom.get_namespaced_custom_object(
            GROUP, VERSION, namespace, plural, name
        )
        return result

    def get_metadata(self, plural: str, namespace: str, name: str) -> dict[str, Any]:
        """One of our objects' metadata only (a PartialObjectMetadata: uid, labels, annotations; no
        spec or status): a cheap read for whoever polls an annotation of a large object."""
        api = self.api_client
        method, url, headers, _, _ = api.param_serialize(
            "GET",
            "/apis/{group}/{version}/namespaces/{namespace}/{plural}/{name}",
            path_params={
                "group": GROUP,
                "version": VERSION,
                "namespace": namespace,
                "plural": plural,
                "name": name,
            },
            header_params={"Accept": METADATA_ONLY},
            auth_settings=["BearerToken"],
        )
        response = api.call_api(method, url, header_params=headers)
        body = response.read()
        if not 200 <= response.status < 300:
            raise ApiException(status=response.status, reason=response.reason)
        meta = json.loads(body).get("metadata")
        return meta if isinstance(meta, dict) else {}

    def list(self, plural: str, namespace: str, label_selector: str = "") -> list[dict[str, Any]]:
        result = self.custom.list_namespaced_custom_object(
            GROUP, VERSION, namespace, plural, label_selector=label_selector
        )
        items: list[dict[str, Any]] = result.get("items", [])
        return items

    def pages(self, plural: str, namespace: str, label_selector: str, limit: int) -> Iterator[dict[str, Any]]:
        """Every matching object, fetched `limit` at a time (list + continue)."""
        token: str | None = None
        while True:
            page = self.custom.list_namespaced_custom_object(
                GROUP, VERSION, namespace, plural, label_selector=label_selector, limit=limit, _continue=token
            )
            yield from page.get("items", [])
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                return

    def list_jobs(self, namespace: str, label_selector: str) -> builtins.list[dict[str, Any]]:
        """The matching Jobs as the API server has them now, as plain dicts (the wire shape)."""
        found = self.batch.list_namespaced_job(namespace, label_selector=label_selector).items
        return [self.api_client.sanitize_for_serialization(job) for job in found]

    def create_or_get(self, plural: str, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        """Create, or read what already exists under that name (a deterministic name means it is ours)."""
        try:
            created: dict[str, Any] = self.custom.create_namespaced_custom_object(
                GROUP, VERSION, namespace, plural, body
            )
            return created
        except ApiException as err:
            if err.status == 409:
                return self.get(plural, namespace, body["metadata"]["name"])
            raise

    def delete(self, plural: str, namespace: str, name: str, uid: str) -> None:
        """Delete that object if it is still the one with `uid` (a precondition: never its successor)."""
        try:
            self.custom.delete_namespaced_custom_object(
                GROUP, VERSION, namespace, plural, name, body={"preconditions": {"uid": uid}}
            )
        except ApiException as err:
            if err.status != 404:
                raise

    def patch_status(
        self,
        plural: str,
        namespace: str,
        name: str,
        status: dict[str, Any],
        resource_version: str | None = None,
    ) -> dict[str, Any]:
        """With `resource_version`, only over that version of the object (else ApiException 409)."""
        patch: dict[str, Any] = {"status": status}
        if resource_version:
            patch["metadata"] = {"resourceVersion": resource_version}
        result: dict[str, Any] = self.custom.patch_namespaced_custom_object_status(
            GROUP, VERSION, namespace, plural, name, patch
        )
        return result

    def set_finalizer(self, plural: str, namespace: str, name: str, finalizer: str, present: bool) -> bool:
        """Add or remove one finalizer, keeping the others; False when the object is gone.

        Read, then write over exactly that version: a concurrent change (kopf's own finalizer) is
        never overwritten; a conflict is retried with a fresh read.
        """
        for _ in range(5):
            try:
                body = self.get(plural, namespace, name)
            except ApiException as err:
                if err.status == 404:
                    return False
                raise
            meta = body["metadata"]
            current: list[str] = list(meta.get("finalizers") or [])
            if (finalizer in current) == present:
                return True
            wanted = [*current, finalizer] if present else [f for f in current if f != finalizer]
            patch = {"metadata": {"finalizers": wanted, "resourceVersion": meta["resourceVersion"]}}
            try:
                self.custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, plural, name, patch)
                return True
            except ApiException as err:
                if err.status == 404:
                    return False
                if err.status != 409:
                    raise
        raise ApiException(status=409, reason=f"{plural}/{name}: finalizers kept changing")

    def patch_spec(self, plural: str, namespace: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self.custom.patch_namespaced_custom_object(
            GROUP, VERSION, namespace, plural, name, {"spec": spec}
        )
        return result

    # -- built-ins -------------------------------------------------------------------------

    def create_job(self, namespace: str, body: dict[str, Any]) -> bool:
        try:
            self.batch.create_namespaced_job(namespace, body)
            return True
        except ApiException as err:
            if err.status == 409:
                return False
            raise

    def read_job(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The Job as a plain dict (the wire shape), None when there is none."""
        try:
            found = self.batch.read_namespaced_job(name, namespace)
        except ApiException as err:
            if err.status == 404:
                return None
            raise
        body: dict[str, Any] = self.api_client.sanitize_for_serialization(found)
        return body

    def set_job_suspended(self, namespace: str, name: str, suspend: bool) -> None:
        try:
            self.batch.patch_namespaced_job(name, namespace, {"spec": {"suspend": suspend}})
        except ApiException as err:
            if err.status != 404:
                raise

    def delete_job(self, namespace: str, name: str) -> None:
        try:
            # Foreground: the Job object stays until its pods are gone, so "no Job" means "no pod".
            self.batch.delete_namespaced_job(name, namespace, propagation_policy="Foreground")
        except ApiException as err:
            if err.status != 404:
                raise

    def read_config_map(self, namespace: str, name: str) -> dict[str, str]:
        data: dict[str, str] = self.core.read_namespaced_config_map(name, namespace).data or {}
        return data

    def read_secret_key(self, namespace: str, name: str, key: str) -> str | None:
        """One key of a Secret (a Table's DSN), decoded; None when the Secret or the key is missing."""
        try:
            data = self.core.read_namespaced_secret(name, namespace).data or {}
        except ApiException as err:
            if err.status == 404:
                return None
            raise
        value = data.get(key)
        return None if value is None else base64.b64decode(value).decode()

    def apply_owned(self, kind: str, namespace: str, body: dict[str, Any]) -> None:
        """Create-or-update one of a run's own objects (its worker ServiceAccount, Role, RoleBinding).

        An object of that name that the run does not own is never taken over: a Run must not borrow
        a privileged account by choosing its name.
        """
        name = body["metadata"]["name"]
        owner = body["metadata"]["ownerReferences"][0]
        create, read, replace = {
            "ServiceAccount": (
                self.core.create_namespaced_service_account,
                self.core.read_namespaced_service_account,
                None,
            ),
            "Role": (
                self.rbac.create_namespaced_role,
                self.rbac.read_namespaced_role,
                self.rbac.replace_namespaced_role,
            ),
            "RoleBinding": (
                self.rbac.create_namespaced_role_binding,
                self.rbac.read_namespaced_role_binding,
                None,
            ),
            # The item store's worker credentials (controllers/run/item_store.py).
            "Secret": (
                self.core.create_namespaced_secret,
                self.core.read_namespaced_secret,
                self.core.replace_namespaced_secret,
            ),
        }[kind]
        try:
            create(namespace, body)
            return
        except ApiException as err:
            if err.status != 409:
                raise
        existing = self.api_client.sanitize_for_serialization(read(name, namespace))
        owners = existing.get("metadata", {}).get("ownerReferences") or []
        if not any(o.get("uid") == owner["uid"] for o in owners):
            namesake = any(o.get("kind") == owner["kind"] and o.get("name") == owner["name"] for o in owners)
            raise OwnershipConflict(kind, name, namesake)
        if replace is not None:
            replace(name, namespace, body)

    def secret_exists(self, namespace: str, name: str) -> bool | None:
        """Whether the Secret exists, read as metadata only: its values never reach the operator.

        The request asks for a PartialObjectMetadata (name, uid, labels; no `data`). RBAC has no
        metadata-only verb: this is a `get` on secrets, which the chart grants the operator for
        webhook tokens (webhook.enabled, the default). Without it the answer is 403 and the operator
        cannot tell (None): the check is skipped, the pod's envFrom still refuses to start."""
        owners = self.secret_owners(namespace, name)
        return None if owners is None else owners is not False

    def secret_owners(self, namespace: str, name: str) -> builtins.list[str] | bool | None:
        """The uids owning the Secret (metadata only, never its values); False: no such Secret;
        None: the operator may not read it (403)."""
        api = self.api_client
        method, url, headers, _, _ = api.param_serialize(
            "GET",
            "/api/v1/namespaces/{namespace}/secrets/{name}",
            path_params={"namespace": namespace, "name": name},
            header_params={"Accept": METADATA_ONLY},
            auth_settings=["BearerToken"],
        )
        response = api.call_api(method, url, header_params=headers)
        body = response.read()
        if response.status == 404:
            return False
        if response.status == 403:
            return None
        if not 200 <= response.status < 300:
            raise ApiException(status=response.status, reason=response.reason)
        meta = json.loads(body).get("metadata") or {}
        return [str(o.get("uid")) for o in meta.get("ownerReferences") or []]

    def event(
        self,
        obj: dict[str, Any],
        reason: str,
        message: str,
        type_: str = "Normal",
        component: str = "oxygen-operator",
    ) -> None:
        """Post a core/v1 Event on `obj` (what `kubectl describe` and `kubectl get events` show)."""
        meta = obj["metadata"]
        stamp = now()
        digest = hashlib.sha1(f"{meta['uid']}{reason}{message}{stamp}".encode()).hexdigest()[:10]
        # A DNS subdomain: the cut name must not end a label with `-` or `.` (a 253-character Run).
        prefix = meta["name"][:200].rstrip("-.")
        body = {
            "metadata": {"name": f"{prefix}.{digest}", "namespace": meta["namespace"]},
            "involvedObject": {
                "apiVersion": obj.get("apiVersion", f"{GROUP}/{VERSION}"),
                "kind": obj.get("kind", "Run"),
                "name": meta["name"],
                "namespace": meta["namespace"],
                "uid": meta["uid"],
            },
            "reason": reason,
            "message": message[:1024],
            "type": type_,
            "source": {"component": component},
            "reportingComponent": component,
            "reportingInstance": component,
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
        }
        try:
            self.core.create_namespaced_event(meta["namespace"], body)
        except ApiException as err:
            if err.status == 403:
                # An Event is worth less than the pass that posts it, but a missing RBAC rule must show.
                log.warning(
                    "event %s on %s/%s refused (403): %s", reason, meta["namespace"], meta["name"], err.reason
                )
            elif err.status != 409:
                raise
