"""CustomResourceDefinitions generated from the pydantic models.

`python -m oxygen.api.crdgen crds` (or `make crds`) writes them; a unit test fails when the checked-in
files drift from the models. Pydantic's JSON Schema is turned into a *structural* OpenAPI v3 schema:
references inlined, optionals unwrapped, free-form JSON marked with x-kubernetes-preserve-unknown-fields,
CEL rules carried over from the models' `x-kubernetes-validations`.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from oxygen.api import admission
from oxygen.api.common import GROUP, URL_RULES_MARK, VERSION
from oxygen.api.creditaccount import CreditAccountSpec, CreditAccountStatus
from oxygen.api.provider import ProviderSpec, ProviderStatus
from oxygen.api.run import RunSpec, RunStatus
from oxygen.api.runshard import RunShardSpec, RunShardStatus
from oxygen.api.table import TableSpec, TableStatus
from oxygen.api.workflow import WorkflowSpec, WorkflowStatus

_DROP = {"title", "description_"}


def _structural(node: Any, defs: dict[str, Any], url_rules: bool = True) -> Any:
    if isinstance(node, list):
        return [_structural(n, defs, url_rules) for n in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = defs[node["$ref"].rsplit("/", 1)[-1]]
        merged = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
        return _structural(merged, defs, url_rules)
    if node.get(URL_RULES_MARK):
        node = {k: v for k, v in node.items() if k != URL_RULES_MARK}
        if not url_rules:
            node.pop("x-kubernetes-validations", None)
    if "anyOf" in node:
        options = [o for o in node["anyOf"] if o.get("type") != "null"]
        rest = {k: v for k, v in node.items() if k != "anyOf"}
        if len(options) == 1:
            # Optional[X]: the field is simply not required; null is never sent (exclude_none).
            merged = {**_structural(options[0], defs, url_rules), **_structural(rest, defs, url_rules)}
            if merged.get("default", 0) is None:
                merged.pop("default")
            return merged
        raise ValueError(f"unions are not structural: {node}")
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROP or key == "$defs":
            continue
        if key == "const":
            out["enum"] = [value]
            continue
        if key in ("exclusiveMinimum", "exclusiveMaximum"):
            # JSON Schema 2020 numbers become OpenAPI v3's minimum + boolean flag.
            out["minimum" if key == "exclusiveMinimum" else "maximum"] = value
            out[key] = True
            continue
        if key == "properties":
            out[key] = {name: _structural(v, defs, url_rules) for name, v in value.items()}
        elif key == "additionalProperties" and isinstance(value, dict) and not value:
            out["x-kubernetes-preserve-unknown-fields"] = True
        elif key == "additionalProperties" and value is False:
            continue
        else:
            out[key] = _structural(value, defs, url_rules)
    if "enum" in out and "type" not in out:
        out["type"] = "string"
    if out.get("type") == "object" and "properties" not in out and "additionalProperties" not in out:
        out["x-kubernetes-preserve-unknown-fields"] = True
    if out.get("default") is None:
        out.pop("default", None)
    return out


def schema_of(model: type[BaseModel], url_rules: bool = True) -> dict[str, Any]:
    raw = model.model_json_schema(by_alias=True, mode="serialization")
    defs = raw.get("$defs", {})
    # A serialization schema marks defaulted fields required; inputs may omit them.
    validation = model.model_json_schema(by_alias=True, mode="validation")
    result: dict[str, Any] = _structural(validation, defs, url_rules)
    return result


@dataclass
class Resource:
    kind: str
    plural: str
    singular: str
    spec: type[BaseModel]
    status: type[BaseModel]
    short_names: list[str] = field(default_factory=list)
    categories: list[str] = field(default_factory=list)
    columns: list[dict[str, Any]] = field(default_factory=list)
    spec_optional: bool = False
    # Whether provider URLs are checked at apply (see common.URL_RULES_MARK).
    url_rules: bool = True


RESOURCES = [
    Resource(
        kind="Workflow",
        plural="workflows",
        singular="workflow",
        spec=WorkflowSpec,
        status=WorkflowStatus,
        short_names=["oxwf"],
        categories=["oxygen"],
        columns=[
            {"name": "Schedule", "type": "string", "jsonPath": ".spec.triggers.schedule.cron"},
            {"name": "Last Schedule", "type": "date", "jsonPath": ".status.lastScheduleTime"},
            {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
        ],
    ),
    Resource(
        kind="CreditAccount",
        plural="creditaccounts",
        singular="creditaccount",
        spec=CreditAccountSpec,
        status=CreditAccountStatus,
        spec_optional=True,
        short_names=["oxca"],
        categories=["oxygen"],
        columns=[
            {"name": "Available", "type": "string", "jsonPath": ".status.available"},
            {"name": "Reserved", "type": "string", "jsonPath": ".status.reserved"},
            {"name": "Captured", "type": "string", "jsonPath": ".status.captured"},
            {"name": "Granted", "type": "string", "jsonPath": ".status.granted"},
            {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
        ],
    ),
    Resource(
        kind="Provider",
        plural="providers",
        singular="provider",
        spec=ProviderSpec,
        status=ProviderStatus,
        short_names=["oxp"],
        categories=["oxygen"],
        columns=[
            {"name": "URL", "type": "string", "jsonPath": ".spec.http.url"},
            {"name": "Price", "type": "string", "jsonPath": ".spec.price"},
            {"name": "RPS", "type": "number", "jsonPath": ".spec.rateLimit.requestsPerSecond"},
            {"name": "Runs", "type": "integer", "jsonPath": ".status.runs"},
            {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
        ],
    ),
    Resource(
        kind="Run",
        plural="runs",
        singular="run",
        spec=RunSpec,
        status=RunStatus,
        short_names=["oxr"],
        categories=["oxygen"],
        columns=[
            {"name": "Kind", "type": "string", "jsonPath": ".spec.kind", "priority": 1},
            {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
            {"name": "Mode", "type": "string", "jsonPath": ".spec.mode"},
            {"name": "Total", "type": "integer", "jsonPath": ".status.itemsTotal"},
            {"name": "Succeeded", "type": "integer", "jsonPath": ".status.itemsSucceeded"},
            {"name": "Failed", "type": "integer", "jsonPath": ".status.itemsFailed"},
            {"name": "Credits", "type": "string", "jsonPath": ".status.creditsUsed"},
            {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
        ],
    ),
    Resource(
        kind="Table",
        plural="tables",
        singular="table",
        spec=TableSpec,
        status=TableStatus,
        short_names=["oxt"],
        categories=["oxygen"],
        columns=[
            {"name": "Table", "type": "string", "jsonPath": ".spec.postgres.table"},
            {"name": "Rows", "type": "integer", "jsonPath": ".status.rows"},
            {"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type=='Ready')].status"},
            {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
        ],
    ),
    Resource(
        kind="RunShard",
        plural="runshards",
        singular="runshard",
        spec=RunShardSpec,
        status=RunShardStatus,
        short_names=["oxs"],
        url_rules=False,
        categories=["oxygen"],
        columns=[
            {"name": "Run", "type": "string", "jsonPath": ".spec.runName"},
            {"name": "Round", "type": "integer", "jsonPath": ".spec.round"},
            {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
            {"name": "Succeeded", "type": "integer", "jsonPath": ".status.summary.succeeded"},
            {"name": "Failed", "type": "integer", "jsonPath": ".status.summary.failed"},
            {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
        ],
    ),
]


def _spec_schema(resource: Resource) -> dict[str, Any]:
    """A spec that may be omitted gets `default: {}`: the API server then fills its defaults."""
    schema = schema_of(resource.spec, resource.url_rules)
    return {"default": {}, **schema} if resource.spec_optional else schema


def crd(resource: Resource) -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{resource.plural}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "names": {
                "kind": resource.kind,
                "listKind": f"{resource.kind}List",
                "plural": resource.plural,
                "singular": resource.singular,
                "shortNames": resource.short_names,
                "categories": resource.categories,
            },
            "scope": "Namespaced",
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": resource.columns,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "required": ["spec"],
                            "properties": {
                                "apiVersion": {"type": "string"},
                                "kind": {"type": "string"},
                                "metadata": {"type": "object"},
                                "spec": _spec_schema(resource),
                                "status": schema_of(resource.status, resource.url_rules),
                            },
                        }
                    },
                }
            ],
        },
    }


def render(resource: Resource) -> str:
    header = "# Generated from the pydantic models by `make crds`; do not edit.\n"
    return header + yaml.safe_dump(crd(resource), sort_keys=False, width=120)


def write_all(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for resource in RESOURCES:
        path = directory / f"{GROUP}_{resource.plural}.yaml"
        path.write_text(render(resource))
        written.append(path)
    # The admission policies that keep a Run or Workflow within its writer's permissions, next to
    # the CRDs so that `kubectl apply -f crds/` installs both.
    policies = directory / admission.FILE_NAME
    policies.write_text(admission.render())
    written.append(policies)
    return written


if __name__ == "__main__":
    for p in write_all(Path(sys.argv[1] if len(sys.argv) > 1 else "crds")):
        print(p)
