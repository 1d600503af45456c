"""The API calls the CLI makes: short connect timeouts, paged lists, plain-dict bodies.

Lists are paged with the API's `limit`/`continue`, so no command holds more than one page of
objects at a time unless it chooses to keep them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from oxygen.api.common import GROUP, VERSION
from oxygen.api.labels import LABEL_RUN_UID
from oxygen.cli.errors import CliError, NotFound
from oxygen.cli.kubeaccess import Target

# A slow list of big shards may legitimately take a while to arrive; connecting may not.
READ_TIMEOUT = 120.0
RUNS_PAGE = 200
MERGE_PATCH = "application/merge-patch+json"

Obj = dict[str, Any]


class Resources:
    def __init__(self, api_client: Any, target: Target, connect_timeout: float = 5.0) -> None:
        self.api_client = api_client
        self.target = target
        self.custom = client.CustomObjectsApi(api_client)
        self.core = client.CoreV1Api(api_client)
        self.timeout = (connect_timeout, READ_TIMEOUT)

    def scope(self) -> str | None:
        """The namespace to list in, or None for every namespace (-A)."""
        return None if self.target.all_namespaces else self.target.namespace

    def where(self) -> str:
        return "any namespace" if self.target.all_namespaces else f'namespace "{self.target.namespace}"'

    # -- custom objects ----------------------------------------------------------------------

    def list_page(
        self,
        plural: str,
        namespace: str | None,
        *,
        limit: int,
        token: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> tuple[list[Obj], str | None]:
        kwargs: dict[str, Any] = {"limit": limit, "_request_timeout": self.timeout}
        if token:
            kwargs["_continue"] = token
        if label_selector:
            kwargs["label_selector"] = label_selector
        if field_selector:
            kwargs["field_selector"] = field_selector
        if namespace is None:
            result = self.custom.list_custom_object_for_all_namespaces(GROUP, VERSION, plural, **kwargs)
        else:
            result = self.custom.list_namespaced_custom_object(GROUP, VERSION, namespace, plural, **kwargs)
        items: list[Obj] = result.get("items") or []
        return items, (result.get("metadata") or {}).get("continue") or None

    def iter_objects(
        self,
        plural: str,
        namespace: str | None,
        *,
        page: int = RUNS_PAGE,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> Iterator[Obj]:
        token: str | None = None
        while True:
            items, token = self.list_page(
                plural,
                namespace,
                limit=page,
                token=token,
                label_selector=label_selector,
                field_selector=field_selector,
            )
            yield from items
            if not token:
                return

    def get_run(self, namespace: str, name: str) -> Obj | None:
        return self.get("runs", namespace, name)

    def get(self, plural: str, namespace: str, name: str) -> Obj | None:
        """The object, or None when it does not exist (an unknown resource type stays an error)."""
        try:
            result: Obj = self.custom.get_namespaced_custom_object(
                GROUP, VERSION, namespace, plural, name, _request_timeout=self.timeout
            )
            return result
        except ApiException as err:
            if err.status == 404 and "could not find the requested resource" not in (str(err.body or "")):
                return None
            raise

    def find_run(self, ref: str) -> Obj:
        """The Run named `ref`, else the Run whose uid is `ref` (in the namespace, or all with -A)."""
        if not self.target.all_namespaces:
            found = self.get_run(self.target.namespace, ref)
            if found is not None:
                return found
            by_name: list[Obj] = []
        else:
            by_name = list(self.iter_objects("runs", None, field_selector=f"metadata.name={ref}"))
        if len(by_name) == 1:
            return by_name[0]
        if len(by_name) > 1:
            spaces = ", ".join(sorted(r["metadata"]["namespace"] for r in by_name))
            raise CliError(f'run "{ref}" exists in several namespaces ({spaces}): pass -n instead of -A')
        for run in self.iter_objects("runs", self.scope()):
            if run["metadata"].get("uid") == ref:
                return run
        raise NotFound(f'run "{ref}" not found in {self.where()}')

    def patch_run_spec(self, run: Obj, spec: Obj) -> Obj:
        """A merge patch of the spec, conditional on the resourceVersion we read (409 if it moved)."""
        meta = run["metadata"]
        body = {"metadata": {"resourceVersion": meta["resourceVersion"]}, "spec": spec}
        result: Obj = self.custom.patch_namespaced_custom_object(
            GROUP,
            VERSION,
            meta["namespace"],
            "runs",
            meta["name"],
            body,
            _content_type=MERGE_PATCH,
            _request_timeout=self.timeout,
        )
        return result

    def create_run(self, namespace: str, body: Obj) -> Obj:
        result: Obj = self.custom.create_namespaced_custom_object(
            GROUP, VERSION, namespace, "runs", body, _request_timeout=self.timeout
        )
        return result

    def shard_pages(self, run: Obj, page: int) -> Iterator[list[Obj]]:
        """The run's RunShards, `page` at a time, in name order (= round, then index)."""
        meta = run["metadata"]
        token: str | None = None
        while True:
            items, token = self.list_page(
                "runshards",
                meta["namespace"],
                limit=page,
                token=token,
                label_selector=f"{LABEL_RUN_UID}={meta['uid']}",
            )
            yield items
            # Unbind before the next request so two pages are never alive at once.
            del items
            if not token:
                return

    def served_resources(self) -> dict[str, bool]:
        """Plural → namespaced, for what the oxygen.dev group serves now (empty if nothing)."""
        try:
            listing = self.custom.get_api_resources(GROUP, VERSION, _request_timeout=self.timeout)
        except ApiException as err:
            if err.status == 404:
                return {}
            raise
        return {r.name: bool(r.namespaced) for r in (listing.resources or []) if "/" not in r.name}

    # -- built-ins, as plain dicts -------------------------------------------------------------

    def create_config_map(self, namespace: str, body: Obj) -> None:
        self.core.create_namespaced_config_map(namespace, body, _request_timeout=self.timeout)

    def delete_config_map(self, namespace: str, name: str) -> None:
        try:
            self.core.delete_namespaced_config_map(name, namespace, _request_timeout=self.timeout)
        except ApiException as err:
            if err.status != 404:
                raise

    def iter_events(self, namespace: str | None, field_selector: str) -> Iterator[Obj]:
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {
                "field_selector": field_selector,
                "limit": 500,
                "_request_timeout": self.timeout,
                # Raw JSON keeps timestamps as the server wrote them (no datetime round trip).
                "_preload_content": False,
            }
            if token:
                kwargs["_continue"] = token
            if namespace is None:
                response = self.core.list_event_for_all_namespaces(**kwargs)
            else:
                response = self.core.list_namespaced_event(namespace, **kwargs)
            listing = json.loads(response.data)
            yield from listing.get("items") or []
            token = (listing.get("metadata") or {}).get("continue") or None
            if not token:
                return
