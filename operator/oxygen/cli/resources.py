"""What the CLI asks of the cluster, in its own words (find a run by name or uid, its shards page by
page), over `oxygen.kube.cli`'s requests.

Lists are paged with the API's `limit`/`continue`, so no command holds more than one page of
objects at a time unless it chooses to keep them.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from oxygen.api.labels import LABEL_RUN_UID
from oxygen.cli.errors import CliError, NotFound
from oxygen.cli.kubeaccess import Target
from oxygen.kube.cli import CliRequests

# A slow list of big shards may legitimately take a while to arrive; connecting may not.
READ_TIMEOUT = 120.0
RUNS_PAGE = 200
EVENTS_PAGE = 500

Obj = dict[str, Any]


class Resources:
    def __init__(self, api_client: Any, target: Target, connect_timeout: float = 5.0) -> None:
        self.api_client = api_client
        self.target = target
        self.requests = CliRequests(api_client, (connect_timeout, READ_TIMEOUT))

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
        return self.requests.list_page(
            plural,
            namespace,
            limit=limit,
            token=token,
            label_selector=label_selector,
            field_selector=field_selector,
        )

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
        return self.requests.get(plural, namespace, name)

    def secret_data(self, namespace: str, name: str) -> dict[str, str] | None:
        """A Secret's data (base64 values), None when it does not exist."""
        return self.requests.secret_data(namespace, name)

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
        return self.requests.patch_spec(
            "runs", meta["namespace"], meta["name"], meta["resourceVersion"], spec
        )

    def create_run(self, namespace: str, body: Obj) -> Obj:
        return self.requests.create("runs", namespace, body)

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
        return self.requests.served_resources()

    # -- built-ins, as plain dicts -------------------------------------------------------------

    def create_config_map(self, namespace: str, body: Obj) -> None:
        self.requests.create_config_map(namespace, body)

    def secret_key(self, namespace: str, name: str, key: str) -> str | None:
        return self.requests.secret_key(namespace, name, key)

    def delete_config_map(self, namespace: str, name: str) -> None:
        self.requests.delete_config_map(namespace, name)

    def iter_events(self, namespace: str | None, field_selector: str) -> Iterator[Obj]:
        token: str | None = None
        while True:
            items, token = self.requests.events_page(namespace, field_selector, EVENTS_PAGE, token)
            yield from items
            if not token:
                return
