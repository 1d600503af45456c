"""The requests the command line makes: short connect timeouts, one page at a time, plain-dict bodies,
and the server's refusals as `ApiError` (a create that finds the object is a 409 here, not success: the
user asked for a new object)."""

from __future__ import annotations

import base64
import json
from typing import Any

from kubernetes import client

from oxygen.api.common import GROUP, VERSION
from oxygen.kube.errors import ApiError, api_errors

MERGE_PATCH = "application/merge-patch+json"

Obj = dict[str, Any]
Page = tuple[list[Obj], str | None]  # the items, and the continue token of the next page (None: last)


class CliRequests:
    def __init__(self, api_client: Any, timeout: tuple[float, float]) -> None:
        self.api_client = api_client
        self.custom = client.CustomObjectsApi(api_client)
        self.core = client.CoreV1Api(api_client)
        self.timeout = timeout

    def list_page(
        self,
        plural: str,
        namespace: str | None,
        *,
        limit: int,
        token: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> Page:
        """One page of oxygen.dev objects, in one namespace or (None) every namespace."""
        kwargs = self._paging(limit, token, label_selector, field_selector)
        with api_errors():
            if namespace is None:
                result = self.custom.list_custom_object_for_all_namespaces(GROUP, VERSION, plural, **kwargs)
            else:
                result = self.custom.list_namespaced_custom_object(
                    GROUP, VERSION, namespace, plural, **kwargs
                )
        return result.get("items") or [], (result.get("metadata") or {}).get("continue") or None

    def get(self, plural: str, namespace: str, name: str) -> Obj | None:
        """The object, or None when it does not exist (an unknown resource type stays an error)."""
        try:
            with api_errors():
                result: Obj = self.custom.get_namespaced_custom_object(
                    GROUP, VERSION, namespace, plural, name, _request_timeout=self.timeout
                )
        except ApiError as err:
            if err.not_found:
                return None
            raise
        return result

    def secret_data(self, namespace: str, name: str) -> dict[str, str] | None:
        """A Secret's data (base64 values), or None when it does not exist."""
        try:
            with api_errors():
                secret = self.core.read_namespaced_secret(name, namespace, _request_timeout=self.timeout)
        except ApiError as err:
            if err.not_found:
                return None
            raise
        return dict(secret.data or {})

    def patch_spec(self, plural: str, namespace: str, name: str, resource_version: str, spec: Obj) -> Obj:
        """A merge patch of the spec, conditional on `resource_version` (ApiError 409 if it moved)."""
        body = {"metadata": {"resourceVersion": resource_version}, "spec": spec}
        with api_errors():
            result: Obj = self.custom.patch_namespaced_custom_object(
                GROUP,
                VERSION,
                namespace,
                plural,
                name,
                body,
                _content_type=MERGE_PATCH,
                _request_timeout=self.timeout,
            )
        return result

    def create(self, plural: str, namespace: str, body: Obj) -> Obj:
        with api_errors():
            result: Obj = self.custom.create_namespaced_custom_object(
                GROUP, VERSION, namespace, plural, body, _request_timeout=self.timeout
            )
        return result

    def served_resources(self) -> dict[str, bool]:
        """Plural → namespaced, for what the oxygen.dev group serves now (empty if nothing)."""
        try:
            with api_errors():
                listing = self.custom.get_api_resources(GROUP, VERSION, _request_timeout=self.timeout)
        except ApiError as err:
            if err.status == 404:
                return {}
            raise
        return {r.name: bool(r.namespaced) for r in (listing.resources or []) if "/" not in r.name}

    # -- built-ins, as plain dicts -------------------------------------------------------------

    def create_config_map(self, namespace: str, body: Obj) -> None:
        with api_errors():
            self.core.create_namespaced_config_map(namespace, body, _request_timeout=self.timeout)

    def secret_key(self, namespace: str, name: str, key: str) -> str | None:
        """One key of a Secret, decoded (a Table's DSN); None when the Secret or the key is missing."""
        try:
            with api_errors():
                secret = self.core.read_namespaced_secret(name, namespace, _request_timeout=self.timeout)
        except ApiError as err:
            if err.status == 404:
                return None
            raise
        value = (secret.data or {}).get(key)
        return None if value is None else base64.b64decode(value).decode()

    def delete_config_map(self, namespace: str, name: str) -> None:
        """Deleted, or already gone."""
        try:
            with api_errors():
                self.core.delete_namespaced_config_map(name, namespace, _request_timeout=self.timeout)
        except ApiError as err:
            if err.status != 404:
                raise

    def events_page(self, namespace: str | None, field_selector: str, limit: int, token: str | None) -> Page:
        kwargs = self._paging(limit, token, None, field_selector)
        # Raw JSON keeps timestamps as the server wrote them (no datetime round trip).
        kwargs["_preload_content"] = False
        with api_errors():
            if namespace is None:
                response = self.core.list_event_for_all_namespaces(**kwargs)
            else:
                response = self.core.list_namespaced_event(namespace, **kwargs)
        listing = json.loads(response.data)
        return listing.get("items") or [], (listing.get("metadata") or {}).get("continue") or None

    def _paging(
        self, limit: int, token: str | None, label_selector: str | None, field_selector: str | None
    ) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"limit": limit, "_request_timeout": self.timeout}
        if token:
            kwargs["_continue"] = token
        if label_selector:
            kwargs["label_selector"] = label_selector
        if field_selector:
            kwargs["field_selector"] = field_selector
        return kwargs
